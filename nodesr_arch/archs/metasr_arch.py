"""Meta-SR (Hu et al., "Meta-SR: A Magnification-Arbitrary Network for Super-Resolution", CVPR 2019): the
Meta-Upscale module on any LR encoder, and Meta-RDN, the paper's configuration (the rival of NODE-SR's Table 2).

Written after the authors' code, https://github.com/XuecaiHu/Meta-SR-Pytorch (``model/metardn.py``:
``Pos2Weight``, ``MetaRDN.forward``; ``trainer.py``: ``input_matrix_wpn``). The deliberate differences are listed
in docs/architectures.md.
"""
import torch
import torch.nn.functional as F
from torch import nn

from nodesr_arch.archs.encoder import EncoderUpsampler
from nodesr_arch.registry import ARCH_REGISTRY
from nodesr_arch.scales import EPS

#: Meta-SR's input normalisation: the DIV2K mean (``MeanShift``; [0, 1] images here, 0-255 there).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def meta_positions(rows, cols, scale, lr_size):
    """Meta-SR's projection of output pixels onto the LR image (``input_matrix_wpn``).

    Output pixel ``(i, j)`` projects to ``(i / s, j / s)``: its LR pixel is the floor (clamped into the image)
    and the fractional parts are its offsets.

    Args:
        rows, cols (Tensor): Output rows and columns, int64, same shape.
        scale (float): The scale ``s``.
        lr_size (tuple[int, int]): LR (h, w).

    Returns:
        tuple[Tensor, Tensor]: Flat LR indices ``row * w + col`` (int64) and the Pos2Weight input
        ``(1 / s, offset_row, offset_col)`` (float32, shape ``rows.shape + (3,)``).
    """
    h, w = lr_size
    out = []
    for n, pos in ((h, rows), (w, cols)):
        proj = pos.double() / scale
        lr = torch.floor(proj + EPS)
        out += [lr.clamp(max=n - 1).long(), (proj - lr).clamp(min=0)]
    inv = torch.full_like(out[1], 1.0 / scale)
    return out[0] * w + out[2], torch.stack([inv, out[1], out[3]], dim=-1).float()


class Pos2Weight(nn.Sequential):
    """Meta-SR's weight prediction network: ``(1 / s, offset_row, offset_col)`` -> the weights of one
    ``k x k`` conv from ``num_feat`` features to ``num_out_ch`` channels.

    Output layout (as the authors' ``view(..., -1, outC)``): index ``m * num_out_ch + o``, with
    ``m = c * k * k + ki * k + kj`` the row of ``F.unfold``'s columns.

    Args:
        num_feat (int): Feature channels of the encoder.
        kernel_size (int): ``k``. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        hidden (int): Width of the hidden layer. Default: 256.
    """

    def __init__(self, num_feat, kernel_size=3, num_out_ch=3, hidden=256):
        super().__init__(nn.Linear(3, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, kernel_size * kernel_size * num_feat * num_out_ch))


@ARCH_REGISTRY.register()
class MetaSR(EncoderUpsampler):
    """Meta-Upscale on an LR encoder: each output pixel is a ``k x k`` conv of the features around its LR
    pixel, with weights predicted from its offset and ``1 / s`` (:class:`Pos2Weight`).

    ``forward(lq, scale, out_size=None, pixels=None)`` (:meth:`EncoderUpsampler.forward`). A batch must share
    one scale (Meta-SR predicts one set of weights per scale): a mixed batch raises ValueError. Output pixels
    are evaluated ``eval_chunk`` at a time (the predicted weights take ``k*k*num_feat*num_out_ch`` floats per
    pixel); no tiling.

    Args:
        encoder (dict): Registry options of the LR encoder, e.g. ``{type: RDNBody}``.
        num_in_ch (int): Default: 3. num_out_ch (int): Default: 3.
        kernel_size (int): ``k``. Default: 3.
        hidden (int): Width of Pos2Weight's hidden layer. Default: 256.
        img_mean (float | list[float]): Default: the DIV2K mean (Meta-SR's ``MeanShift``).
        img_std (float | list[float]): Default: 1.
        eval_chunk (int): Output pixels per evaluation of the upsampler. Default: 8192.
        residual (str | None): ``'bicubic'``: predict the residual over the bicubic enlargement (not in
            Meta-SR; :class:`~nodesr_arch.archs.encoder.EncoderUpsampler`). Default: None.
    """

    mixed_scales = False

    def __init__(self, encoder, num_in_ch=3, num_out_ch=3, kernel_size=3, hidden=256, img_mean=DIV2K_MEAN,
                 img_std=1.0, eval_chunk=8192, residual=None):
        super().__init__(encoder, num_in_ch, num_out_ch, img_mean, img_std, eval_chunk, residual)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'{type(self).__name__}: kernel_size must be a positive odd integer, got {kernel_size!r}')
        self.kernel_size = int(kernel_size)
        self.p2w = Pos2Weight(self.num_feat, kernel_size, num_out_ch, hidden)

    def prepare(self, feat):
        # the k x k neighbourhood of every LR pixel, one row per pixel: (B, h*w, C*k*k) in F.unfold's order
        return F.unfold(feat, self.kernel_size, padding=self.kernel_size // 2).transpose(1, 2).contiguous(), \
            feat.shape[-2:]

    def query(self, state, scales, out_size, rowcol):
        cols, lr_size = state
        index, pos = meta_positions(*rowcol, float(scales[0]), lr_size)
        weight = self.p2w(pos.to(cols.dtype)).view(*pos.shape[:2], cols.shape[2], self.num_out_ch)  # (B', Q, M, out)
        b, m = cols.shape[0], cols.shape[2]
        index = (index + (torch.arange(b, device=index.device) * cols.shape[1]).view(b, 1)).flatten()
        patches = cols.reshape(-1, m).index_select(0, index).view(b, -1, m)  # (B, Q, M)
        if weight.shape[0] == 1:  # the same pixels in every image: one set of weights for the batch
            return torch.einsum('bqm,qmo->bqo', patches, weight[0])
        return torch.einsum('bqm,bqmo->bqo', patches, weight)


@ARCH_REGISTRY.register()
class MetaRDN(MetaSR):
    """Meta-RDN: Meta-SR on RDN without its upsampler (``RDNBody``), the Meta-SR paper's configuration
    (G0 64, D 16, C 8, G 64; Pos2Weight 3 -> 256 -> k*k*G0*3).

    Args:
        num_in_ch (int): Default: 3. num_out_ch (int): Default: 3.
        num_feat (int): G0. Default: 64. num_block (int): D. Default: 16.
        num_conv (int): C. Default: 8. num_grow (int): G. Default: 64.
        kernel_size, hidden, img_mean, img_std, eval_chunk, residual: As :class:`MetaSR`.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, num_conv=8, num_grow=64,
                 kernel_size=3, hidden=256, img_mean=DIV2K_MEAN, img_std=1.0, eval_chunk=8192, residual=None):
        encoder = dict(type='RDNBody', num_feat=num_feat, num_block=num_block, num_conv=num_conv, num_grow=num_grow)
        super().__init__(encoder, num_in_ch, num_out_ch, kernel_size, hidden, img_mean, img_std, eval_chunk,
                         residual)
