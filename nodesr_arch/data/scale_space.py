"""Scale-space images with MATLAB-style bicubic resizing (docs/design.md section 3).

The kernel weights and index maps come from BasicSR's ``calculate_weights_indices`` (the MATLAB
``imresize`` semantics: a = -0.5 cubic, antialiasing when shrinking, symmetric borders); we apply them
as two matrix products instead of BasicSR's per-row loop, which gives the same numbers (to float
rounding) several times faster, and allows a different scale per axis (resizing to a size).
"""
import functools
import math

import numpy as np
import torch

from nodesr_arch.basicsr_source import basicsr_module
from nodesr_arch.scales import EPS, check_scale, output_len


@functools.lru_cache(maxsize=256)
def _resize_matrix(in_len, out_len, scale, antialiasing=True):
    """Dense (out_len, in_len) matrix of MATLAB bicubic weights, symmetric borders folded in.

    Cached: training patches repeat the same sizes and scales. Callers must not modify the result.
    """
    calculate_weights_indices = basicsr_module('basicsr.utils.matlab_functions').calculate_weights_indices
    weights, indices, sym_s, _ = calculate_weights_indices(in_len, out_len, scale, 'cubic', 4, antialiasing)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    src = indices.long() - sym_s  # BasicSR indexes the symmetrically padded signal; map back
    # fold as MATLAB's imresize does (indices modulo the mirrored signal 0..n-1, n-1..0): a single
    # reflection is not enough when the kernel is wider than the image (1- or 2-pixel sides)
    src = src % (2 * in_len)
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


def quantize(img, levels=255):
    """Round a [0, 1] float image to ``levels + 1`` levels (8 bits by default, as LR files on disk are)."""
    return (np.clip(np.round(img * levels), 0, levels) / levels).astype(np.float32)


def shrink(hr, t, quantize_8bit=True, levels=255):
    """Shrink ``hr`` (H, W[, C] float [0, 1]) by ``1 / t``: size ``ceil(H / t)``.

    Args:
        hr (ndarray): (H, W[, C]) float in [0, 1].
        t (float): Scale >= 1.
        quantize_8bit (bool): Round the result to ``levels`` (8 bits unless told). Default: True.
        levels (int): 255 for 8-bit, 65535 for 16-bit sources. Default: 255.
    """
    lr = imresize(hr, 1.0 / t)
    return quantize(lr, levels) if quantize_8bit else lr


def shrink_to(hr, size, quantize_8bit=True, levels=255):
    """Shrink ``hr`` (H, W[, C] float [0, 1]) to ``size`` (h, w) with MATLAB bicubic (per-axis factor
    ``size / (H, W)``), rounded as :func:`shrink` rounds: the LR patch of a GT crop.

    Args:
        hr (ndarray): (H, W[, C]) float in [0, 1].
        size (tuple[int, int]): Output (h, w).
        quantize_8bit (bool): Round the result to ``levels``. Default: True.
        levels (int): Quantization levels. Default: 255.
    """
    lr = imresize(hr, size=size)
    return quantize(lr, levels) if quantize_8bit else lr


def enlarge(lr, scale, size):
    """Enlarge ``lr`` by the factor ``scale`` (pixel centres aligned) and crop to ``size`` (h, w)."""
    out = imresize(lr, scale)
    h, w = int(size[0]), int(size[1])
    if out.shape[0] < h or out.shape[1] < w:
        raise ValueError(f'enlarge: {lr.shape[:2]} x{scale} gives {out.shape[:2]}, smaller than {(h, w)}')
    return out[:h, :w]


def scale_space(hr, t, quantize_8bit=True, levels=255):
    """``I(t)``: ``hr`` shrunk by ``1 / t`` (8-bit rounded unless told) and enlarged back, at ``hr``'s size.

    Args:
        hr (ndarray): (H, W[, C]) float in [0, 1].
        t (float): Scale >= 1. ``I(1)`` is ``hr`` itself.
        quantize_8bit (bool): Round the shrunk image to ``levels``. Default: True.
        levels (int): 255 for 8-bit, 65535 for 16-bit sources. Default: 255.
    """
    if t == 1:
        return hr.astype(np.float32, copy=True)
    return enlarge(shrink(hr, t, quantize_8bit, levels), t, hr.shape[:2])


# ---------------------------------------------------------------- training patches

