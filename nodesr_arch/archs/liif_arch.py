"""LIIF (Chen et al., "Learning Continuous Image Representation with Local Implicit Image Function", CVPR 2021):
an MLP that predicts the colour at any continuous coordinate from the LR features around it.

Written after the authors' code, https://github.com/yinboc/liif (``models/liif.py``: ``LIIF.query_rgb``;
``utils.make_coord``; ``datasets/wrappers.py``: the cell), with its three parts: feature unfolding (3x3),
local ensemble (the 4 nearest LR features, each weighted by the area of the opposite rectangle) and cell
decoding. The deliberate differences are listed in docs/architectures.md.
"""
import torch
import torch.nn.functional as F
from torch import nn

from nodesr_arch.archs.encoder import EncoderUpsampler
from nodesr_arch.registry import ARCH_REGISTRY


def query_coords(rows, cols, scales, lr_size):
    """LR-normalised coordinates and cell of output pixels, LIIF's ``make_coord`` convention.

    The LR image spans [-1, 1] on each axis, pixel centres at ``-1 + (2k + 1) / n``. Output pixel ``(i, j)``
    at scale ``s`` has its centre at ``-1 + (2i + 1) / (h s)`` (the geometry of ``imresize`` by ``s``: pixel
    centres aligned, output cropped at the bottom and right), and its cell (size) is ``2 / (h s)``. With
    ``H = h s`` exactly this is ``make_coord((H, W))`` and the cell ``2 / H`` of the authors.

    Args:
        rows, cols (Tensor): (B', Q) int64 output rows and columns.
        scales (Tensor): (B,) scales.
        lr_size (tuple[int, int]): LR (h, w).

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: Row and column coordinates (B, Q) and the cell's height and width
        (B, 1), float64.
    """
    s = scales.double().view(-1, 1)
    (h, w) = lr_size
    return (-1 + (2 * rows.double() + 1) / (h * s), -1 + (2 * cols.double() + 1) / (w * s), 2 / (h * s), 2 / (w * s))


class MLP(nn.Sequential):
    """LIIF's decoder ``f_theta``: Linear + ReLU per hidden layer, then a Linear to ``out_dim``.

    Args:
        in_dim (int): Input features. out_dim (int): Outputs. hidden_list (list[int]): Hidden widths.
    """

    def __init__(self, in_dim, out_dim, hidden_list):
        layers = []
        for width in hidden_list:
            layers += [nn.Linear(in_dim, width), nn.ReLU(inplace=True)]
            in_dim = width
        super().__init__(*layers, nn.Linear(in_dim, out_dim))


