"""Mixed precision: the ``amp`` option (``train: amp: bf16``, ``val: amp: bf16``, ``--amp bf16``).

The network runs under ``torch.autocast``: convolutions in bf16 (or fp16, inference only), everything
else, the ODE state and solver arithmetic included, in fp32 (see :class:`nodesr_arch.archs.ode.ODEIntegrator`).
"""
import contextlib
import warnings

import torch
import torch.nn.functional as F

AMP_DTYPES = {'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16, 'fp16': torch.float16, 'float16': torch.float16}
OFF = (None, False, 'fp32', 'float32', 'none', 'off')


def parse_amp(value, key='amp', training=False):
    """The autocast dtype an ``amp`` option asks for.

    Args:
        value (str | torch.dtype | bool | None): ``bf16`` (or ``bfloat16``, ``torch.bfloat16``), ``fp16``
            (or ``float16``, ``torch.float16``; not for training), or off: None, false, ``fp32``.
        key (str): The option's name, for messages. Default: 'amp'.
        training (bool): The option is for training, where fp16 is refused (it needs loss scaling,
            which this project does not do; bf16 has fp32's range and needs none).

    Returns:
        torch.dtype | None: ``torch.bfloat16``, ``torch.float16`` or None (full precision).

    Raises:
        ValueError: Any other value, or fp16 for training.
    """
    if isinstance(value, str):
        value = value.lower()
    if value in OFF:
        return None
    if value in (torch.bfloat16, torch.float16):
        value = amp_name(value)
    if not isinstance(value, str) or value not in AMP_DTYPES:
        raise ValueError(f'{key}: must be bf16, fp16 or fp32 (off), got {value!r}')
    dtype = AMP_DTYPES[value]
    if training and dtype == torch.float16:
        raise ValueError(f'{key}: fp16 training needs loss scaling (GradScaler), which NODESRModel does not do; '
                         'use bf16 (fp32 range, no scaling needed; Ampere or newer GPUs, or the CPU)')
    return dtype


def amp_name(dtype):
    """``'bf16'``, ``'fp16'`` or ``'fp32'`` (for None)."""
    return {torch.bfloat16: 'bf16', torch.float16: 'fp16'}.get(dtype, 'fp32')


def check_amp_device(dtype, device, key='amp'):
    """Check that autocast to ``dtype`` really runs convolutions in ``dtype`` on ``device``.

    ``torch.autocast`` only warns and falls back to fp32 where a dtype is unsupported (bf16 on a GPU older
    than Ampere); a run asked for bf16 must not silently measure fp32.

    Args:
        dtype (torch.dtype | None): From :func:`parse_amp`; None passes.
        device (str | torch.device): Where the network runs.
        key (str): The option's name, for messages. Default: 'amp'.

    Raises:
        ValueError: The device cannot run ``dtype`` under autocast.
    """
    if dtype is None:
        return
    device = torch.device(device)
    x = torch.zeros(1, 1, 2, 2, device=device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            with torch.autocast(device.type, dtype=dtype):
                ok = F.conv2d(x, torch.zeros(1, 1, 1, 1, device=device)).dtype == dtype
    except RuntimeError:  # torch refuses bf16 on CUDA GPUs without it
        ok = False
    if not ok:
        raise ValueError(f'{key}: {amp_name(dtype)} autocast is not supported on {device}; use fp32'
                         + (' or fp16' if dtype == torch.bfloat16 and device.type == 'cuda' else ''))


def autocast(device, dtype):
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def current_autocast(device_type):
    """The autocast dtype active now for ``device_type``, or None when autocast is off there."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if enabled else None
    except (TypeError, AttributeError):  # torch < 2.4: per-device functions
        if device_type == 'cpu':
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        if device_type == 'cuda':
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
        return None
