"""Exact tiled evaluation of a same-resolution network.

A network whose every layer is a stride-1 convolution or pointwise op sees, for each output pixel,
only input pixels within its receptive radius ``r``. Running it on overlapping windows (each tile
grown by ``pad >= r`` pixels, clipped at the image border, where the network's own zero padding
applies as in the whole image) and keeping each window's centre therefore gives exactly the
whole-image result, while only one window's activations are alive at a time.
"""
import math

import torch


def tile_bounds(size, tile, multiple=1):
    """Split ``[0, size)`` into ``ceil(size / tile)`` nearly equal spans, each at most ``tile`` long.

    Args:
        size (int): Length to split (a multiple of ``multiple``).
        tile (int): Largest span (a multiple of ``multiple``).
        multiple (int): Every boundary is a multiple of this. Default: 1.

    Returns:
        list[tuple[int, int]]: ``(start, end)`` of each span.
    """
    count = math.ceil(size / tile)
    span = math.ceil(size / count / multiple) * multiple
    return [(start, min(start + span, size)) for start in range(0, size, span)]


def tiled_apply(fn, x, tile=None, pad=0, multiple=1):
    """Evaluate ``fn(x)`` tile by tile; equal to ``fn(x)`` when ``pad`` covers fn's receptive radius.

    Args:
        fn (callable): Same-resolution function of a (B, C, h, w) tensor, returning (B, C', h, w).
        x (Tensor): Input, (B, C, H, W).
        tile (int | None): Largest tile side (without halo); None evaluates ``fn(x)`` whole.
        pad (int): Halo added on each side of a tile (clipped at the image border).
        multiple (int): Tile boundaries and window sizes are kept multiples of this (e.g. a window
            attention size); ``H``, ``W``, ``tile`` and ``pad`` must then be multiples of it.

    Returns:
        Tensor: (B, C', H, W).
    """
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return fn(x)
    out = None
    for y0, y1 in tile_bounds(h, tile, multiple):
        wy0, wy1 = max(y0 - pad, 0), min(y1 + pad, h)
        for x0, x1 in tile_bounds(w, tile, multiple):
            wx0, wx1 = max(x0 - pad, 0), min(x1 + pad, w)
            part = fn(x[..., wy0:wy1, wx0:wx1])
            if out is None:  # written in place: no list of tiles and no concatenated copies alive
                out = part.new_empty(*part.shape[:-2], h, w)
            out[..., y0:y1, x0:x1] = part[..., y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
    return out


def conv_receptive_radius(module):
    """Receptive radius of a network built only from stride-1 convolutions and pointwise ops.

    Sums ``dilation * (kernel - 1) // 2`` over every ``Conv2d``: exact for a chain of convs (VDSR) and
    for dense/residual blocks whose longest path passes every 3x3 conv (RDN); an upper bound otherwise.

    Args:
        module (nn.Module): The network.

    Returns:
        int: Radius in pixels.
    """
    radius = 0
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            if any(s != 1 for s in m.stride):
                raise ValueError(f'conv_receptive_radius: strided conv {m} has no pixel radius')
            radius += max(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
    return radius