def patch_margin(t):
    """Context kept around a training patch so its ``I(t)`` is not disturbed by the crop: ``ceil(4 t) + 4``."""
    return math.ceil(4 * t) + 4


def scale_space_patch(hr, t, top, left, size, margin=None, quantize_8bit=True, levels=255):
    """``I(t)`` of a ``size`` x ``size`` patch of ``hr``, made from a larger crop (docs/design.md section 3.2).

    The crop extends ``margin`` pixels beyond the patch on each side where the image allows; its
    ``I(t)`` is computed and the patch window cut out. When the crop origin ``o`` (per axis) makes
    ``o / t`` an integer, the result equals the same window of ``scale_space(hr, t)``.

    Args:
        hr (ndarray): (H, W[, C]) float in [0, 1].
        t (float): Scale >= 1.
        top (int): Patch row in ``hr``.
        left (int): Patch column in ``hr``.
        size (int | tuple[int, int]): Patch size.
        margin (int | None): Context each side. Default: ``patch_margin(t)``.
        quantize_8bit (bool): Round the shrunk crop to ``levels``. Default: True.
        levels (int): Quantization levels. Default: 255.

    Returns:
        tuple[ndarray, ndarray]: ``I(t)`` patch and GT patch, both (size, size[, C]) float32.
    """
    ph, pw = (size, size) if np.isscalar(size) else size
    h, w = hr.shape[:2]
    if top < 0 or left < 0 or top + ph > h or left + pw > w:
        raise ValueError(f'patch {ph}x{pw} at ({top}, {left}) is outside the {h}x{w} image')
    m = patch_margin(t) if margin is None else int(margin)
    y0, x0 = max(0, top - m), max(0, left - m)
    y1, x1 = min(h, top + ph + m), min(w, left + pw + m)
    crop = scale_space(hr[y0:y1, x0:x1], t, quantize_8bit, levels)
    lq = crop[top - y0:top - y0 + ph, left - x0:left - x0 + pw]
    gt = hr[top:top + ph, left:left + pw]
    return np.ascontiguousarray(lq), np.ascontiguousarray(gt, dtype=np.float32)


def scale_grid(scale_range, scale_step=0.1):
    """The training scales ``lo, lo + step, ..., hi`` (rounded to 10 decimals); ``None`` when continuous.

    Args:
        scale_range (tuple[float, float]): (lo, hi), 1 <= lo <= hi.
        scale_step (float): Grid spacing; 0 means continuous (returns None). Default: 0.1.
    """
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 1 or hi < lo:
        raise ValueError(f'scale_range must be [lo, hi] with 1 <= lo <= hi, got {list(scale_range)}')
    if scale_step is None or scale_step == 0:
        return None
    if scale_step < 0:
        raise ValueError(f'scale_step must be >= 0, got {scale_step}')
    n = int(math.floor((hi - lo) / scale_step + EPS))
    return [round(lo + k * scale_step, 10) for k in range(n + 1)]


def parse_scales(tokens):
    """Scales from command-line tokens: numbers (``2 3 4``) and ranges ``lo:hi:step`` (``1.1:4.0:0.1``).

    Args:
        tokens (list[str]): The tokens.

    Returns:
        list[float]: Scales in the order given, duplicates removed.
    """
    scales = []
    for tok in tokens:
        parts = str(tok).split(':')
        try:
            if len(parts) == 1:
                values = [float(parts[0])]
            elif len(parts) == 3:
                values = scale_grid([float(parts[0]), float(parts[1])], float(parts[2]))
                if values is None:
                    raise ValueError('step 0')
            else:
                raise ValueError('expected lo:hi:step')
        except ValueError as e:
            raise ValueError(f"bad scale '{tok}' (a number >= 1 or lo:hi:step): {e}") from None
        for v in values:
            check_scale(v)
            if v not in scales:
                scales.append(v)
    return scales


# ---------------------------------------------------------------- benchmark protocols

#: MATLAB's round-off snap in ``mod`` (relative to the quotient): a protocol constant, matched to MATLAB rather
#: than a tolerance of ours (sizes and counts use :data:`nodesr_arch.scales.EPS`).
MATLAB_ROUNDOFF = 1e-10


def _is_multiple(n, s):
    """MATLAB ``mod(n, s) == 0`` for a float ``s`` (MATLAB snaps a quotient within round-off to an integer)."""
    q = n / s
    return abs(q - round(q)) <= MATLAB_ROUNDOFF * max(1.0, abs(q))


