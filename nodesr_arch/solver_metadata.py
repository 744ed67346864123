"""The solver a NODE network was saved with, kept in its checkpoint for loaders that see only the weights.

A BasicSR checkpoint is ``{'params': state_dict, ...}``; loaders such as spandrel (ComfyUI, chaiNNer) keep
only that state dict. The solver settings therefore ride in the state dict's ``_metadata``, the attribute
in which ``nn.Module.state_dict`` already records each module's version: ``torch.save``/``torch.load``
(``weights_only`` too) keep it, ``load_state_dict`` ignores what it does not know, and no key is added, so
every loader reads the weights as before. ``_metadata['']['nodesr_ode']`` holds ``method`` and ``num_steps``
or ``step_size`` (with ``time``, ``rtol``, ``atol`` where set).
"""
import collections

KEY = 'nodesr_ode'
#: The solver options stored (plain numbers and strings only).
STORED = ('method', 'step_size', 'num_steps', 'time', 'rtol', 'atol')


def attach_solver(params, net):
    """``params`` as an ``OrderedDict`` whose ``_metadata`` records ``net``'s solver (if it has one).

    Args:
        params (dict): The state dict to save (keys as saved).
        net (nn.Module): The bare network; a NODE network has ``ode_opt``.

    Returns:
        OrderedDict: The same entries; ``_metadata`` copied from ``params`` (or ``net.state_dict()``), plus the
        solver.
    """
    out = collections.OrderedDict(params)
    source = getattr(params, '_metadata', None) or getattr(net.state_dict(), '_metadata', {})
    metadata = {k: dict(v) for k, v in source.items()}
    opt = getattr(net, 'ode_opt', None)
    if isinstance(opt, dict):
        metadata.setdefault('', {})[KEY] = {k: opt[k] for k in STORED if opt.get(k) is not None}
    if metadata:
        out._metadata = metadata
    return out


def stored_solver(params):
    """The solver options a checkpoint's state dict records, or None (saved before they were recorded, or by
    another program).

    Args:
        params (dict): A state dict as loaded.

    Returns:
        dict | None: E.g. ``{'method': 'rk4', 'num_steps': 1}``.
    """
    entry = getattr(params, '_metadata', {}).get('', {}).get(KEY)
    if not isinstance(entry, dict):
        return None
    return {k: v for k, v in entry.items() if k in STORED and isinstance(v, (str, int, float))
            and not isinstance(v, bool)} or None
