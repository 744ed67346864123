"""spandrel architectures for this project's networks, so hosts that load ``.pth`` upscalers with spandrel
(ComfyUI, chaiNNer) load NODE-SR models too. ``pip install "nodesr_arch[spandrel]"``.

spandrel has no plugin discovery: a host runs one line once, before it loads models::

    import nodesr_arch.spandrel; nodesr_arch.spandrel.register_spandrel()

Then ``spandrel.ModelLoader().load_from_file('net_g_latest.pth')`` returns an ``ImageModelDescriptor`` for the
networks this project trains: NODE-VDSR, NODE-RDN, NODESR (RRDBNet or SwinIR backbone), VDSR+t, RDN+t and the
arbitrary-scale rivals MetaSR (VDSRBody or EDSRBody encoder), MetaRDN (MetaSR on RDNBody) and LIIF (any of the three
encoders), at the integer scale the host asks for with ``register_spandrel(scale=...)``, default 4; and VDSR, RDN
(VDSR at that scale too, RDN at the scale its upsampler was built for). Each is detected from its exact state-dict
keys (every key, none missing, none extra, shapes consistent), and the architectures are added after spandrel's own,
so a checkpoint that spandrel already knows (RRDBNet as ESRGAN, SwinIR...) loads as before and one it does not know
stays unsupported unless it is one of these. Settings come from tensor shapes (encoder type and size, Pos2Weight's
hidden width and kernel size, LIIF's MLP widths); the solver of a NODE network, and a rival's ``img_mean``,
``img_std`` and EDSR ``res_scale``, from the metadata this project stores in its checkpoints
(:mod:`nodesr_arch.solver_metadata`), else rk4 with ``step_size: 1.0`` (the paper's) and the networks' defaults
(those of this project's option files). ``NODESR`` is covered with BasicSR's ``RRDBNet`` (``scale: 1``) or
``SwinIR`` (``upscale: 1, upsampler: ''``) as its backbone, SwinIR's settings read by spandrel's own SwinIR loader
(its ``img_range`` and NODESR's ``subtract_input`` and ``size_multiple`` from the metadata); another architecture
goes in :data:`ARCHITECTURES`.

The descriptor's call runs :meth:`nodesr_arch.api.Upscaler.super_resolve` at exactly ``scale`` times the input's
size, odd sizes included: a NODE or +t network enlarges bicubically (MATLAB's kernel, as in training) and solves,
Meta-SR and LIIF predict every output pixel from the LR features.
Python users get any real scale with :func:`super_resolve` and another integer scale with :func:`at_scale`.
"""
import math
import re

import torch
from spandrel import MAIN_REGISTRY, Architecture, ArchSupport, ImageModelDescriptor, SizeRequirements

from nodesr_arch.solver_metadata import stored_options, stored_solver

#: The integer scale descriptors get unless the host asks for another (``register_spandrel(scale=...)``).
DEFAULT_SCALE = 4
#: The solver of a NODE checkpoint that records none (this project's bundled models and older checkpoints).
DEFAULT_SOLVER = {'method': 'rk4', 'step_size': 1.0}
_SCALE = [DEFAULT_SCALE]


def _weight(state, key, ndim=4):
    value = state.get(key)
    return value if isinstance(value, torch.Tensor) and value.ndim == ndim else None


def _chain(state, prefix, ndim=4):
    """A chain of layers ``{prefix}{0,2,4...}.weight/bias`` and nothing else (3x3 convolutions, or linear layers
    with ``ndim=2``): its weight shapes."""
    keys = set(state)
    shapes = []
    while f'{prefix}{2 * len(shapes)}.weight' in keys:
        i = 2 * len(shapes)
        w, b = _weight(state, f'{prefix}{i}.weight', ndim), _weight(state, f'{prefix}{i}.bias', 1)
        if w is None or b is None or (ndim == 4 and tuple(w.shape[2:]) != (3, 3)) or b.shape[0] != w.shape[0]:
            return None
        if shapes and w.shape[1] != shapes[-1][0]:
            return None
        shapes.append(tuple(w.shape))
    expected = {f'{prefix}{2 * i}.{p}' for i in range(len(shapes)) for p in ('weight', 'bias')}
    return shapes if len(shapes) >= 2 and keys == expected else None


