"""NODESR: NODE-SR around any same-resolution network from BasicSR's registry."""
import inspect
from copy import deepcopy

import torch
from torch import nn

from nodesr_arch.archs.node_util import NODEBase
from nodesr_arch.registry import ARCH_REGISTRY

_IN_KEYS = ('num_in_ch', 'in_chans', 'in_nc', 'in_channels')
_OUT_KEYS = ('num_out_ch', 'out_chans', 'out_nc', 'out_channels')


def _signature_defaults(cls):
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}


def build_registry_arch(spec, owner, role, num_in_ch, num_out_ch=None):
    """Build a network from a registry option dict, setting its channel keys (``num_in_ch``, ``in_chans``...;
    ``num_out_ch``, ``out_chans``...) unless given.

    Args:
        spec (dict): ``{type: <registry name>, ...}``.
        owner (str): The network it is part of, for error messages. role (str): Its role there ('backbone').
        num_in_ch (int): Input channels. num_out_ch (int | None): Output channels (None: left alone).

    Returns:
        tuple[nn.Module, dict, dict]: The network, ``spec`` with the channel keys set, and the defaults of its
        class's arguments.

    Raises:
        ValueError: ``spec`` is not such a dict or names no registered architecture.
    """
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ValueError(f'{owner}: {role} must be a dict with a "type" key')
    spec = deepcopy(spec)
    try:
        cls = ARCH_REGISTRY.get(spec['type'])
    except KeyError:
        raise ValueError(f"{owner}: {role} type {spec['type']!r} is not in BasicSR's ARCH_REGISTRY") from None
    params = _signature_defaults(cls)
    for keys, value in ((_IN_KEYS, num_in_ch), (_OUT_KEYS, num_out_ch)):
        key = next((k for k in keys if k in params), None)
        if key is not None and value is not None:
            spec.setdefault(key, value)
    return cls(**{k: v for k, v in spec.items() if k != 'type'}), spec, params


def infer_size_multiple(backbone):
    """Size multiple a backbone needs: SwinIR's window, RRDBNet's pixel-unshuffle factor, else 1."""
    params = _signature_defaults(ARCH_REGISTRY.get(backbone['type']))
    if 'window_size' in params:
        return int(backbone.get('window_size', params['window_size']))
    if backbone['type'] == 'RRDBNet':
        return {1: 4, 2: 2}.get(int(backbone.get('scale', params['scale'])), 1)
    return 1


def probe(net, in_ch, side):
    """``net`` run once in eval mode without gradients on zeros (1, ``in_ch``, ``side``, ``side``) on its device.

    Returns:
        tuple[Tensor, Tensor]: The input and the output.
    """
    param = next(net.parameters(), None)
    x = torch.zeros(1, in_ch, side, side, device=None if param is None else param.device)
    was_training = net.training
    net.eval()  # no batch-norm statistics update from this probe
    try:
        with torch.no_grad():
            return x, net(x)
    finally:
        net.train(was_training)


def check_same_resolution(net, name, in_ch, out_ch, multiple):
    """Run ``net`` once on a small input and check it keeps the resolution and gives ``out_ch`` channels.

    Raises:
        ValueError: Naming the backbone and what it did, instead of a shape error deep in the solver.
    """
    try:
        x, out = probe(net, in_ch, multiple * -(-16 // multiple))
    except RuntimeError as err:
        raise ValueError(f'NODESR: backbone {name} fails on a {in_ch}-channel input (the image plus the scale '
                         f'channel): {err}') from None
    if out.shape[-2:] != x.shape[-2:] or out.shape[1] < out_ch:
        raise ValueError(f'NODESR: backbone {name} maps {tuple(x.shape)} to {tuple(out.shape)}; f must keep the '
                         f"resolution and give >= {out_ch} channels (e.g. SwinIR upscale: 1, upsampler: ''; "
                         'RRDBNet scale: 1)')


class _BackboneField(nn.Module):
    """``f`` from a registry backbone: its first ``num_out_ch`` output channels (minus the input's first
    channels when the backbone adds its input to its output, ``subtract_input``), times a learnable
    per-channel ``gain``.

    ``gain`` starts at zero, so ``dI/dt = 0`` and the NODE model is the identity (returns its bicubic
    input) at initialisation whatever the backbone, as NODEVDSR and NODERDN are through their zeroed
    last conv. The gain's own gradient is not zero, so the first optimiser step moves it off zero and
    the backbone gets gradients from then on (the ReZero scheme, Bachlechner et al. 2020).

    Args:
        net (nn.Module): The backbone.
        num_out_ch (int): Channels of ``f``.
        subtract_input (bool): Subtract the input's first ``num_out_ch`` channels from the output.
    """

    def __init__(self, net, num_out_ch, subtract_input=False):
        super().__init__()
        self.net = net
        self.num_out_ch = num_out_ch
        self.subtract_input = subtract_input
        self.gain = nn.Parameter(torch.zeros(1, num_out_ch, 1, 1))

    def forward(self, x):
        out = self.net(x)[:, :self.num_out_ch]
        if self.subtract_input:
            out = out - x[:, :self.num_out_ch]
        return self.gain * out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # NODESR checkpoints from before ``gain`` existed hold the backbone alone: gain 1 is their f
        if prefix + 'gain' not in state_dict and any(k.startswith(prefix + 'net.') for k in state_dict):
            state_dict[prefix + 'gain'] = torch.ones_like(self.gain)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@ARCH_REGISTRY.register()
class NODESR(NODEBase):
    """NODE-SR with any registry architecture as ``f``.

    ``f`` must keep the resolution (e.g. ``SwinIR`` with ``upscale: 1, upsampler: ''`` or ``RRDBNet``
    with ``scale: 1``). Its input-channel key (num_in_ch, in_chans...) is set to ``num_in_ch + 1`` unless
    given; extra output channels are dropped. ``f`` is the backbone's output times a learnable
    per-channel gain that starts at zero, so an untrained model returns its input with any backbone.

    Args:
        backbone (dict): ``{type: <registry name>, ...}`` options of ``f``.
        num_in_ch (int): Channels of the image. Default: 3.
        num_out_ch (int): Channels of the output. Default: 3.
        size_multiple (int | None): Pad H, W to this multiple for ``f``; None infers it (SwinIR's
            window_size, RRDBNet's unshuffle factor).
        subtract_input (bool | None): ``f`` = backbone output minus its input, for backbones with a
            built-in global residual (their output is an image, not a rate of change). None: True for
            SwinIR with ``upsampler: ''`` (which returns ``x + conv_last(...)``), else False.
        receptive_radius (int | None): Receptive radius of the backbone in pixels, for exact tiling;
            None: unknown (``set_tiling`` then needs an explicit ``tile_pad``).
        ode (dict | None): Solver options.
    """

    def __init__(self, backbone, num_in_ch=3, num_out_ch=3, size_multiple=None, subtract_input=None,
                 receptive_radius=None, ode=None):
        net, backbone, params = build_registry_arch(backbone, 'NODESR', 'backbone', num_in_ch + 1, num_out_ch)
        if size_multiple is None:
            size_multiple = infer_size_multiple(backbone)
        if subtract_input is None:
            subtract_input = backbone['type'] == 'SwinIR' and not backbone.get('upsampler', params.get('upsampler'))
        check_same_resolution(net, backbone['type'], num_in_ch + 1, num_out_ch, size_multiple)
        super().__init__(
            _BackboneField(net, num_out_ch, bool(subtract_input)),
            ode=ode,
            size_multiple=size_multiple,
            receptive_radius=receptive_radius)
