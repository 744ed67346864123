"""The ODE integrator shared by every NODE-SR architecture.

NODE-SR integrates ``dI/dt = f(I(t), t)`` from ``t = t0`` (the scale) down to ``t = 1``. To integrate a
batch whose samples have different ``t0`` in one solve, we change variable (docs/design.md section 2.6):
``u`` in [0, 1], ``t(u) = t0 + u (1 - t0)``, ``dI/du = (1 - t0) f(I, t(u))``, each sample's ``t``
broadcast into its own scale channel. Every sample then shares the grid ``u = linspace(0, 1, N + 1)``.
"""
import math
import numbers

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from nodesr_arch import scales
from nodesr_arch.amp import autocast, current_autocast
from nodesr_arch.archs.contract import NO_TILING, apply_tiled, with_scale
from nodesr_arch.archs.solvers import is_fixed_grid, methods, odeint, odeint_adjoint
from nodesr_arch.scales import check_scales

ODE_KEYS = ('method', 'step_size', 'num_steps', 'rtol', 'atol', 'checkpoint', 'adjoint', 'options', 'time')
TIME_MAPS = ('linear', 'sqrt')


def scale_at(t0, u, time='linear'):
    """The scale ``t`` at ``u`` in [0, 1] and the factor that turns the network's output into ``dI/du``.

    ``linear`` (the paper): ``t(u) = t0 + u (1 - t0)``, the network is ``f = dI/dt`` and
    ``dI/du = (1 - t0) f``. ``sqrt``: ``tau = sqrt(t - 1)`` runs linearly from ``sqrt(t0 - 1)`` to 0, the
    network is ``g = dI/dtau`` and ``dI/du = -sqrt(t0 - 1) g``. It is the paper's ODE with
    ``f(I, t) = g(I, t) / (2 sqrt(t - 1))``: an output scaling of ``f`` that grows near ``t = 1``, so at
    x1.1 ``g`` needs about residual / 0.32 where the paper's ``f`` needs residual / 0.1 (docs/design.md
    section 2.5).

    Args:
        t0 (Tensor): Scales, any shape. u (float | Tensor): Integration variable.
        time (str): 'linear' or 'sqrt'.

    Returns:
        tuple[Tensor, Tensor]: ``t(u)`` and ``dt``-to-``du`` factor, both shaped like ``t0``.
    """
    if time == 'sqrt':
        tau0 = (t0 - 1).clamp_min(0).sqrt()
        tau = tau0 * (1 - u)
        return 1 + tau * tau, -tau0
    return t0 + u * (1 - t0), 1 - t0


def u_at(t0, t, time='linear'):
    """The inverse of :func:`scale_at` for one scale: ``u`` at which the solve passes scale ``t`` (floats)."""
    if t0 == 1:
        return 0.0
    if time == 'sqrt':
        u = 1 - math.sqrt(max(t - 1, 0.0) / (t0 - 1))
    else:
        u = (t0 - t) / (t0 - 1)
    return max(min(u, 1.0), 0.0)


class _ScaledField(nn.Module):
    """Holds ``f``; :meth:`bind` gives the field ``dI/du = (1 - t0) f(cat(I, t(u)))`` of one batch.

    Args:
        func (nn.Module): ``f``: (B, C+1, H, W) -> (B, C, H, W).
        checkpoint (bool): Recompute each evaluation of ``f`` in backward.
    """

    def __init__(self, func, checkpoint=False):
        super().__init__()
        self.func = func
        self.checkpoint = checkpoint
        self.nfe = 0

    def evaluate(self, state, t, tiling=NO_TILING):
        """``f(cat(state, t))``, checkpointed as configured, evaluated as ``tiling`` says. ``t``: (B, 1, 1, 1)."""

        def f(window):
            return self.func(with_scale(window, t))

        def run(window):
            if self.checkpoint and torch.is_grad_enabled():
                return torch_checkpoint(f, window, use_reentrant=False)
            return f(window)

        self.nfe += 1
        return apply_tiled(run, state, tiling)

    def bind(self, t0, time='linear', tiling=NO_TILING):
        """The vector field for a batch with scales ``t0`` (B,), as a module torchdiffeq can call.

        Binding per call (rather than storing ``t0`` here) keeps an adjoint backward correct when the
        network ran on another batch in between. ``time``: see :func:`scale_at`; ``tiling``: the call's.
        """
        return _BoundField(self, t0, time, tiling)