def _sub(state, prefix):
    """The entries under ``prefix``, the prefix taken off."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _rdn_body(state, prefix):
    """``RDNBody`` options read from the shapes under ``prefix``, with the keys it has; None if it is not one."""
    sfe1 = _weight(state, f'{prefix}sfe1.weight')
    if sfe1 is None:
        return None
    num_block = len({m.group(1) for k in state for m in [re.match(re.escape(prefix) + r'rdbs\.(\d+)\.', k)] if m})
    num_conv = len({m.group(1) for k in state
                    for m in [re.match(re.escape(prefix) + r'rdbs\.0\.convs\.(\d+)\.0\.weight$', k)] if m})
    grow = _weight(state, f'{prefix}rdbs.0.convs.0.0.weight')
    if not num_block or not num_conv or grow is None:
        return None
    opt = {'num_in_ch': int(sfe1.shape[1]), 'num_feat': int(sfe1.shape[0]), 'num_block': num_block,
           'num_conv': num_conv, 'num_grow': int(grow.shape[0])}
    names = ['sfe1', 'sfe2', 'gff.0', 'gff.1']
    names += [f'rdbs.{d}.convs.{c}.0' for d in range(num_block) for c in range(num_conv)]
    names += [f'rdbs.{d}.fusion' for d in range(num_block)]
    return opt, {f'{prefix}{n}.{p}' for n in names for p in ('weight', 'bias')}


def _rdn_family(state, prefix, tail):
    """RDN options when the state dict is exactly an RDN body under ``prefix`` plus the ``tail`` keys."""
    body = _rdn_body(state, prefix)
    if body is None or set(state) != body[1] | set(tail):
        return None
    return body[0]


class _NodeSRArchitecture(Architecture):
    """One of this project's networks as a spandrel ``Architecture``: :meth:`options` reads its settings from a
    state dict (None: not this network), :meth:`build` makes it."""

    kind = None  # the registry name
    ode = False  # a NODE network: the solver comes from the checkpoint

    def __init__(self):
        super().__init__(id=f'nodesr_arch.{self.kind}', detect=lambda state: self.options(state) is not None)

    def options(self, state):
        raise NotImplementedError

    def with_hidden(self, opt, stored):
        """``opt`` with the options its shapes do not show, from the checkpoint (:func:`stored_options`)."""
        return opt

    def build(self, opt):
        from nodesr_arch.archs import rdn_arch, vdsr_arch
        cls = getattr(vdsr_arch if 'VDSR' in self.kind else rdn_arch, self.kind)
        return cls(**opt)

    def load(self, state_dict):
        opt = self.options(state_dict)
        if self.ode:
            opt['ode'] = stored_solver(state_dict) or dict(DEFAULT_SOLVER)
        opt = self.with_hidden(opt, stored_options(state_dict))
        net = self.build(dict(opt))
        net.load_state_dict(state_dict, strict=True)
        return describe(self, net.eval(), opt, _SCALE[0])


def describe(architecture, net, opt, scale):
    """The ``ImageModelDescriptor`` of ``net`` at integer ``scale`` (RDN: its own scale)."""
    scale = int(getattr(net, 'upscale', scale))
    encoder = opt.get('encoder', {})
    flat = {**encoder, **opt}
    tags = [encoder['type']] if encoder else []
    tags += [f'{flat[k]}{tag}' for k, tag in (('num_feat', 'nf'), ('num_layer', 'l'), ('num_block', 'nb'),
                                              ('hidden', 'h')) if k in flat]
    if 'hidden_list' in opt:
        tags.append('mlp ' + '-'.join(str(w) for w in opt['hidden_list']))
    if 'ode' in opt:
        solver = opt['ode']
        tags.append(f"{solver['method']} x{solver['num_steps']}" if 'num_steps' in solver
                    else f"{solver['method']} step {solver.get('step_size', 1.0):g}")
    descriptor = ImageModelDescriptor(
        net, net.state_dict(), architecture=architecture, purpose='SR', tags=tags, supports_half=False,
        supports_bfloat16=False, scale=scale, input_channels=opt.get('num_in_ch', 3),
        output_channels=opt.get('num_out_ch', opt.get('num_in_ch', 3)), size_requirements=SizeRequirements(),
        call_fn=lambda model, image: _upscaler(model, image).super_resolve(image, scale))
    descriptor.nodesr_options = opt
    return descriptor


def _upscaler(net, image):
    from nodesr_arch.api import Upscaler
    return Upscaler(net, device=image.device)


def _vdsr_options(state, prefix, scale_channel):
    """VDSR options from a chain of 3x3 convolutions under ``prefix``; ``scale_channel``: the first takes the
    image and the scale channel (VDSR+t, NODE-VDSR), else the image alone (VDSR)."""
    shapes = _chain(state, prefix)
    if shapes is None or shapes[0][1] != shapes[-1][0] + int(scale_channel):
        return None
    return {'num_in_ch': shapes[-1][0], 'num_out_ch': shapes[-1][0], 'num_feat': shapes[0][0],
            'num_layer': len(shapes)}


class NODEVDSRArch(_NodeSRArchitecture):
    kind, ode = 'NODEVDSR', True

    def options(self, state):
        return _vdsr_options(state, 'ode.field.func.', True)


class VDSRtArch(_NodeSRArchitecture):
    kind, ode = 'VDSRt', False

    def options(self, state):
        return _vdsr_options(state, 'func.', True)


class VDSRArch(_NodeSRArchitecture):
    kind, ode = 'VDSR', False

    def options(self, state):
        return _vdsr_options(state, 'body.', False)


def _rdnt_options(state, prefix):
    last = _weight(state, f'{prefix}conv_last.weight')
    opt = _rdn_family(state, f'{prefix}body.', (f'{prefix}conv_last.weight', f'{prefix}conv_last.bias'))
    if opt is None or last is None or opt['num_in_ch'] != last.shape[0] + 1:
        return None
    return dict(opt, num_in_ch=int(last.shape[0]), num_out_ch=int(last.shape[0]))


class NODERDNArch(_NodeSRArchitecture):
    kind, ode = 'NODERDN', True

    def options(self, state):
        return _rdnt_options(state, 'ode.field.func.')


class RDNtArch(_NodeSRArchitecture):
    kind, ode = 'RDNt', False

    def options(self, state):
        return _rdnt_options(state, 'func.')


class RDNArch(_NodeSRArchitecture):
    kind, ode = 'RDN', False

    def options(self, state):
        ups = sorted({int(m.group(1)) for k in state for m in [re.match(r'upsample\.(\d+)\.weight$', k)] if m})
        if ups not in ([0], [0, 2]):
            return None
        tail = [f'upsample.{i}.{p}' for i in ups for p in ('weight', 'bias')] + ['conv_last.weight', 'conv_last.bias']
        opt = _rdn_family(state, 'body.', tail)
        first, last = _weight(state, 'upsample.0.weight'), _weight(state, 'conv_last.weight')
        if opt is None or first is None or last is None:
            return None
        ratio = first.shape[0] // opt['num_grow']
        upscale = 4 if ups == [0, 2] and ratio == 4 else {4: 2, 9: 3}.get(ratio) if ups == [0] else None
        if upscale is None or first.shape[0] != opt['num_grow'] * ratio:
            return None
        return dict(opt, num_out_ch=int(last.shape[0]), upscale=upscale)


def _rrdbnet_options(state, prefix):
    """BasicSR ``RRDBNet`` options at ``scale: 1`` (same resolution: pixel-unshuffle by 4, then x4) read from the
    shapes under ``prefix``, with the keys it has; None if it is not one."""
    first, last = _weight(state, f'{prefix}conv_first.weight'), _weight(state, f'{prefix}conv_last.weight')
    grow = _weight(state, f'{prefix}body.0.rdb1.conv1.weight')
    num_block = len({m.group(1) for k in state for m in [re.match(re.escape(prefix) + r'body\.(\d+)\.', k)] if m})
    if first is None or last is None or grow is None or first.shape[1] % 16:
        return None
    opt = {'type': 'RRDBNet', 'num_in_ch': int(first.shape[1]) // 16, 'num_out_ch': int(last.shape[0]),
           'num_feat': int(first.shape[0]), 'num_block': num_block, 'num_grow_ch': int(grow.shape[0]), 'scale': 1}
    names = ['conv_first', 'conv_body', 'conv_up1', 'conv_up2', 'conv_hr', 'conv_last']
    names += [f'body.{i}.rdb{r}.conv{c}' for i in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    return opt, {f'{prefix}{n}.{p}' for n in names for p in ('weight', 'bias')}


_BACKBONE = 'ode.field.func.net.'
#: spandrel's SwinIR hyperparameters that BasicSR's SwinIR takes and that change the result in eval mode.
_SWINIR_KEYS = ('img_size', 'patch_size', 'embed_dim', 'depths', 'num_heads', 'window_size', 'mlp_ratio', 'qkv_bias',
                'qk_scale', 'ape', 'patch_norm', 'upsampler', 'resi_connection')


def _swinir_options(state, prefix):
    """BasicSR ``SwinIR`` options at the same resolution (``upscale: 1``, ``upsampler: ''``) read from the shapes
    under ``prefix`` by spandrel's own SwinIR loader, with the keys it has; None if it is not one."""
    from spandrel.architectures.SwinIR import SwinIRArch
    sub = _sub(state, prefix)
    arch = SwinIRArch()
    if not arch.detect(sub):
        return None
    try:
        model = arch.load(sub).model
    except (KeyError, ValueError, RuntimeError, AssertionError):
        return None
    hyper = model.hyperparameters
    expected = model.state_dict()
    if hyper.get('upsampler') != '' or hyper.get('start_unshuffle', 1) != 1 or set(expected) != set(sub) \
            or any(expected[k].shape != sub[k].shape for k in sub):
        return None
    opt = {'type': 'SwinIR', 'in_chans': int(hyper['in_chans']), 'upscale': 1,
           **{k: hyper[k] for k in _SWINIR_KEYS}}
    return dict(opt, num_in_ch=opt['in_chans'], num_out_ch=opt['in_chans']), {prefix + k for k in sub}


