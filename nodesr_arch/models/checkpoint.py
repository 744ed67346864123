"""Checkpoint writing for :class:`~nodesr_arch.models.nodesr_model.NODESRModel`: atomic files and training
states that load with ``torch.load(..., weights_only=True)``."""
import os
import tempfile


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
    """Write ``obj`` with ``torch.save`` to a temporary file in the same folder, then rename it.

    A kill at any moment leaves either the previous complete file or the new complete file.

    Args:
        obj: Object to save.
        path (str): Destination path.
    """
    import torch
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the mode a plain open() would
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