class _BoundField(nn.Module):
    """The field of one batch.

    Under autocast (mixed precision) ``f`` runs in bf16/fp16 and its value is cast back to the state's
    dtype, so the ODE state and the solver's sums stay fp32 (a bf16 state costs 0.009 dB on Set5 x4, an
    fp32 state 0.0003 dB: docs/benchmarks.md, section 7). The autocast state of the forward call is kept,
    so ``odeint_adjoint``'s backward solve, which runs after the caller's autocast block has closed,
    evaluates the same ``f`` as the forward solve did.
    """

    def __init__(self, field, t0, time='linear', tiling=NO_TILING):
        super().__init__()
        object.__setattr__(self, 'field', field)  # a reference, not a submodule
        self.t0 = t0.view(-1, 1, 1, 1)
        self.time = time
        self.tiling = tiling
        self.amp = current_autocast(t0.device.type)

    def forward(self, u, state):
        t, factor = scale_at(self.t0.to(state.dtype), u, self.time)
        with autocast(state.device, self.amp):
            rate = self.field.evaluate(state, t, self.tiling)
        return rate.to(state.dtype) * factor


class _GridConstructor:
    """torchdiffeq grid constructor: the fixed grid restricted to ``[t[0], t[-1]]``, in either direction.

    Works for the forward solve and for the reversed segments of ``odeint_adjoint``'s backward solve.
    """

    def __init__(self, grid):
        self.grid = grid

    def __call__(self, func, y0, t):
        grid = torch.tensor(self.grid, dtype=t.dtype, device=t.device)
        lo, hi = torch.minimum(t[0], t[-1]), torch.maximum(t[0], t[-1])
        inner = grid[(grid > lo) & (grid < hi)]  # compared in t's dtype: no near-duplicate points
        if t[0] > t[-1]:
            inner = inner.flip(0)
        return torch.cat([t[:1], inner, t[-1:]])


