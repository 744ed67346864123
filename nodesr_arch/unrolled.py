"""A NODE model's fixed-step solve as a straight line of tensor operations, for graph export.

``NODEBase.forward`` is not exportable as it is: :func:`nodesr_arch.archs.ode.check_scale` validates the scale
with ``if not torch.isfinite(t).all()`` and ``if (t < 1).any()``, and the step count and torchdiffeq's
time-grid checks are Python decisions on tensor values too. ``torch.export`` cannot guard on such
data-dependent values (``GuardOnDataDependentSymNode``: the scale as a graph input fails at the first
check, a fixed scale at torchdiffeq's ``_check_timelike``), and the legacy TorchScript tracer records
them as constants of the traced example (a dozen ``TracerWarning`` s, and torchdiffeq's in-place solution
buffer becomes ``ScatterND`` nodes): that it gives the right graph is an accident of the example.

:class:`UnrolledNODE` takes every such decision once, in Python, when it is built: the scale (or, with the
scale as an input, the step count) is checked there, and the grid and the Runge-Kutta coefficients are
plain numbers, so the graph holds only the evaluations of ``f`` and their weighted sums: each step is
torchdiffeq's own step function (:func:`nodesr_arch.archs.solvers.one_step`) on the field ``dI/du`` of
:func:`nodesr_arch.archs.ode.scale_at`, ``f``'s scale channel added by :func:`nodesr_arch.archs.contract.with_scale`.
With the scale as an input and a network that steps by ``step_size``, the step rule of ``nodesr infer`` is in the graph
instead: each sample takes ``ceil((s - 1) / step_size)`` steps (the steps a graph unrolls beyond a
sample's count leave it as it is), up to the count at a largest scale fixed when the graph is built.
"""

import torch
from torch import nn

from nodesr_arch.archs.contract import contract, with_scale
from nodesr_arch.archs.node_util import pad_to_multiple
from nodesr_arch.archs.ode import scale_at
from nodesr_arch.archs.solvers import ONE_STEP_METHODS, one_step
from nodesr_arch.scales import EPS, check_scale

#: The most steps a graph unrolls: every step is one more copy of the network's operations in the graph (100 rk4
#: steps of NODE-VDSR-S: 400 copies of its 8 layers; at ``step_size`` 1 that covers x101).
MAX_STEPS = 100


def check_num_steps(num_steps, scale=None):
    """Check a step count for an unrolled graph: an integer from 1 (0 at scale 1) to :data:`MAX_STEPS`.

    Args:
        num_steps (int): The count. scale (float | None): The fixed scale it was computed for, if any (named
            in the message).

    Returns:
        int: ``num_steps``.

    Raises:
        ValueError: One line naming the count and the bound.
    """
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < (0 if scale == 1 else 1):
        raise ValueError(f'num_steps must be a positive integer, got {num_steps!r}')
    if num_steps > MAX_STEPS:
        at = f' (the count at scale {scale:g})' if scale is not None else ''
        raise ValueError(f'{int(num_steps)} solver steps{at} is more than an unrolled graph holds (at most '
                         f'{MAX_STEPS}: each step is one more copy of the network in the graph); give a smaller scale '
                         'or fewer steps')
    return int(num_steps)