def _out_len(lr_len, s, hr_len):
    """The output length of ``lr_len`` at ``s`` (:func:`nodesr_arch.scales.output_len`), at most ``hr_len``."""
    return min(output_len(lr_len, s), hr_len)


def metasr_pair(hr, scale, quantize_8bit=True, levels=255):
    """Meta-SR benchmark pair (the paper's Table 2 protocol, docs/design.md section 3.3).

    Rows (and columns) are cropped by 4 when their count is not a multiple of ``scale``, the crop is
    shrunk by ``1 / scale`` (LR ``ceil(h' / s)``, 8-bit rounded), the output size is
    ``floor(h_lr * s)`` and the GT is that top-left window of the uncropped HR.

    Args:
        hr (ndarray): (H, W[, C]) float in [0, 1].
        scale (float): Scale >= 1.
        quantize_8bit (bool): Round the LR to ``levels``. Default: True.
        levels (int): Quantization levels. Default: 255.

    Returns:
        tuple: ``lr`` (ndarray), ``gt`` (ndarray), ``out_size`` (h, w).
    """
    s = check_scale(scale)
    h, w = hr.shape[:2]
    hc = h if _is_multiple(h, s) else h - 4
    wc = w if _is_multiple(w, s) else w - 4
    if hc < 1 or wc < 1:
        raise ValueError(f'image {h}x{w} is too small for the Meta-SR protocol')
    lr = shrink(hr[:hc, :wc], s, quantize_8bit, levels)
    out = (_out_len(lr.shape[0], s, h), _out_len(lr.shape[1], s, w))
    return lr, np.ascontiguousarray(hr[:out[0], :out[1]], dtype=np.float32), out


def modcrop_pair(hr, scale, quantize_8bit=True, levels=255):
    """Classic mod-crop pair: HR cropped to ``floor(floor(h / s) * s)`` rows (a multiple of ``s`` for
    integer scales), LR = that crop shrunk by ``1 / s`` (8-bit rounded), output size = crop size.
    Arguments and return value as :func:`metasr_pair`.
    """
    s = check_scale(scale)
    h, w = hr.shape[:2]
    out = tuple(_out_len(int(math.floor(n / s + EPS)), s, n) for n in (h, w))
    if out[0] < 1 or out[1] < 1:
        raise ValueError(f'image {h}x{w} is too small for scale {s}')
    gt = np.ascontiguousarray(hr[:out[0], :out[1]], dtype=np.float32)
    return shrink(gt, s, quantize_8bit, levels), gt, out


PROTOCOLS = {'metasr': metasr_pair, 'modcrop': modcrop_pair}


def make_pair(hr, scale, protocol='metasr', quantize_8bit=True, levels=255):
    """Benchmark pair under ``protocol`` ('metasr' or 'modcrop'); see :func:`metasr_pair`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got '{protocol}'")
    return PROTOCOLS[protocol](hr, scale, quantize_8bit, levels)


def lr_file_pair(lr, hr, scale, names=('LR', 'HR')):
    """Reconcile an LR file with its HR file at a fixed ``scale`` (e.g. SelfExSR pairs).

    Output size is ``floor(h_lr * s)`` (at most the HR size); the GT is that top-left window of the HR,
    as with BasicSR's PairedImageDataset. Accepts HR mod-cropped or not, or Meta-SR-cropped; sizes
    that cannot come from one image raise ValueError naming both files.

    Args:
        lr (ndarray): LR image (h, w[, C]).
        hr (ndarray): HR image (H, W[, C]).
        scale (float): Scale >= 1.
        names (tuple[str, str]): File names for error messages.

    Returns:
        tuple: ``gt`` (ndarray), ``out_size`` (h, w).
    """
    s = check_scale(scale)
    for n_lr, n_hr in zip(lr.shape[:2], hr.shape[:2]):
        if not (n_hr - s - 4 - EPS <= n_lr * s <= n_hr + s + EPS):
            raise ValueError(f'{names[0]} is {lr.shape[0]}x{lr.shape[1]} and {names[1]} is '
                             f'{hr.shape[0]}x{hr.shape[1]}: they are not a x{s:g} pair')
    out = (_out_len(lr.shape[0], s, hr.shape[0]), _out_len(lr.shape[1], s, hr.shape[1]))
    return np.ascontiguousarray(hr[:out[0], :out[1]], dtype=np.float32), out
