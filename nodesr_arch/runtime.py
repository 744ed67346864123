"""Where the network's field ``f`` runs on the CPU: PyTorch, or onnxruntime (the optional ``[onnx]`` extra).

At 32 features PyTorch's CPU convolutions reach a fraction of the rate onnxruntime gets from the same graph
(docs/benchmarks.md, section 10). Only ``f`` moves (:mod:`nodesr_arch.onnx_field`: exported alone, cached,
run in an onnxruntime session); everything around it, the ODE solve, tiling, the self-ensemble,
trajectories, mixed scales, any solver and step count, stays PyTorch's and works unchanged.

This module imports neither torch nor onnxruntime (the command line's ``--runtime`` choices come from here).
"""
import os

RUNTIMES = ('torch', 'onnxruntime', 'auto')
#: The environment variable that sets the default runtime of :func:`nodesr_arch.api.load_model`.
RUNTIME_ENV = 'NODESR_RUNTIME'


def default_runtime():
    """The runtime named by ``NODESR_RUNTIME`` (default ``'auto'``), checked."""
    return check_runtime(os.environ.get(RUNTIME_ENV, 'auto').strip() or 'auto', RUNTIME_ENV)


def check_runtime(runtime, what='runtime'):
    """``runtime`` if it is one of :data:`RUNTIMES`; otherwise ValueError naming the choices."""
    if runtime not in RUNTIMES:
        raise ValueError(f'{what} must be one of {", ".join(RUNTIMES)}, got {runtime!r}')
    return runtime


def choose_runtime(net, runtime, device, amp=None):
    """Decide where ``net``'s field runs and build the network to call.

    Args:
        net (nn.Module): The loaded network (on ``device``; left unchanged).
        runtime (str): ``'torch'``, ``'onnxruntime'`` or ``'auto'`` (onnxruntime where it is installed, the
            device is the CPU, there is no autocast, and it measured faster on this network; else torch).
        device (torch.device): Where the network runs.
        amp (torch.dtype | None): Autocast dtype (onnxruntime runs fp32 only).

    Returns:
        tuple[nn.Module, str, str]: The network to call (``net`` itself for torch), the runtime that runs
        (``'torch'`` or ``'onnxruntime'``) and why, in a few words.

    Raises:
        ImportError: ``runtime='onnxruntime'`` without the ``[onnx]`` extra.
        ValueError: ``runtime='onnxruntime'`` where it cannot run (not the CPU, autocast, no ``f`` to export).
    """
    import torch

    from nodesr_arch.onnx_field import (EXTRA_HINT, OnnxField, cached_field, field_slot, measured_times,
                                        require_onnxruntime, with_field)

    check_runtime(runtime)
    if runtime == 'torch':
        return net, 'torch', 'asked for'
    explicit = runtime == 'onnxruntime'
    slot = field_slot(net)
    why_not = None
    if torch.device(device).type != 'cpu':
        why_not = f'it runs on the CPU only, the model is on {device}'
    elif amp is not None:
        why_not = f'it runs fp32 only, not under {str(amp).replace("torch.", "")} autocast'
    elif slot is None:
        why_not = f'{type(net).__name__} has no NODE-SR field f to export'
    if why_not is not None:
        if explicit:
            raise ValueError(f'runtime onnxruntime: {why_not}')
        return net, 'torch', f'auto: onnxruntime not used, {why_not}'
    if explicit:
        require_onnxruntime()
    else:
        try:
            require_onnxruntime()
        except ImportError:
            return net, 'torch', f'auto: onnxruntime is not installed ({EXTRA_HINT} to compare)'
    owner, attr, in_channels = slot
    func = getattr(owner, attr)
    multiple = getattr(net, 'size_multiple', 1)
    path, _ = cached_field(func, in_channels, multiple)
    field = OnnxField(path, func, multiple)
    if explicit:
        return with_field(net, field), 'onnxruntime', 'asked for'
    times = measured_times(path, func, field, in_channels)
    side = times['side']
    torch_ms, ort_ms = times['torch'] * 1e3, times['onnxruntime'] * 1e3
    measured = (f'{ort_ms:.0f} ms vs {torch_ms:.0f} ms per {side}x{side} evaluation of f, '
                f'{torch.get_num_threads()} threads')
    if times['onnxruntime'] < times['torch']:
        return with_field(net, field), 'onnxruntime', f'auto: faster here ({measured})'
    return net, 'torch', f'auto: onnxruntime not faster here ({measured})'
