"""Running any super-resolution network of this package (or of BasicSR) on one batch.

Helpers shared by the model's validation, the Python API and ``nodesr infer``:
:func:`run_network` (bicubic-enlarge the LR when the network wants its input at output size, then call
it with or without the scale), :func:`self_ensemble` (the paper's "+": the x8 flip/transpose mean) and
:func:`trajectory_strip` (the ODE states side by side).
"""
import math

import torch

from nodesr_arch.amp import autocast
from nodesr_arch.archs.contract import contract
from nodesr_arch.data.scale_space import imresize
from nodesr_arch.file_io import to_pixels
from nodesr_arch.scales import EPS, output_size


def _consistent(in_len, out_len, scale):
    """True if ``out_len`` is ``in_len`` enlarged by ``scale`` less a crop of under one input pixel.

    That covers the rounding of sizes and the benchmark protocols' crops (Meta-SR, LR files paired
    with their HR); anything shorter is another aspect ratio.
    """
    return (in_len - 1) * scale < out_len <= math.ceil(in_len * scale - EPS)


def enlarge_to(lq, scale, out_size):
    """Bicubically enlarge a BCHW tensor to ``out_size``.

    When ``out_size`` is what ``scale`` gives on both axes (up to the rounding of sizes and a crop of
    less than one input pixel), resize by the factor and crop the top-left window, which keeps pixel
    centres aligned exactly as the training data does (:func:`nodesr_arch.data.scale_space.enlarge`).
    Otherwise (an exact target size with another aspect ratio) resize to the size, each axis by its
    own factor.

    Args:
        lq (Tensor): (B, C, h, w).
        scale (float): Enlargement factor.
        out_size (tuple[int, int]): Output (H, W).
    """
    (h, w), (oh, ow) = lq.shape[-2:], out_size
    if (h, w) == (oh, ow):
        return lq
    if _consistent(h, oh, scale) and _consistent(w, ow, scale):
        return imresize(lq, float(scale))[..., :oh, :ow]
    return imresize(lq, size=(oh, ow))


class FixedScaleWarning(UserWarning):
    """A fixed-scale network was asked for another scale: its output is resized with bicubic."""


def fixed_scale(net, channels=3, side=48, terms=None):
    """The one factor ``net`` enlarges by (2 for BasicSR's EDSR x2), or None when it takes any scale.

    Networks that take the scale (``takes_scale``) or their input at output size (``input_size ==
    'output'``: the NODE archs, VDSR) take any scale. For the others the factor is measured by running
    the network once on a blank ``side`` x ``side`` input (48: a multiple of the usual windows and
    pixel-unshuffle factors).

    Args:
        net (nn.Module): The network, in eval mode.
        channels (int): Its input channels. Default: 3.
        side (int): Side of the probe input. Default: 48.
        terms (Contract | None): ``net``'s contract; default :func:`contract` of ``net``.

    Returns:
        float | None: Output height over input height, or None.
    """
    c = contract(net) if terms is None else terms
    if c.takes_scale or c.input_size == 'output':
        return None
    param = next(net.parameters(), None)
    x = torch.zeros(1, channels, side, side, device=None if param is None else param.device)
    with torch.inference_mode():
        return net(x).shape[-2] / side


def fixed_scale_label(name, factor, scale):
    """What to call the results of a network named ``name`` at ``scale``.

    Args:
        name (str): The model's name.
        factor (float | None): Its fixed factor (:func:`fixed_scale`); None: it takes any scale.
        scale (float): The scale asked for.

    Returns:
        str: ``name``, or ``'NAME xF + bicubic'`` when a fixed-scale xF network is asked for another
        scale (:func:`run_network` then resizes its xF output to the output size with bicubic).
    """
    if factor is None or abs(float(scale) - factor) < EPS:
        return name
    return f'{name} x{factor:g} + bicubic'


