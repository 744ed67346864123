"""Solver settings of a NODE model at inference, for benchmarks: ``rk4:2``, ``dopri5:1e-5:1e-6``, ``trained``.

One loaded model serves every setting: :class:`SolverSetting` sets the solver before each call and
records the number of evaluations of f (NFE) and the time of each call.
"""
import time

from nodesr_arch.archs.solvers import ADAPTIVE_METHODS, FIXED_GRID_METHODS, is_fixed_grid, methods

SOLVER_KEYS = ('method', 'step_size', 'num_steps', 'rtol', 'atol')


def parse_setting(text, trained):
    """``(label, ode options)`` of a setting.

    Args:
        text (str): ``METHOD:STEPS`` (a fixed-grid method with ``num_steps`` STEPS, e.g. ``rk4:2``),
            ``METHOD:hSIZE`` (a fixed-grid method with ``step_size`` SIZE in scale units, e.g. ``rk4:h1``),
            ``METHOD:RTOL:ATOL`` (an adaptive method, e.g. ``dopri5:1e-3:1e-4``) or ``trained`` (the
            solver options the model was built with).
        trained (dict): The model's solver as built (``ODEIntegrator.solver_options``).

    Raises:
        ValueError: Not one of these forms.
    """
    if text == 'trained':
        opt = {k: v for k, v in trained.items() if k in SOLVER_KEYS}  # tolerances too: an earlier setting's
        if opt['method'] in methods() and not is_fixed_grid(opt['method']):  # must not carry over
            how = f"rtol {opt['rtol']:g} atol {opt['atol']:g}"
        else:
            how = f"num_steps {opt['num_steps']}" if opt.get('num_steps') else f"step_size {opt['step_size']:g}"
        return f"trained ({opt['method']}, {how})", opt
    parts = text.split(':')
    method = parts[0]
    fixed = method in methods() and is_fixed_grid(method)
    adaptive = method in methods() and not fixed
    try:
        if fixed and len(parts) == 2 and parts[1].startswith('h') and float(parts[1][1:]) > 0:
            h = float(parts[1][1:])
            return f'{method}, step_size {h:g}', {'method': method, 'step_size': h}
        if fixed and len(parts) == 2 and int(parts[1]) >= 1:
            n = int(parts[1])
            return f"{method}, {n} step{'s' if n > 1 else ''}", {'method': method, 'num_steps': n}
        if adaptive and len(parts) == 3 and float(parts[1]) > 0 and float(parts[2]) > 0:
            rtol, atol = float(parts[1]), float(parts[2])
            return f'{method}, rtol {rtol:g} atol {atol:g}', {'method': method, 'rtol': rtol, 'atol': atol}
    except ValueError:
        pass
    raise ValueError(f"bad solver setting {text!r}: use 'trained', METHOD:STEPS or METHOD:hSTEP_SIZE for "
                     f"{', '.join(FIXED_GRID_METHODS)}"
                     f", or METHOD:RTOL:ATOL for {', '.join(ADAPTIVE_METHODS)}")


class SolverSetting:
    """One solver setting of a loaded NODE model, usable as a ``nodesr benchmark`` model.

    Args:
        upscaler (nodesr_arch.api.Upscaler): The loaded NODE model (may be shared by several settings).
        ode (dict): Solver options for ``set_ode``.

    Attributes:
        nfe (dict): ``{scale: [NFE of each call]}``.
        seconds (dict): ``{scale: [seconds of each call]}``.
    """

    def __init__(self, upscaler, ode):
        self.up, self.ode = upscaler, dict(ode)
        self.net = upscaler.net  # the benchmark loop reads net.input_size
        self.nfe, self.seconds = {}, {}

    def super_resolve(self, lr, scale, out_size=None, self_ensemble=False, **kwargs):
        """:meth:`Upscaler.super_resolve` under this setting."""
        self.up.set_ode(**self.ode)
        start = time.perf_counter()
        sr = self.up.super_resolve(lr, scale, out_size, self_ensemble=self_ensemble, **kwargs)
        self.seconds.setdefault(scale, []).append(time.perf_counter() - start)
        self.nfe.setdefault(scale, []).append(self.up.nfe)
        return sr


def expand(models, settings):
    """Each NODE model of ``[(name, model)]`` once per setting (``NAME [label]``); others as they are."""
    if not settings:
        return list(models)
    out = []
    for name, model in models:
        if getattr(model, 'is_ode', False):  # Upscaler.is_ode, from the network's contract
            trained = model.net.ode.solver_options()
            out += [(f'{name} [{label}]', SolverSetting(model, ode))
                    for label, ode in (parse_setting(s, trained) for s in settings)]
        else:
            out.append((name, model))
    return out
