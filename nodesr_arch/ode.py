"""The ODE integrator shared by every NODE-SR architecture.

NODE-SR integrates ``dI/dt = f(I(t), t)`` from ``t = t0`` (the scale) down to ``t = 1``. To integrate a
batch whose samples have different ``t0`` in one solve, we change variable (DESIGN.md section 2):
``u`` in [0, 1], ``t(u) = t0 + u (1 - t0)``, ``dI/du = (1 - t0) f(I, t(u))``, each sample's ``t``
broadcast into its own scale channel. Every sample then shares the grid ``u = linspace(0, 1, N + 1)``.
"""
import math
import numbers

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint
from torchdiffeq import odeint, odeint_adjoint

FIXED_GRID_METHODS = ('euler', 'midpoint', 'rk4', 'heun2', 'heun3', 'explicit_adams', 'implicit_adams')
ADAPTIVE_METHODS = ('dopri5', 'dopri8', 'bosh3', 'fehlberg2', 'adaptive_heun', 'scipy_solver')
ODE_KEYS = ('method', 'step_size', 'num_steps', 'rtol', 'atol', 'checkpoint', 'adjoint', 'options')


def check_scale(scale, batch_size=None, device=None, dtype=torch.float32):
    """Validate scales and return them as a length-``batch_size`` tensor.

    Args:
        scale (float | Tensor): One scale, or one per sample. Every value must be a finite real >= 1.
        batch_size (int | None): Batch size to broadcast a single scale to.
        device, dtype: Of the returned tensor.

    Returns:
        Tensor: Shape (B,).

    Raises:
        ValueError: A scale is not a number, is NaN or infinite, is below 1, or the count mismatches.
    """
    if isinstance(scale, bool) or not isinstance(scale, (numbers.Real, torch.Tensor)):
        try:
            scale = torch.as_tensor(scale, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f'scale must be a real number >= 1, got {scale!r}') from None
    t = torch.as_tensor(scale, dtype=torch.float64).detach().flatten().cpu()
    if t.numel() == 0:
        raise ValueError('scale is empty')
    if not torch.isfinite(t).all():
        raise ValueError(f'scale must be finite, got {t.tolist()} (NaN or infinite)')
    if (t < 1).any():
        raise ValueError(f'scale must be >= 1, got {min(t.tolist())}')
    if batch_size is not None:
        if t.numel() == 1:
            t = t.expand(batch_size)
        elif t.numel() != batch_size:
            raise ValueError(f'got {t.numel()} scales for a batch of {batch_size}')
    return t.to(device=device, dtype=dtype)


class _ScaledField(nn.Module):
    """``dI/du = (1 - t0) f(cat(I, t(u)))`` for a batch with per-sample ``t0``.

    Args:
        func (nn.Module): ``f``: (B, C+1, H, W) -> (B, C, H, W).
        checkpoint (bool): Recompute each evaluation of ``f`` in backward.
    """

    def __init__(self, func, checkpoint=False):
        super().__init__()
        self.func = func
        self.checkpoint = checkpoint
        self.t0 = None
        self.nfe = 0

    def forward(self, u, state):
        t0 = self.t0.to(state.dtype)
        t = (t0 + u * (1 - t0)).view(-1, 1, 1, 1)
        inp = torch.cat([state, t.expand(-1, 1, state.shape[2], state.shape[3])], dim=1)
        self.nfe += 1
        if self.checkpoint and torch.is_grad_enabled():
            out = torch_checkpoint(self.func, inp, use_reentrant=False)
        else:
            out = self.func(inp)
        return out * (1 - t0).view(-1, 1, 1, 1)


class _GridConstructor:
    """torchdiffeq grid constructor: the fixed grid restricted to ``[t[0], t[-1]]``, in either direction.

    Works for the forward solve and for the reversed segments of ``odeint_adjoint``'s backward solve.
    """

    def __init__(self, grid):
        self.grid = grid

    def __call__(self, func, y0, t):
        a, b = float(t[0]), float(t[-1])
        lo, hi = min(a, b), max(a, b)
        inner = [g for g in self.grid if lo + 1e-9 < g < hi - 1e-9]
        if a > b:
            inner = inner[::-1]
        return torch.cat([t[:1], torch.tensor(inner, dtype=t.dtype, device=t.device), t[-1:]])