def fixed_scale_message(name, factor, scales):
    """The warning for a fixed-scale x``factor`` network asked for ``scales`` (other than its own)."""
    at = ', '.join(f'x{float(s):g}' for s in scales)
    return (f'{name} is a fixed-scale x{factor:g} network: at {at} its x{factor:g} output is resized with bicubic '
            f'to the output size, not super-resolved at that scale (results named '
            f'"{fixed_scale_label(name, factor, scales[0])}")')


def call_network(net, x, scale, out_size, terms=None, **kwargs):
    """``net``'s forward, called as its contract asks: ``net(x)``, ``net(x, scale)``, or, for networks that
    take the scale and the LR itself (Meta-SR, LIIF), ``net(x, scale, out_size=out_size)``.

    Args:
        net (nn.Module): The network (or its DDP wrapper, with ``terms`` read off the bare one).
        x (Tensor): (B, C, h, w) input.
        scale (float | Tensor): The scale, one or one per sample.
        out_size (tuple[int, int]): Output (H, W).
        terms (Contract | None): ``net``'s contract; default :func:`contract` of ``net``.
        **kwargs: More keyword arguments of ``net`` (``tiling=``).
    """
    c = contract(net) if terms is None else terms
    if not c.takes_scale:
        return net(x, **kwargs)
    if c.input_size == 'lr':
        return net(x, scale, out_size=(int(out_size[0]), int(out_size[1])), **kwargs)
    return net(x, scale, **kwargs)


def run_network(net, lq, scale, out_size=None, ensemble=False, t_eval=None, amp=None, tiling=None, terms=None):
    """Super-resolve a batch with any network, whatever input it wants.

    Args:
        net (nn.Module): A network. ``net.input_size == 'output'`` (all NODE-SR archs, VDSR): the input
            is the LR enlarged bicubically to the output size; ``'lr'`` (default for other archs, e.g.
            BasicSR's EDSR/RCAN): the LR itself. ``net.takes_scale``: call ``net(x, scale)`` (and
            ``out_size`` for ``'lr'`` networks, Meta-SR and LIIF), else ``net(x)`` (:func:`call_network`).
        lq (Tensor): (B, C, h, w), float in [0, 1]. Already at ``out_size`` for ``'output'`` networks
            is fine too (then it is used as it is).
        scale (float | Tensor): The scale (``t0``), one or one per sample.
        out_size (tuple[int, int] | None): Output (H, W). Default: ``floor(h * s) x floor(w * s)``.
        ensemble (bool): Average over the 8 flips/transposes (:func:`self_ensemble`). Default: False.
        t_eval (list[float] | None): For NODE networks: also return the states at these scales; the
            result is then (K, B, C, H, W).
        amp (torch.dtype | None): Run the network under autocast to this dtype (bf16/fp16; see
            :mod:`nodesr_arch.amp`); the bicubic enlargement stays fp32 and the result is cast back to
            ``lq``'s dtype. Default: None (full precision).
        tiling (Tiling | None): This call's tiling (``net.tiling_for(tile, tile_pad)``), passed to a network
            whose contract ``tiles``; the network itself is left unchanged, so threads sharing it may tile
            differently. Default: None (the network's own default, untiled unless ``set_tiling`` was called).
        terms (Contract | None): ``net``'s contract, for a caller that read it once; default :func:`contract`
            of ``net``.

    Returns:
        Tensor: (B, C, H, W) (or (K, B, C, H, W) with ``t_eval``) at ``out_size``. A fixed-scale
        ``'lr'`` network's output at another scale is resized to ``out_size`` with MATLAB bicubic;
        callers that show results name them with :func:`fixed_scale_label`.
    """
    s_max = float(torch.as_tensor(scale, dtype=torch.float64).max())
    if out_size is None:
        out_size = output_size(lq.shape[-2:], s_max)
    out_size = (int(out_size[0]), int(out_size[1]))
    c = contract(net) if terms is None else terms
    if tiling is not None and not c.tiles:
        raise ValueError(f'{type(net).__name__} does not support tiling')
    kwargs = {} if tiling is None else {'tiling': tiling}
    x = lq
    if c.input_size == 'output' and tuple(lq.shape[-2:]) != out_size:
        x = enlarge_to(lq, s_max, out_size)

    def call(inp, size):
        with autocast(inp.device, amp):
            if t_eval is not None:
                out = net(inp, scale, t_eval=t_eval, **kwargs)
            else:
                out = call_network(net, inp, scale, size, c, **kwargs)
        return out.to(inp.dtype)

    out = self_ensemble(call, x, out_size) if ensemble else call(x, out_size)
    if tuple(out.shape[-2:]) != out_size:  # a fixed-scale 'lr' network enlarges by its own factor
        (ih, iw), (nh, nw), (oh, ow) = x.shape[-2:], out.shape[-2:], out_size
        if _consistent(ih, oh, nh / ih) and _consistent(iw, ow, nw / iw):
            out = out[..., :oh, :ow]  # the same scale up to the rounding of sizes
        else:
            out = imresize(out, size=out_size)  # another scale: resize its output
    return out


