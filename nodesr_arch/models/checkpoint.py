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

    A kill at any moment leaves either the previous complete file or the new complete file.

    Args:
        obj: Object to save.
        path (str): Destination path.
    """
    import torch
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp):
        with open(tmp, 'wb') as f:
            torch.save(obj, f)

    atomic_write(path, write, sync=True)