class ODEIntegrator(nn.Module):
    """Integrates NODE-SR's ODE from each sample's scale down to 1 with a torchdiffeq solver.

    Args:
        func (nn.Module): The network ``f``, taking the state plus one scale channel.
        method (str): Any torchdiffeq method. Default: 'rk4'.
        step_size (float): Step in scale units for fixed-grid methods. A mixed batch takes the step
            count of its largest scale: ``N = ceil(max(t0 - 1) / step_size)``. Default: 1.0.
        num_steps (int | None): Fixed step count for every sample instead of ``step_size``.
        rtol (float), atol (float): Tolerances of adaptive methods (dopri5...).
        checkpoint (bool): Recompute ``f`` in backward (torch.utils.checkpoint): memory O(one f).
        adjoint (bool): Use ``odeint_adjoint`` (memory independent of the step count).
        options (dict | None): Extra torchdiffeq options.
    """

    def __init__(self, func, method='rk4', step_size=1.0, num_steps=None, rtol=1e-3, atol=1e-4,
                 checkpoint=False, adjoint=False, options=None):
        super().__init__()
        if method not in FIXED_GRID_METHODS + ADAPTIVE_METHODS:
            raise ValueError(f'ode: method {method!r} is not a torchdiffeq method; choose one of '
                             f'{FIXED_GRID_METHODS + ADAPTIVE_METHODS}')
        if num_steps is not None and (int(num_steps) != num_steps or num_steps < 1):
            raise ValueError(f'ode: num_steps must be a positive integer, got {num_steps!r}')
        if num_steps is None and not (step_size is not None and step_size > 0):
            raise ValueError(f'ode: step_size must be > 0, got {step_size!r}')
        self.field = _ScaledField(func, checkpoint=checkpoint)
        self.method = method
        self.step_size = step_size
        self.num_steps = None if num_steps is None else int(num_steps)
        self.rtol = rtol
        self.atol = atol
        self.adjoint = adjoint
        self.options = dict(options or {})

    @property
    def func(self):
        return self.field.func

    @property
    def nfe(self):
        """Number of evaluations of ``f`` since the last call to :meth:`forward`."""
        return self.field.nfe

    def steps_for(self, t0):
        """Number of fixed-grid steps for the scales ``t0`` (tensor of shape (B,))."""
        if self.num_steps is not None:
            return self.num_steps
        span = float((t0 - 1).max())
        # 1e-6 guards float error: (3.0 - 1) / 1.0 must give 2 steps, not 3
        return max(1, math.ceil(span / self.step_size - 1e-6))

    def forward(self, x, scale, t_eval=None):
        """Integrate from ``scale`` to 1.

        Args:
            x (Tensor): Initial state ``I(t0)``, (B, C, H, W), at output size.
            scale (float | Tensor): ``t0``, one per batch or one per sample; finite and >= 1.
            t_eval (list[float] | None): Scales at which to also return states (trajectory), each in
                [1, t0]; all samples must then share one scale. The solver grid is refined to pass
                through these scales.

        Returns:
            Tensor: ``I(1)``, or with ``t_eval`` a tensor (K, B, C, H, W) of states at ``t_eval``.
        """
        t0 = check_scale(scale, x.shape[0], device=x.device, dtype=torch.float32)
        self.field.nfe = 0
        if t_eval is None and bool((t0 == 1).all()):
            return x
        if t_eval is not None:
            if not bool((t0 == t0[0]).all()):
                raise ValueError('trajectory (t_eval) needs one scale for the whole batch')
            s = float(t0[0])
            t_eval = [float(v) for v in t_eval]
            if any(not (1 - 1e-6 <= v <= s + 1e-6) for v in t_eval):
                raise ValueError(f'trajectory scales must lie in [1, {s}], got {t_eval}')
            if s == 1:
                return x.unsqueeze(0).expand(len(t_eval), *x.shape)
            u_out = [(s - v) / (s - 1) for v in t_eval]
        else:
            u_out = [1.0]
        self.field.t0 = t0
        options = dict(self.options)
        if self.method in FIXED_GRID_METHODS:
            n = self.steps_for(t0)
            grid = sorted(set([i / n for i in range(n + 1)] + [min(max(u, 0.0), 1.0) for u in u_out]))
            options.setdefault('grid_constructor', _GridConstructor(grid))
        times = sorted(set([0.0] + [min(max(u, 0.0), 1.0) for u in u_out]))
        times_t = torch.tensor(times, dtype=x.dtype, device=x.device)
        solve = odeint_adjoint if self.adjoint else odeint
        kwargs = dict(rtol=self.rtol, atol=self.atol, method=self.method, options=options or None)
        if self.adjoint:
            kwargs['adjoint_options'] = dict(norm='seminorm') if self.method in ADAPTIVE_METHODS else None
            kwargs['adjoint_params'] = tuple(self.field.parameters())
        states = solve(self.field, x, times_t, **kwargs)
        if t_eval is None:
            return states[-1]
        index = {u: i for i, u in enumerate(times)}
        return torch.stack([states[index[min(max(u, 0.0), 1.0)]] for u in u_out])