class NODESRArch(_NodeSRArchitecture):
    """``NODESR`` around BasicSR's ``RRDBNet`` (``scale: 1``) or ``SwinIR`` (``upscale: 1, upsampler: ''``), whose
    settings their shapes hold; SwinIR's ``img_range`` and NODESR's ``subtract_input`` and ``size_multiple`` come
    from the checkpoint's metadata, else their defaults."""

    kind, ode = 'NODESR', True

    def options(self, state):
        backbone = _rrdbnet_options(state, _BACKBONE)
        if backbone is None and f'{_BACKBONE}layers.0.residual_group.blocks.0.attn.qkv.weight' in state:
            backbone = _swinir_options(state, _BACKBONE)
        if backbone is None:
            return None
        opt, keys = backbone
        num_ch = opt['num_out_ch'] if opt['type'] == 'RRDBNet' else opt['num_in_ch'] - 1  # SwinIR: out = in
        if set(state) - {'ode.field.func.gain'} != keys or opt['num_in_ch'] != num_ch + 1:
            return None
        gain = state.get('ode.field.func.gain')
        if gain is not None and tuple(gain.shape) != (1, num_ch, 1, 1):
            return None
        backbone = {k: v for k, v in opt.items() if k not in ('num_in_ch', 'num_out_ch')} \
            if opt['type'] == 'SwinIR' else opt
        return {'backbone': backbone, 'num_in_ch': num_ch, 'num_out_ch': num_ch,
                'num_feat': opt.get('num_feat', opt.get('embed_dim')), 'num_block': opt.get('num_block', len(
                    opt.get('depths', ())))}

    def with_hidden(self, opt, stored):
        opt = dict(opt, **{k: stored[k] for k in ('subtract_input', 'size_multiple') if k in stored})
        if 'img_range' in stored and opt['backbone']['type'] == 'SwinIR':
            opt['backbone'] = dict(opt['backbone'], img_range=stored['img_range'])
        return opt

    def build(self, opt):
        from nodesr_arch.archs.nodesr_arch import NODESR
        return NODESR(**{k: v for k, v in opt.items() if k not in ('num_feat', 'num_block')})