# the 8 elements of the dihedral group as (transpose, flip H, flip W); each is its own inverse except
# that the inverse of "transpose then flip" is "flip the swapped axes then transpose"
_D8 = [(tr, fh, fw) for tr in (False, True) for fh in (False, True) for fw in (False, True)]


def _forward_aug(x, transpose, flip_h, flip_w):
    if transpose:
        x = x.transpose(-2, -1)
    dims = [d for d, f in ((-2, flip_h), (-1, flip_w)) if f]
    return x.flip(dims) if dims else x


def _inverse_aug(y, transpose, flip_h, flip_w):
    dims = [d for d, f in ((-2, flip_h), (-1, flip_w)) if f]
    if dims:
        y = y.flip(dims)
    return y.transpose(-2, -1) if transpose else y


def self_ensemble(fn, x, out_size=None):
    """The x8 self-ensemble: mean of ``fn`` over the flips and transposes of ``x``, each mapped back.

    Args:
        fn (callable): BCHW tensor -> BCHW tensor, equivariant in layout (a transposed input gives a
            transposed output; e.g. ``lambda t: run_network(net, t, s)`` without a fixed ``out_size``);
            with ``out_size``, ``fn(x, size)`` with the size of the output for that input, ``out_size``
            transposed for the transposed inputs (a square input may have a non-square output).
        x (Tensor): (B, C, H, W).
        out_size (tuple[int, int] | None): The output size of ``x`` itself, passed on as above.

    Returns:
        Tensor: The mean of the 8 mapped-back outputs.
    """
    total = None
    for aug in _D8:
        inp = _forward_aug(x, *aug)
        out = fn(inp) if out_size is None else fn(inp, tuple(out_size)[::-1] if aug[0] else tuple(out_size))
        y = _inverse_aug(out, *aug)
        total = y if total is None else total + y
    return total / len(_D8)


def display_frame(img):
    """An output image as a uint8 RGB frame of a trajectory strip or GIF: 8 bits, grey as 3 channels, no alpha.

    Args:
        img (ndarray): (H, W) or (H, W, 3|4), uint8, uint16 or float in [0, 1].
    """
    import numpy as np
    img = to_pixels(np.asarray(img))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def trajectory_strip(states):
    """The ODE states side by side (the paper's Fig. 2), each labelled with its scale ``t``, 4 white pixels apart.

    Args:
        states (list[tuple[float, ndarray]]): ``(t, image)`` pairs, each image as :func:`display_frame` takes it.

    Returns:
        ndarray: (H, K * W + (K - 1) * 4, 3) uint8 RGB.
    """
    import cv2
    import numpy as np
    frames = []
    for t, img in states:
        frame = display_frame(img).copy()
        size = max(0.35, min(frame.shape[:2]) / 400)
        thick = max(1, round(size * 1.5))
        org = (4, 4 + round(22 * size))
        for colour, width in (((0, 0, 0), thick + 2), ((255, 255, 255), thick)):
            cv2.putText(frame, f't={t:.2f}', org, cv2.FONT_HERSHEY_SIMPLEX, size, colour, width, cv2.LINE_AA)
        frames.append(frame)
    gap = np.full((frames[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)
