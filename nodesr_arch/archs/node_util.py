"""Pieces shared by the NODE-SR architectures: the ODE wrapper and the one-shot ``+t`` wrapper."""
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from nodesr_arch.archs.ode import ODE_KEYS, ODEIntegrator
from nodesr_arch.archs.tiling import tiled_apply
from nodesr_arch.scales import check_scales


def scale_channel(x, scale):
    """``x`` with one more channel filled with each sample's scale.

    Args:
        x (Tensor): (B, C, H, W).
        scale (float | Tensor): One scale or one per sample.
    """
    t = check_scales(scale, x.shape[0], device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    return torch.cat([x, t.expand(-1, 1, x.shape[2], x.shape[3])], dim=1)


def pad_to_multiple(x, multiple):
    """Reflect-pad the bottom and right of ``x`` so H and W are multiples of ``multiple``.

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor and the original (H, W).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = 'reflect' if ph < h and pw < w else 'replicate'
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def check_tiling(tile, tile_pad, radius, multiple=1):
    """Validate tiling options; fill ``tile_pad`` from the receptive radius and round both up to
    ``multiple``.

    Returns:
        tuple[int | None, int]: ``(tile, tile_pad)``; ``tile`` None means tiling is off.
    """
    if tile is None:
        return None, 0
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 1:
        raise ValueError(f'tile must be a positive integer or None, got {tile!r}')
    if tile_pad is None:
        if radius is None:
            raise ValueError('tile_pad is required: the receptive radius of this network is unknown '
                             '(give receptive_radius in its options, or a tile_pad)')
        tile_pad = radius
    if isinstance(tile_pad, bool) or not isinstance(tile_pad, numbers.Integral) or tile_pad < 0:
        raise ValueError(f'tile_pad must be a non-negative integer, got {tile_pad!r}')
    return -(-int(tile) // multiple) * multiple, -(-int(tile_pad) // multiple) * multiple


class TilingMixin:
    """``set_tiling`` and ``receptive_radius`` for architectures that evaluate a same-resolution ``f``.

    Subclasses set ``self.radius`` (f's receptive radius in pixels, or None when unknown).
    """

    radius = None
    size_multiple = 1

    def receptive_radius(self):
        """Receptive radius of ``f`` in pixels (a ``tile_pad`` at least this large makes tiling exact),
        or None when unknown."""
        return self.radius

    def set_tiling(self, tile=None, tile_pad=None):
        """Evaluate ``f`` on overlapping tiles to bound memory.

        Each evaluation of ``f`` runs on tiles of at most ``tile`` x ``tile`` pixels grown by ``tile_pad``
        on each side and keeps their centres (the image itself, i.e. the ODE state, stays whole). With
        ``tile_pad >= receptive_radius()`` the output equals the untiled one (to float rounding).

        Args:
            tile (int | None): Tile side; None turns tiling off.
            tile_pad (int | None): Overlap; None uses :meth:`receptive_radius`.

        Returns:
            The network itself.
        """
        self.tile, self.tile_pad = check_tiling(tile, tile_pad, self.receptive_radius(), self.size_multiple)
        self._apply_tiling()
        return self

    def _apply_tiling(self):
        pass


class NODEBase(TilingMixin, nn.Module):
    """NODE-SR around a same-resolution network ``f``: ``I(1) = ODESolve(I(t0), f, [t0, 1])``.

    The whole solve runs inside :meth:`forward`, so DistributedDataParallel sees one forward per step.

    Args:
        func (nn.Module): ``f``, (B, C+1, H, W) -> (B, C, H, W); its last input channel is ``t``.
        ode (dict | None): Solver options: method, step_size or num_steps, rtol, atol, checkpoint,
            adjoint, options. See :class:`nodesr_arch.archs.ode.ODEIntegrator`.
        size_multiple (int): Pad H and W to a multiple of this for ``f`` (1: no padding).
        receptive_radius (int | None): Receptive radius of ``f`` in pixels, if known (for tiling).
    """

    takes_scale = True  # forward(x, scale) with x the bicubic-enlarged image at output size
    input_size = 'output'

    def __init__(self, func, ode=None, size_multiple=1, receptive_radius=None):
        super().__init__()
        ode = dict(ode or {})
        unknown = set(ode) - set(ODE_KEYS)
        if unknown:
            raise ValueError(f'ode: unknown key(s) {sorted(unknown)}; allowed: {list(ODE_KEYS)}')
        self.ode_opt = ode
        self.ode = ODEIntegrator(func, **ode)
        self.size_multiple = int(size_multiple)
        self.radius = receptive_radius
        self.tile, self.tile_pad = None, 0

    @property
    def func(self):
        return self.ode.func

    def _apply_tiling(self):
        self.ode.set_tiling(self.tile, self.tile_pad, self.size_multiple)

    def set_ode(self, **kwargs):
        """Replace solver options (e.g. ``method='euler', num_steps=4``) keeping weights and tiling."""
        opt = dict(self.ode_opt)
        if kwargs.get('num_steps') is not None:
            opt.pop('step_size', None)
        if kwargs.get('step_size') is not None:
            opt.pop('num_steps', None)
        opt.update({k: v for k, v in kwargs.items() if v is not None})
        unknown = set(opt) - set(ODE_KEYS)
        if unknown:
            raise ValueError(f'ode: unknown key(s) {sorted(unknown)}; allowed: {list(ODE_KEYS)}')
        self.ode = ODEIntegrator(self.ode.func, **opt)
        self.ode_opt = opt
        self._apply_tiling()
        return self

    def forward(self, x, scale, t_eval=None):
        """Super-resolve.

        Args:
            x (Tensor): ``I(t0)``: the LR image enlarged bicubically to the output size, (B, 3, H, W).
            scale (float | Tensor): ``t0`` per batch or per sample, >= 1.
            t_eval (list[float] | None): Also return the states at these scales (K, B, 3, H, W).
        """
        x, (h, w) = pad_to_multiple(x, self.size_multiple)
        out = self.ode(x, scale, t_eval=t_eval)
        return out[..., :h, :w]


class OneShotBase(TilingMixin, nn.Module):
    """The paper's ``+t`` baselines: ``SR = I(s) + g(cat(I(s), s))``, one evaluation of ``g``.

    Args:
        func (nn.Module): ``g``, (B, C+1, H, W) -> (B, C, H, W).
        receptive_radius (int | None): Receptive radius of ``g`` in pixels, if known (for tiling).
    """

    takes_scale = True
    input_size = 'output'

    def __init__(self, func, receptive_radius=None):
        super().__init__()
        self.func = func
        self.radius = receptive_radius
        self.tile, self.tile_pad = None, 0

    def forward(self, x, scale):
        t = check_scales(scale, x.shape[0], device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)

        def g(window):
            return self.func(torch.cat([window, t.expand(-1, 1, window.shape[2], window.shape[3])], dim=1))

        return x + tiled_apply(g, x, self.tile, self.tile_pad)