def _encoder(state):
    """The LR encoder under ``encoder.`` (``VDSRBody``, ``RDNBody`` or ``EDSRBody``, every key and nothing else):
    its registry options, input channels and features; None if it is none of them."""
    sub = _sub(state, 'encoder.')
    shapes = _chain(sub, '')
    if shapes is not None:
        return ({'type': 'VDSRBody', 'num_out_ch': shapes[-1][0], 'num_feat': shapes[0][0], 'num_layer': len(shapes),
                 'zero_last': False}, shapes[0][1], shapes[-1][0])
    rdn = _rdn_body(sub, '')
    if rdn is not None:
        opt, keys = rdn
        num_in_ch = opt.pop('num_in_ch')
        return (dict(opt, type='RDNBody'), num_in_ch, opt['num_feat']) if set(sub) == keys else None
    head = _weight(sub, 'head.weight')
    num_block = len({m.group(1) for k in sub for m in [re.match(r'body\.(\d+)\.', k)] if m}) - 1
    if head is None or num_block < 0:
        return None
    names = ['head', f'body.{num_block}'] + [f'body.{i}.body.{j}' for i in range(num_block) for j in (0, 2)]
    if set(sub) != {f'{n}.{p}' for n in names for p in ('weight', 'bias')}:
        return None
    return {'type': 'EDSRBody', 'num_feat': int(head.shape[0]), 'num_block': num_block}, int(head.shape[1]), \
        int(head.shape[0])


