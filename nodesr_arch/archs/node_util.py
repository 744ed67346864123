"""Pieces shared by the NODE-SR architectures: the ODE wrapper and the one-shot ``+t`` wrapper."""
import torch.nn.functional as F
from torch import nn

from nodesr_arch.archs.contract import SRNetwork, apply_tiled, with_scale
from nodesr_arch.archs.ode import ODE_KEYS, ODEIntegrator
from nodesr_arch.scales import check_scales


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


class NODEBase(SRNetwork, nn.Module):
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
    is_ode = True

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

    @property
    def func(self):
        return self.ode.func

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
        return self

    def forward(self, x, scale, t_eval=None, tiling=None):
        """Super-resolve.

        Args:
            x (Tensor): ``I(t0)``: the LR image enlarged bicubically to the output size, (B, 3, H, W).
            scale (float | Tensor): ``t0`` per batch or per sample, >= 1.
            t_eval (list[float] | None): Also return the states at these scales (K, B, 3, H, W).
            tiling (Tiling | None): This call's tiling (:meth:`tiling_for`); None: the network's default.
        """
        x, (h, w) = pad_to_multiple(x, self.size_multiple)
        out = self.ode(x, scale, t_eval=t_eval, tiling=self.tiling if tiling is None else tiling)
        return out[..., :h, :w]


class OneShotBase(SRNetwork, nn.Module):
    """The paper's ``+t`` baselines: ``SR = I(s) + g(cat(I(s), s))``, one evaluation of ``g``.

    Args:
        func (nn.Module): ``g``, (B, C+1, H, W) -> (B, C, H, W).
        receptive_radius (int | None): Receptive radius of ``g`` in pixels, if known (for tiling).
    """

    takes_scale = True

    def __init__(self, func, receptive_radius=None):
        super().__init__()
        self.func = func
        self.radius = receptive_radius

    def forward(self, x, scale, tiling=None):
        """``I(s) + g(cat(I(s), s))``; ``tiling``: this call's (:meth:`tiling_for`), None: the network's default."""
        t = check_scales(scale, x.shape[0], device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        return x + apply_tiled(lambda window: self.func(with_scale(window, t)), x,
                               self.tiling if tiling is None else tiling)
