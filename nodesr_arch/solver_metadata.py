"""The solver a NODE network was saved with (and the rivals' settings that no tensor shape shows), kept in its
checkpoint for loaders that see only the weights.

A BasicSR checkpoint is ``{'params': state_dict, ...}``; loaders such as spandrel (ComfyUI, chaiNNer) keep
only that state dict. The solver settings therefore ride in the state dict's ``_metadata``, the attribute
in which ``nn.Module.state_dict`` already records each module's version: ``torch.save``/``torch.load``
(``weights_only`` too) keep it, ``load_state_dict`` ignores what it does not know, and no key is added, so
every loader reads the weights as before. ``_metadata['']['nodesr_ode']`` holds ``method`` and ``num_steps``
or ``step_size`` (with ``time``, ``rtol``, ``atol`` where set). For the rivals (Meta-SR, LIIF),
``_metadata['']['nodesr_opt']`` holds the options their shapes do not show: ``img_mean``, ``img_std`` (their
buffers are not saved) and the EDSR encoder's ``res_scale``; for NODESR, ``subtract_input``, ``size_multiple``
and the backbone's ``img_range``.
"""
import collections
import numbers

import torch

KEY = 'nodesr_ode'
#: The solver options stored (plain numbers and strings only).
STORED = ('method', 'step_size', 'num_steps', 'time', 'rtol', 'atol')
OPTIONS_KEY = 'nodesr_opt'


def hidden_options(net):
    """The options of ``net`` that its state dict's shapes do not show, as plain numbers (empty if none).

    Args:
        net (nn.Module): The bare network.

    Returns:
        dict: ``img_mean``, ``img_std`` (lists, one per channel) for an encoder-upsampler (Meta-SR, LIIF), and
        ``res_scale`` when its encoder has residual blocks (EDSR), ``residual`` when it is set; for NODESR,
        ``subtract_input``, ``size_multiple`` and its backbone's ``img_range`` (SwinIR).
    """
    out = {}
    for name in ('img_mean', 'img_std'):
        buf = getattr(net, name, None)
        if isinstance(buf, torch.Tensor):
            out[name] = [float(v) for v in buf.flatten()]
    if isinstance(getattr(net, 'residual', None), str):  # an encoder-upsampler's `residual: bicubic`
        out['residual'] = net.residual
    encoder = getattr(net, 'encoder', None)
    modules = encoder.modules() if isinstance(encoder, torch.nn.Module) else ()
    res_scales = {float(m.res_scale) for m in modules if isinstance(getattr(m, 'res_scale', None), numbers.Real)}
    if len(res_scales) == 1:
        out['res_scale'] = res_scales.pop()
    field = getattr(getattr(getattr(net, 'ode', None), 'field', None), 'func', None)
    if isinstance(getattr(field, 'subtract_input', None), bool):  # NODESR: its own options and the backbone's
        out.update(subtract_input=field.subtract_input, size_multiple=int(net.size_multiple))
        if isinstance(getattr(field.net, 'img_range', None), numbers.Real):
            out['img_range'] = float(field.net.img_range)
    return out


def attach_solver(params, net):
    """``params`` as an ``OrderedDict`` whose ``_metadata`` records ``net``'s solver (if it has one).

    Args:
        params (dict): The state dict to save (keys as saved).
        net (nn.Module): The bare network; a NODE network has ``ode_opt``.

    Returns:
        OrderedDict: The same entries; ``_metadata`` copied from ``params`` (or ``net.state_dict()``), plus the
        solver and :func:`hidden_options`.
    """
    out = collections.OrderedDict(params)
    source = getattr(params, '_metadata', None) or getattr(net.state_dict(), '_metadata', {})
    metadata = {k: dict(v) for k, v in source.items()}
    opt = getattr(net, 'ode_opt', None)
    if isinstance(opt, dict):
        metadata.setdefault('', {})[KEY] = {k: opt[k] for k in STORED if opt.get(k) is not None}
    hidden = hidden_options(net)
    if hidden:
        metadata.setdefault('', {})[OPTIONS_KEY] = hidden
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


def stored_options(params):
    """The :func:`hidden_options` a checkpoint's state dict records (empty if none).

    Args:
        params (dict): A state dict as loaded.

    Returns:
        dict: E.g. ``{'img_mean': [0.5, 0.5, 0.5], 'img_std': [0.5, 0.5, 0.5], 'res_scale': 1.0}``.
    """
    entry = getattr(params, '_metadata', {}).get('', {}).get(OPTIONS_KEY)
    if not isinstance(entry, dict):
        return {}
    out = {k: [float(x) for x in entry[k]] for k in ('img_mean', 'img_std')
           if isinstance(entry.get(k), list) and entry[k] and all(isinstance(x, (int, float)) for x in entry[k])}
    for key, kind in (('res_scale', float), ('img_range', float), ('size_multiple', int)):
        if isinstance(entry.get(key), (int, float)) and not isinstance(entry[key], bool):
            out[key] = kind(entry[key])
    if isinstance(entry.get('subtract_input'), bool):
        out['subtract_input'] = entry['subtract_input']
    if isinstance(entry.get('residual'), str):  # the network refuses a value it does not know
        out['residual'] = entry['residual']
    return out