class ODEIntegrator(nn.Module):
    """Integrates NODE-SR's ODE from each sample's scale down to 1 with a torchdiffeq solver.

    Args:
        func (nn.Module): The network ``f``, taking the state plus one scale channel.
        method (str): Any torchdiffeq method. Default: 'rk4' (torchdiffeq's 3/8-rule variant).
        step_size (float | None): Step in scale units for fixed-grid methods. The grid has
            ``N = ceil(max(t0 - 1) / step_size)`` equal steps, so a mixed batch takes the step count of
            its largest scale. Default (None): 1.0 unless ``num_steps`` is given.
        num_steps (int | None): Fixed step count for every sample instead of ``step_size``; each sample
            of a mixed batch then gets exactly what it gets alone. Give ``step_size`` or ``num_steps``.
        rtol (float), atol (float): Tolerances of adaptive methods (dopri5...). Default: 1e-3, 1e-4.
        checkpoint (bool): Recompute each evaluation of ``f`` in backward (torch.utils.checkpoint), so
            only the ODE states, not ``f``'s activations, are kept for backward. Default: False.
        adjoint (bool): Use ``odeint_adjoint`` (memory independent of the step count). Default: False.
        options (dict | None): Extra torchdiffeq options.
        time (str): How the solve runs through the scales (:func:`scale_at`): 'linear' (the paper;
            default) or 'sqrt' (steps even in ``sqrt(t - 1)``; ``step_size`` is then in those units).
    """

    def __init__(self, func, method='rk4', step_size=None, num_steps=None, rtol=1e-3, atol=1e-4,
                 checkpoint=False, adjoint=False, options=None, time='linear'):
        super().__init__()
        if time not in TIME_MAPS:
            raise ValueError(f'ode: time must be one of {list(TIME_MAPS)}, got {time!r}')
        self.time = time
        if not isinstance(method, str) or method not in methods():
            raise ValueError(f'ode: method {method!r} is not a torchdiffeq method; choose one of {list(methods())}')
        if num_steps is not None and step_size is not None:
            raise ValueError(f'ode: give step_size or num_steps, not both (got step_size={step_size!r}, '
                             f'num_steps={num_steps!r})')
        if num_steps is not None and (isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Real)
                                      or int(num_steps) != num_steps or num_steps < 1):
            raise ValueError(f'ode: num_steps must be a positive integer, got {num_steps!r}')
        if num_steps is None:
            step_size = 1.0 if step_size is None else step_size
            if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real) or not (
                    math.isfinite(step_size) and step_size > 0):
                raise ValueError(f'ode: step_size must be a finite number > 0, got {step_size!r}')
        for name, tol in (('rtol', rtol), ('atol', atol)):
            if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol > 0:
                raise ValueError(f'ode: {name} must be a number > 0, got {tol!r}')
        self.field = _ScaledField(func, checkpoint=bool(checkpoint))
        self.method = method
        self.step_size = None if num_steps is not None else float(step_size)
        self.num_steps = None if num_steps is None else int(num_steps)
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.adjoint = bool(adjoint)
        self.options = dict(options or {})

    @property
    def func(self):
        return self.field.func

    def solver_options(self):
        """The solver as built, defaults filled in: ``method``, ``step_size`` or ``num_steps``, ``rtol``, ``atol``."""
        steps = {'num_steps': self.num_steps} if self.num_steps is not None else {'step_size': self.step_size}
        return {'method': self.method, **steps, 'rtol': self.rtol, 'atol': self.atol}

    @property
    def nfe(self):
        """Number of evaluations of ``f`` since the last call to :meth:`forward` (adjoint backward
        evaluations included)."""
        return self.field.nfe

    def steps_for(self, t0):
        """Number of fixed-grid steps for the scales ``t0`` (tensor of shape (B,))."""
        if self.num_steps is not None:
            return self.num_steps
        return scales.num_steps(float((t0 - 1).max()), self.step_size, self.time)

    def forward(self, x, scale, t_eval=None, tiling=NO_TILING):
        """Integrate from ``scale`` to 1.

        Args:
            x (Tensor): Initial state ``I(t0)``, (B, C, H, W), at output size.
            scale (float | Tensor): ``t0``, one per batch or one per sample; finite and >= 1.
            t_eval (list[float] | None): Scales at which to also return states (trajectory), each in
                [1, t0]; all samples must then share one scale. Fixed-grid solvers step exactly through
                these scales (the grid is refined there).
            tiling (Tiling): How to evaluate ``f`` in this call (the integrator keeps none of its own).
                Default: whole.

        Returns:
            Tensor: ``I(1)``, or with ``t_eval`` a tensor (K, B, C, H, W) of states at ``t_eval``.
        """
        dtype = x.dtype if x.is_floating_point() else torch.float32
        t0 = check_scales(scale, x.shape[0], device=x.device, dtype=dtype)
        self.field.nfe = 0
        if t_eval is None:
            if bool((t0 == 1).all()):
                return x
            u_out = [1.0]
        else:
            if not bool((t0 == t0[0]).all()):
                raise ValueError('trajectory (t_eval) needs one scale for the whole batch')
            s = float(t0[0])
            t_eval = check_scales(t_eval, dtype=torch.float64, name='t_eval').tolist()
            if any(v > s * (1 + scales.EPS) for v in t_eval):
                raise ValueError(f'trajectory scales must lie in [1, {s:g}], got {t_eval}')
            if s == 1:
                return x.unsqueeze(0).expand(len(t_eval), *x.shape)
            u_out = [u_at(s, v, self.time) for v in t_eval]
        times = sorted(set([0.0] + u_out))
        options = dict(self.options)
        if is_fixed_grid(self.method) and not {'step_size', 'grid_constructor'} & set(options):
            n = self.steps_for(t0)
            options['grid_constructor'] = _GridConstructor(sorted(set([i / n for i in range(n + 1)] + times)))
        times_t = torch.tensor(times, dtype=dtype, device=x.device)
        field = self.field.bind(t0, self.time, tiling)
        kwargs = dict(rtol=self.rtol, atol=self.atol, method=self.method, options=options or None)
        if self.adjoint:
            kwargs['adjoint_params'] = tuple(p for p in self.field.parameters() if p.requires_grad)
            if not is_fixed_grid(self.method):
                kwargs['adjoint_options'] = dict(options, norm='seminorm')
            states = odeint_adjoint(field, x, times_t, **kwargs)
        else:
            states = odeint(field, x, times_t, **kwargs)
        if t_eval is None:
            return states[-1]
        index = {u: i for i, u in enumerate(times)}
        return torch.stack([states[index[u]] for u in u_out])