def _rival_options(state, head):
    """Encoder options, input channels, features and the ``head`` prefix's layer shapes when the state dict is
    exactly an encoder plus a chain of linear layers under ``head``; None otherwise."""
    encoder = _encoder(state)
    if encoder is None:
        return None
    shapes = _chain({k: v for k, v in state.items() if not k.startswith('encoder.')}, head, ndim=2)
    return None if shapes is None else (*encoder, shapes)


class _RivalArchitecture(_NodeSRArchitecture):
    """An arbitrary-scale rival (encoder + upsampler); ``img_mean``/``img_std`` and an EDSR encoder's
    ``res_scale`` come from the checkpoint (:func:`nodesr_arch.solver_metadata.stored_options`), else the
    network's defaults, which this project's option files use."""

    def with_hidden(self, opt, stored):
        opt = dict(opt, **{k: stored[k] for k in ('img_mean', 'img_std') if len(stored.get(k, ())) == opt['num_in_ch']})
        if stored.get('residual') is not None:
            opt['residual'] = stored['residual']
        if 'res_scale' in stored and opt.get('encoder', {}).get('type') == 'EDSRBody':
            opt['encoder'] = dict(opt['encoder'], res_scale=stored['res_scale'])
        return opt

    def build(self, opt):
        from nodesr_arch.archs import liif_arch, metasr_arch
        return getattr(liif_arch if self.kind == 'LIIF' else metasr_arch, self.kind)(**opt)


