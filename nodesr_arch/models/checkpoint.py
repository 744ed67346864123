"""Checkpoint writing for :class:`~nodesr_arch.models.nodesr_model.NODESRModel`: atomic files and training
states that load with ``torch.load(..., weights_only=True)``."""
import os

from nodesr_arch.file_io import atomic_write


def to_python_numbers(obj):
    """Replace numpy scalars and arrays (recursively) by plain Python numbers and lists.

    torch >= 2.6 loads with ``weights_only=True``, which refuses numpy scalars in a training state.

    Args:
        obj: A training state (dicts, lists, tuples, tensors, numbers).
    """
    from collections import defaultdict

    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):  # keys too: a MultiStepLR's milestones Counter may have numpy keys
        items = {to_python_numbers(k): to_python_numbers(v) for k, v in obj.items()}
        return items if type(obj) in (dict, defaultdict) else type(obj)(items)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_python_numbers(v) for v in obj)
    return obj


def atomic_torch_save(obj, path):
    """Write ``obj`` with ``torch.save`` through :func:`nodesr_arch.file_io.atomic_write` (synced to disk).

    A kill at any moment leaves either the previous complete file or the new complete file. A full disk is
    an ``OSError`` (``ENOSPC``, "No space left on device"), not torch's ``unexpected pos`` RuntimeError.

    Args:
        obj: Object to save.
        path (str): Destination path.
    """
    import torch
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp):
        with open(tmp, 'wb') as f:
            try:
                torch.save(obj, f)
            except RuntimeError as e:
                raise _write_error(e, path) from None

    atomic_write(path, write, sync=True)


def _write_error(error, path):
    """torch.save's ``RuntimeError: [enforce fail at inline_container.cc:672] unexpected pos ...`` as the
    ``OSError`` it stands for: the file system's error that torch's writer hit (no space left on device...), or
    ``ENOSPC`` when the disk is full; otherwise the error itself."""
    import errno
    cause = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None and cause.errno is not None:
        return OSError(cause.errno, f'{cause.strerror}: cannot save {path}')
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return error
    free = st.f_bavail * st.f_frsize
    if free < (1 << 20):
        return OSError(errno.ENOSPC, f'{os.strerror(errno.ENOSPC)} ({free} bytes free): cannot save {path}')
    return error