@ARCH_REGISTRY.register()
class LIIF(EncoderUpsampler):
    """Local implicit image function on an LR encoder.

    Each output pixel is decoded by the MLP from the 3x3-unfolded feature of each of its 4 nearest LR pixels,
    its offset to that pixel (in LR pixels) and its cell (in LR pixels), and the 4 predictions are blended with
    the area weights of the local ensemble.

    ``forward(lq, scale, out_size=None, pixels=None)`` (:meth:`EncoderUpsampler.forward`): a batch may mix
    scales (one per sample, ``out_size`` shared); ``pixels`` predicts only some output pixels (LIIF's training
    on ``sample_q`` random GT pixels: compare with ``encoder.gather_pixels(gt, pixels)``). The lower-level path
    is :meth:`query_rgb` on ``prepare(encoder(normalised lq))``. Queries run ``eval_chunk`` at a time; no tiling.

    Args:
        encoder (dict): Registry options of the LR encoder, e.g. ``{type: EDSRBody}`` or ``{type: RDNBody}``.
        num_in_ch (int): Default: 3. num_out_ch (int): Default: 3.
        hidden_list (list[int]): Hidden widths of the MLP. Default: [256, 256, 256, 256].
        img_mean (float | list[float]): Default: 0.5 (LIIF's ``data_norm``: ``sub 0.5``).
        img_std (float | list[float]): Default: 0.5 (``div 0.5``).
        eval_chunk (int): Queries per evaluation of the MLP. Default: 8192 (the authors' ``eval_bsize``: 30000).
        residual (str | None): ``'bicubic'``: predict the residual over the bicubic enlargement (not in LIIF;
            :class:`~nodesr_arch.archs.encoder.EncoderUpsampler`). Default: None.
    """

    def __init__(self, encoder, num_in_ch=3, num_out_ch=3, hidden_list=(256, 256, 256, 256), img_mean=0.5,
                 img_std=0.5, eval_chunk=8192, residual=None):
        super().__init__(encoder, num_in_ch, num_out_ch, img_mean, img_std, eval_chunk, residual)
        self.imnet = MLP(self.num_feat * 9 + 4, num_out_ch, list(hidden_list))

    def prepare(self, feat):
        """The unfolded features through the feature part of the MLP's first layer, once per LR pixel.

        The first layer is linear, so applying its feature columns before picking the 4 neighbours of each
        query equals the authors' order (pick, concatenate, apply) and costs it per LR pixel instead of 4 times
        per output pixel; its offset and cell columns and its bias are applied per query (:meth:`query_rgb`).

        Returns:
            tuple: ``(B * h * w, width)`` projected features (row ``b * h * w + row * w + col``), (h, w), B.
        """
        b, c, h, w = feat.shape
        unfolded = F.unfold(feat, 3, padding=1).transpose(1, 2)  # feature unfolding, 3x3, zero padding
        first = self.imnet[0]
        proj = F.linear(unfolded, first.weight[:, :9 * c])
        return proj.reshape(b * h * w, -1), (h, w), b

    def query(self, state, scales, out_size, rowcol):
        return self.query_rgb(state, *query_coords(*rowcol, scales, state[1]))

    def query_rgb(self, state, coord_r, coord_c, cell_r, cell_c):
        """The local ensemble at LR-normalised coordinates (``LIIF.query_rgb`` of the authors).

        Args:
            state: :meth:`prepare` of the encoder's features.
            coord_r, coord_c (Tensor): (B, Q) coordinates in [-1, 1] (row, column), as :func:`query_coords`.
            cell_r, cell_c (Tensor): (B, 1) or (B, Q) cell height and width in the same units.

        Returns:
            Tensor: (B, Q, num_out_ch), normalised.
        """
        proj, (h, w), b = state
        first, *rest = self.imnet
        offset = (torch.arange(b, device=proj.device) * (h * w)).view(b, 1)
        coord_r, coord_c = coord_r.expand(b, -1), coord_c.expand(b, -1)
        rel_cell = [(cell_r * h).expand_as(coord_r), (cell_c * w).expand_as(coord_c)]
        preds, areas = [], []
        for vr in (-1, 1):
            for vc in (-1, 1):
                # the LR pixel nearest to the coordinate shifted by one LR pixel (grid_sample 'nearest' of the
                # authors, computed directly), with their 1e-6 shift off the cell borders
                idx, rel = [], []
                for coord, v, n in ((coord_r, vr, h), (coord_c, vc, w)):
                    shifted = (coord + v / n + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6)
                    k = torch.floor((shifted + 1) * n / 2).clamp(0, n - 1)
                    idx.append(k.long())
                    rel.append((coord - (-1 + (2 * k + 1) / n)) * n)
                q_feat = proj.index_select(0, (idx[0] * w + idx[1] + offset).flatten()).view(b, -1, proj.shape[1])
                extra = torch.stack(rel + rel_cell, dim=-1).to(proj.dtype)  # offset and cell, in LR pixels
                pred = q_feat + F.linear(extra, first.weight[:, -4:], first.bias)
                for layer in rest:
                    pred = layer(pred)
                preds.append(pred)
                areas.append((rel[0] * rel[1]).abs() + 1e-9)
        total = areas[0] + areas[1] + areas[2] + areas[3]
        # each prediction weighted by the area of the diagonally opposite one
        return sum(pred * (area / total).unsqueeze(-1).to(pred.dtype) for pred, area in zip(preds, areas[::-1]))