def _metasr_options(state):
    found = _rival_options(state, 'p2w.')
    if found is None:
        return None
    encoder, num_ch, num_feat, shapes = found
    if len(shapes) != 2 or shapes[0][1] != 3 or shapes[1][0] % (num_feat * num_ch):
        return None
    k = math.isqrt(shapes[1][0] // (num_feat * num_ch))
    if k * k * num_feat * num_ch != shapes[1][0] or k % 2 == 0:
        return None
    return {'encoder': encoder, 'num_in_ch': num_ch, 'num_out_ch': num_ch, 'kernel_size': k, 'hidden': shapes[0][0]}


class MetaSRArch(_RivalArchitecture):
    """``MetaSR`` on a VDSR or EDSR encoder (on RDN it is :class:`MetaRDNArch`)."""

    kind = 'MetaSR'

    def options(self, state):
        opt = _metasr_options(state)
        return None if opt is None or opt['encoder']['type'] == 'RDNBody' else opt


class MetaRDNArch(_RivalArchitecture):
    kind = 'MetaRDN'

    def options(self, state):
        opt = _metasr_options(state)
        if opt is None or opt['encoder']['type'] != 'RDNBody':
            return None
        encoder = opt.pop('encoder')
        return dict(opt, **{k: encoder[k] for k in ('num_feat', 'num_block', 'num_conv', 'num_grow')})


class LIIFArch(_RivalArchitecture):
    """``LIIF`` (feature unfolding, local ensemble and cell decoding, always on here: the MLP takes
    ``9 * features + 4`` inputs) on any of the three encoders."""

    kind = 'LIIF'

    def options(self, state):
        found = _rival_options(state, 'imnet.')
        if found is None:
            return None
        encoder, num_ch, num_feat, shapes = found
        if shapes[0][1] != 9 * num_feat + 4 or shapes[-1][0] != num_ch:
            return None
        return {'encoder': encoder, 'num_in_ch': num_ch, 'num_out_ch': num_ch,
                'hidden_list': [s[0] for s in shapes[:-1]]}


#: The architectures :func:`register_spandrel` adds, in detection order. Another network of this project (NODESR
#: with another backbone) joins by subclassing ``_NodeSRArchitecture`` (``kind``, ``options``, ``build``) and being
#: listed here.
ARCHITECTURES = (NODEVDSRArch, NODERDNArch, NODESRArch, VDSRtArch, RDNtArch, VDSRArch, RDNArch, MetaSRArch,
                 MetaRDNArch, LIIFArch)


def register_spandrel(registry=MAIN_REGISTRY, scale=DEFAULT_SCALE):
    """Add this project's architectures to spandrel's registry, after its own (safe to call again).

    Args:
        registry (spandrel.ArchRegistry): Default: spandrel's ``MAIN_REGISTRY``, which ``ModelLoader()`` uses.
        scale (int): The integer scale the descriptors of scale-aware networks get (spandrel's descriptors
            have one fixed integer ``scale``). Default: 4.

    Returns:
        list[str]: The ids of the architectures that were added.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f'scale must be an integer >= 1, got {scale!r}')
    _SCALE[0] = scale
    added = registry.add(*(ArchSupport.from_architecture(cls()) for cls in ARCHITECTURES), ignore_duplicates=True)
    return [str(a.architecture.id) for a in added]


def at_scale(descriptor, scale):
    """The same model (weights shared) as a descriptor for another integer ``scale``.

    Args:
        descriptor (ImageModelDescriptor): One that :func:`register_spandrel`'s architectures loaded.
        scale (int): >= 1.

    Raises:
        ValueError: Not an integer >= 1, or RDN (built for one scale) at another.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f'scale must be an integer >= 1, got {scale!r} (any real scale: super_resolve)')
    if hasattr(descriptor.model, 'upscale') and descriptor.model.upscale != scale:
        raise ValueError(f'this RDN was built for x{descriptor.model.upscale}; it cannot run at x{scale}')
    return describe(descriptor.architecture, descriptor.model, descriptor.nodesr_options, scale)


def super_resolve(descriptor, image, scale, **kwargs):
    """Any real scale >= 1 (or an exact ``out_size``) with a descriptor's model.

    Args:
        descriptor (ImageModelDescriptor): One that :func:`register_spandrel`'s architectures loaded.
        image (Tensor): (B, C, H, W) float in [0, 1], on the model's device.
        scale (float): The scale.
        **kwargs: More options of :meth:`nodesr_arch.api.Upscaler.super_resolve` (``out_size``, ``tile``...).

    Returns:
        Tensor: ``floor(H * scale) x floor(W * scale)`` (or ``out_size``), unclipped.
    """
    with torch.no_grad():
        return _upscaler(descriptor.model, image).super_resolve(image, scale, **kwargs)
