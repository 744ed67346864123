"""torchdiffeq's solvers: their names and kinds as torchdiffeq defines them, and torchdiffeq imported without
SciPy until its SciPy solver is used.

The method names are the keys of torchdiffeq's solver table (``torchdiffeq._impl.odeint.SOLVERS``), so every
solver the installed torchdiffeq has is accepted, and a method is fixed-grid when its class is one of
torchdiffeq's ``FixedGridODESolver``; every other one (dopri5, bosh3..., scipy_solver) steps adaptively and
takes ``rtol``/``atol``.

``import torchdiffeq`` imports ``scipy.integrate`` (0.3-0.6 s, a third of ``import torch``) for one solver,
``scipy_solver``, which NODE-SR never uses by default. When this module imports torchdiffeq first, its module
``torchdiffeq._impl.scipy_wrapper`` is a stand-in whose ``ScipyWrapperODESolver`` loads the real file (and SciPy)
the first time that solver is made; every other solver is torchdiffeq's own. If torchdiffeq was imported
before, it is used as it is.

torchdiffeq's public API (``odeint``, ``odeint_adjoint``, ``odeint_event``) has no list of its methods, so this
module reads three private names: ``torchdiffeq._impl.odeint.SOLVERS``, ``torchdiffeq._impl.solvers.FixedGridODESolver``
and the module ``torchdiffeq._impl.scipy_wrapper``; :func:`one_step` calls a one-step fixed-grid solver's
``_step_func`` (same signature in 0.2.3 to 0.2.5), so that an unrolled graph takes torchdiffeq's own steps.
``setup.py`` therefore pins torchdiffeq to the releases whose internals were checked (0.2.3 to 0.2.5,
tests/test_ode.py and tests/test_export.py run against each); widen the pin only after the same check.
"""
import importlib.util
import os
import sys
import types

_WRAPPER = 'torchdiffeq._impl.scipy_wrapper'


def _real_wrapper():
    """Execute torchdiffeq's real ``scipy_wrapper.py`` under its own name (in place of the stand-in)."""
    package = sys.modules['torchdiffeq._impl']
    path = os.path.join(os.path.dirname(package.__file__), 'scipy_wrapper.py')
    spec = importlib.util.spec_from_file_location(_WRAPPER, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_WRAPPER] = module
    spec.loader.exec_module(module)
    package.scipy_wrapper = module
    return module


def _real_class():
    module = sys.modules[_WRAPPER]
    return (module if hasattr(module, '__file__') else _real_wrapper()).ScipyWrapperODESolver


class _StandIn(type):
    def __getattr__(cls, name):  # class attributes (valid_callbacks...) are the real class's
        return getattr(_real_class(), name)


class ScipyWrapperODESolver(metaclass=_StandIn):
    """Stands in for torchdiffeq's class of the same name until ``method='scipy_solver'`` is used."""

    def __new__(cls, *args, **kwargs):
        return _real_class()(*args, **kwargs)


def _import_torchdiffeq():
    if 'torchdiffeq' not in sys.modules and _WRAPPER not in sys.modules:
        stand_in = types.ModuleType(_WRAPPER, __doc__)
        stand_in.ScipyWrapperODESolver = ScipyWrapperODESolver
        sys.modules[_WRAPPER] = stand_in
    import torchdiffeq
    return torchdiffeq


torchdiffeq = _import_torchdiffeq()
odeint, odeint_adjoint = torchdiffeq.odeint, torchdiffeq.odeint_adjoint
from torchdiffeq._impl.odeint import SOLVERS  # noqa: E402  (the table odeint looks methods up in)
from torchdiffeq._impl.solvers import FixedGridODESolver  # noqa: E402


def methods():
    """The method names the installed torchdiffeq accepts (its ``SOLVERS`` table, read at each call)."""
    return tuple(SOLVERS)


def is_fixed_grid(method):
    """True if torchdiffeq solves ``method`` on a fixed grid (its class is a ``FixedGridODESolver``).

    Args:
        method (str): A name of :func:`methods`.
    """
    return issubclass(SOLVERS[method], FixedGridODESolver)


#: The methods of the torchdiffeq installed at import, fixed-grid and adaptive (for messages and docs).
FIXED_GRID_METHODS = tuple(m for m in methods() if is_fixed_grid(m))
ADAPTIVE_METHODS = tuple(m for m in methods() if not is_fixed_grid(m))


#: Fixed-grid methods whose step needs nothing but the current state (torchdiffeq's ``fixed_grid`` module: euler,
#: midpoint, rk4, and heun2/heun3 where the release has them); the Adams methods carry earlier steps along.
ONE_STEP_METHODS = tuple(m for m in FIXED_GRID_METHODS if SOLVERS[m].__module__.endswith('.fixed_grid'))


def one_step(method):
    """torchdiffeq's step of a one-step fixed-grid method as a plain function.

    Args:
        method (str): A name of :data:`ONE_STEP_METHODS`.

    Returns:
        callable: ``step(rate, u0, du, u1, state)`` -> the increment of ``state`` over ``[u0, u1]`` (``du = u1 - u0``),
        where ``rate(u, state)`` is the field; ``u0``, ``du``, ``u1`` may be floats or tensors that broadcast with
        ``state`` (one grid per sample).
    """
    solver = SOLVERS[method]
    unperturbed = types.SimpleNamespace(perturb=False)  # the one attribute the step functions read

    def step(rate, u0, du, u1, state):
        increment, _ = solver._step_func(unperturbed, lambda u, y, perturb=None: rate(u, y), u0, du, u1, state)
        return increment

    return step
