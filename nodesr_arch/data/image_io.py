"""Decoding image files for the datasets: 8/16-bit, grey, RGBA, with errors that name the file."""
import os
import warnings

import cv2
import numpy as np
import torch

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def decode_image(content, name):
    """Decode image bytes to a float32 RGB array in [0, 1].

    Grey (1-channel) images become 3 equal channels; RGBA drops alpha with a warning; 16-bit images
    keep full precision.

    Args:
        content (bytes | None): File contents (as returned by BasicSR's ``FileClient.get``).
        name (str): File name or LMDB key, for messages.

    Returns:
        tuple: ``img`` (H, W, 3) float32 RGB, ``grey`` (bool: the file had one channel),
        ``levels`` (int: 255 for 8-bit, 65535 for 16-bit).
    """
    if content is None:
        raise FileNotFoundError(f'image not found: {name}')
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) if len(content) else None
    if img is None:
        raise ValueError(f'cannot decode image {name}: unreadable, truncated or not an image')
    if img.dtype == np.uint8:
        levels = 255
    elif img.dtype == np.uint16:
        levels = 65535
    else:
        raise ValueError(f'{name}: unsupported pixel type {img.dtype} (8- or 16-bit images only)')
    grey = img.ndim == 2 or img.shape[2] == 1
    if grey:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    elif img.shape[2] == 4:
        warnings.warn(f'{name}: RGBA image, the alpha channel is dropped', stacklevel=2)
        img = img[..., :3]
    elif img.shape[2] != 3:
        raise ValueError(f'{name}: {img.shape[2]} channels, expected 1, 3 or 4')
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if not grey else img
    return img.astype(np.float32) / levels, grey, levels


def read_image(path):
    """Read an image file; see :func:`decode_image`."""
    try:
        with open(path, 'rb') as f:
            content = f.read()
    except OSError as e:
        raise FileNotFoundError(f'cannot read image {path}: {e.strerror}') from e
    return decode_image(content, path)


def list_images(folder):
    """Sorted image files (by name) directly inside ``folder``."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'not a folder: {folder}')
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMG_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]


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
