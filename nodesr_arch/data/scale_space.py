"""Scale-space images with MATLAB-style bicubic resizing (DESIGN.md section 3).

The kernel weights and index maps come from BasicSR's ``calculate_weights_indices`` (the MATLAB
``imresize`` semantics: a = -0.5 cubic, antialiasing when shrinking, symmetric borders); we apply them
as two matrix products instead of BasicSR's per-row loop, which gives the same numbers (to float
rounding) tens of times faster, and allows a different scale per axis (resizing to a size).
"""
import math

import numpy as np
import torch
from basicsr.utils.matlab_functions import calculate_weights_indices


def _resize_matrix(in_len, out_len, scale, antialiasing=True):
    """Dense (out_len, in_len) matrix of MATLAB bicubic weights, symmetric borders folded in."""
    weights, indices, sym_s, _ = calculate_weights_indices(in_len, out_len, scale, 'cubic', 4, antialiasing)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    src = indices.long() - sym_s  # BasicSR indexes the symmetrically padded signal; map back
    src = torch.where(src < 0, -src - 1, src)
    src = torch.where(src >= in_len, 2 * in_len - 1 - src, src)
    mat.scatter_add_(1, src, weights.double())
    return mat


def imresize(img, scale=None, size=None, antialiasing=True):
    """MATLAB ``imresize(img, scale)`` / ``imresize(img, [h w])`` with bicubic.

    Args:
        img (ndarray | Tensor): (H, W) or (H, W, C) numpy array, or (C, H, W) / (B, C, H, W) tensor,
            float in [0, 1] (values are not clipped).
        scale (float | tuple[float, float] | None): Factor (one, or per axis h, w). The output is
            ``ceil(in * scale)``.
        size (tuple[int, int] | None): Output (h, w) instead of a scale (per-axis factor out / in).
        antialiasing (bool): Antialias when shrinking. Default: True.

    Returns:
        Same type and layout as ``img``, float32.
    """
    is_numpy = isinstance(img, np.ndarray)
    if is_numpy:
        squeeze = img.ndim == 2
        t = torch.from_numpy(np.ascontiguousarray(img if not squeeze else img[..., None]).transpose(2, 0, 1))
    else:
        t = img
    in_h, in_w = t.shape[-2:]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        sh, sw = out_h / in_h, out_w / in_w
    else:
        if scale is None:
            raise ValueError('imresize needs a scale or a size')
        sh, sw = (scale, scale) if np.isscalar(scale) else scale
        out_h, out_w = math.ceil(in_h * sh), math.ceil(in_w * sw)
    if out_h < 1 or out_w < 1:
        raise ValueError(f'imresize: output size {out_h}x{out_w} is empty')
    mh = _resize_matrix(in_h, out_h, sh, antialiasing).to(t.device)
    mw = _resize_matrix(in_w, out_w, sw, antialiasing).to(t.device)
    out = torch.matmul(torch.matmul(mh, t.double()), mw.t()).float()
    if is_numpy:
        out = out.numpy().transpose(1, 2, 0)
        return out[..., 0] if squeeze else out
    return out


def quantize(img):
    """Round a [0, 1] float image to 8-bit levels (as LR files on disk are)."""
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.float32) / 255.0


def shrink(hr, t, quantize_8bit=True):
    """Shrink ``hr`` (H, W[, C] float [0, 1]) by ``1 / t``: size ``ceil(H / t)``."""
    lr = imresize(hr, 1.0 / t)
    return quantize(lr) if quantize_8bit else lr


def enlarge(lr, scale, size):
    """Enlarge ``lr`` by the factor ``scale`` (pixel centres aligned) and crop to ``size`` (h, w)."""
    out = imresize(lr, scale)
    h, w = int(size[0]), int(size[1])
    if out.shape[0] < h or out.shape[1] < w:
        raise ValueError(f'enlarge: {lr.shape[:2]} x{scale} gives {out.shape[:2]}, smaller than {(h, w)}')
    return out[:h, :w]


def scale_space(hr, t, quantize_8bit=True):
    """``I(t)``: ``hr`` shrunk by ``1 / t`` (8-bit rounded unless told) and enlarged back, at ``hr``'s size.

    Args:
        hr (ndarray): (H, W[, C]) float in [0, 1].
        t (float): Scale >= 1. ``I(1)`` is ``hr`` itself.
        quantize_8bit (bool): Round the shrunk image to 8 bits. Default: True.
    """
    if t == 1:
        return hr.astype(np.float32, copy=True)
    return enlarge(shrink(hr, t, quantize_8bit), t, hr.shape[:2])