class UnrolledNODE(nn.Module):
    """The ODE solve of a NODE-SR network with a fixed step count, unrolled.

    With a fixed ``scale`` it computes what ``net(x, scale)`` computes with the network's own solver
    settings (``step_size`` or ``num_steps``). With ``scale=None`` the scale is an input of :meth:`forward`
    (one per sample): given ``num_steps`` (or a network with ``ode: {num_steps: N}``), every call takes that
    many steps; otherwise each sample takes the network's ``step_size`` count at its scale, what ``net``
    (and ``nodesr infer``) takes for that sample alone, up to the count at ``max_scale`` (:attr:`step_size`
    is then set and :attr:`num_steps` is that largest count; larger scales take it too).

    Args:
        net (NODEBase): A NODE-SR network (NODEVDSR, NODERDN, NODESR); its weights are shared, not copied.
        scale (float | None): The scale ``t0`` fixed in the graph, or None for a scale input.
        num_steps (int | None): Steps, at most :data:`MAX_STEPS`. Default: the network's count at ``scale``
            (its ``step_size`` or ``num_steps``); with a scale input, see above.
        method (str | None): A one-step fixed-grid method of torchdiffeq
            (:data:`nodesr_arch.archs.solvers.ONE_STEP_METHODS`). Default: the network's.
        max_scale (float | None): With a scale input, a network with ``step_size`` and no ``num_steps``:
            the largest scale whose step count the graph holds (required then).

    Raises:
        ValueError: Not a NODE network, a bad scale, a method without a fixed grid (dopri5...), more steps
            than :data:`MAX_STEPS`, or neither ``num_steps`` nor ``max_scale`` for a scale input.
    """

    def __init__(self, net, scale=None, num_steps=None, method=None, max_scale=None):
        super().__init__()
        if not contract(net).is_ode:
            raise ValueError(f'{type(net).__name__} is not a NODE-SR network (NODEVDSR, NODERDN, NODESR)')
        method = method or net.ode.method
        if method not in ONE_STEP_METHODS:
            raise ValueError(f'method {method!r} cannot be unrolled: use a fixed-step method '
                             f'({", ".join(ONE_STEP_METHODS)}); adaptive methods (dopri5...) choose their steps from '
                             'the data')
        self.step_size = None
        if scale is not None:
            scale = check_scale(scale)
            if num_steps is None:
                num_steps = 0 if scale == 1 else net.ode.steps_for(torch.tensor([scale]))
        elif num_steps is None:
            num_steps = net.ode.num_steps
            if num_steps is None:
                if max_scale is None:
                    raise ValueError('with the scale as an input give num_steps (the same for every scale) or '
                                     'max_scale (the graph then takes ceil((s - 1) / step_size) steps at scale s, '
                                     f'step_size {net.ode.step_size:g}, up to the count at max_scale)')
                max_scale = check_scale(max_scale, 'max_scale')
                num_steps = net.ode.steps_for(torch.tensor([max_scale]))
                self.step_size = net.ode.step_size
                scale_of_count = max_scale
        self.func = net.func
        self.size_multiple = net.size_multiple
        self.scale = scale
        self.max_scale = max_scale if self.step_size is not None else None
        self.num_steps = check_num_steps(num_steps, scale if self.step_size is None else scale_of_count)
        self.method = method
        self.step = one_step(method)
        self.time = net.ode.time

    def steps_at(self, t0):
        """Each sample's step count, (B, 1, 1, 1) float, as :func:`nodesr_arch.scales.num_steps` counts it,
        at most :attr:`num_steps` (with :attr:`step_size` only)."""
        span = (t0 - 1).clamp_min(0)
        if self.time == 'sqrt':
            span = span.sqrt()
        return torch.ceil(span * ((1 - EPS) / self.step_size)).clamp(1, self.num_steps)

    def rate(self, state, t0, u):
        """``dI/du`` at ``u`` (:func:`nodesr_arch.archs.ode.scale_at`); ``t0``: (B, 1, 1, 1)."""
        t, factor = scale_at(t0, u, self.time)
        t = t.expand(state.shape[0], -1, -1, -1).to(state.dtype)  # a batch-wide scale, given as (1, 1, 1, 1)
        return self.func(with_scale(state, t)).to(state.dtype) * factor

    def forward(self, x, scale=None):
        """Super-resolve.

        Args:
            x (Tensor): ``I(t0)``, the LR image enlarged bicubically to the output size, (B, C, H, W).
            scale (Tensor | None): ``t0`` per sample, (B,) (or (1,) for the whole batch), each finite and
                >= 1: not checked in the graph, the caller checks it. Only without a fixed scale.

        Returns:
            Tensor: ``I(1)``, (B, C, H, W).
        """
        if (scale is None) != (self.scale is not None):
            raise ValueError('this graph has the scale fixed at build time' if self.scale is not None
                             else 'this graph takes the scale as its second input')
        x, (h, w) = pad_to_multiple(x, self.size_multiple)
        t0 = torch.full_like(x[:, :1, :1, :1], self.scale) if scale is None else scale.reshape(-1, 1, 1, 1).to(x)
        state = x
        steps = self.steps_at(t0) if self.step_size is not None else None
        n = self.num_steps if steps is None else steps  # the sample's own grid of steps[b] steps (a tensor)
        for i in range(self.num_steps):
            u0, u1 = i / n, (i + 1) / n
            increment = self.step(lambda u, y: self.rate(y, t0, u), u0, u1 - u0, u1, state)
            state = state + increment if steps is None else torch.where(steps > i, state + increment, state)
        return state[..., :h, :w]  # steps beyond a sample's own count kept its state
