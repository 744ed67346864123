"""Images as the datasets and benchmarks use them: float32 RGB in [0, 1] from 8/16-bit, grey or RGBA files, with
errors that name the file; benchmark dataset folders. Reading and writing files is :mod:`nodesr_arch.file_io`'s."""
import os
import warnings

import numpy as np
import torch

from nodesr_arch import file_io
from nodesr_arch.file_io import IMG_EXTENSIONS, list_images  # noqa: F401  (the datasets' names for them)


def decode_image(content, name):
    """Decode image bytes (:func:`nodesr_arch.file_io.decode_image`) to a float32 RGB array in [0, 1].

    Grey (1-channel) images become 3 equal channels; RGBA drops alpha with a warning; 16-bit images
    keep full precision.

    Args:
        content (bytes | None): File contents (as returned by BasicSR's ``FileClient.get``).
        name (str): File name or LMDB key, for messages.

    Returns:
        tuple: ``img`` (H, W, 3) float32 RGB, ``grey`` (bool: the file had one channel),
        ``levels`` (int: 255 for 8-bit, 65535 for 16-bit).
    """
    img = file_io.decode_image(content, name)
    if img.dtype == np.uint8:
        levels = 255
    elif img.dtype == np.uint16:
        levels = 65535
    else:
        raise file_io.ImageReadError(f'{name}: unsupported pixel type {img.dtype} (8- or 16-bit images only)')
    grey = img.ndim == 2
    if grey:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        warnings.warn(f'{name}: RGBA image, the alpha channel is dropped', stacklevel=2)
        img = img[..., :3]
    return img.astype(np.float32) / levels, grey, levels


def read_image(path):
    """Read an image file as the datasets do; see :func:`decode_image`."""
    return decode_image(file_io.read_bytes(path), path)


def to_tensor(img):
    """(H, W, C) float array -> (C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


def to_uint8(img):
    """[0, 1] float image -> uint8 (rounded), as SR outputs are saved and measured."""
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def resolve_dataset(spec):
    """Where a benchmark dataset lives, from ``DIR`` or ``NAME=DIR``.

    ``DIR`` may hold an ``HR/`` folder (then it is the dataset root), be an ``HR`` folder (the root is
    its parent) or be a plain folder of images (it is its own root). The name defaults to the root's
    folder name.

    Args:
        spec (str): ``DIR`` or ``NAME=DIR``.

    Returns:
        tuple[str, str, str]: name, HR folder, dataset root.
    """
    name, sep, folder = str(spec).partition('=')
    if not sep or not name or os.path.isdir(spec):
        name, folder = '', str(spec)
    folder = os.path.normpath(folder)
    if os.path.isdir(os.path.join(folder, 'HR')):
        hr, root = os.path.join(folder, 'HR'), folder
    elif os.path.basename(folder).upper() == 'HR':
        hr, root = folder, os.path.dirname(folder) or '.'
    else:
        hr, root = folder, folder
    if not os.path.isdir(hr):
        raise FileNotFoundError(f'dataset folder not found: {folder}')
    return name or os.path.basename(os.path.abspath(root)), hr, root
