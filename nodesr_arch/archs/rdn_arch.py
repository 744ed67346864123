"""RDN (Zhang et al., CVPR 2018) as the paper's backbone, its ``+t`` baseline and NODE-RDN."""
import torch
from torch import nn

from nodesr_arch.archs.node_util import NODEBase, OneShotBase
from nodesr_arch.archs.tiling import conv_receptive_radius
from nodesr_arch.registry import ARCH_REGISTRY


class RDB(nn.Module):
    """Residual dense block: ``num_conv`` densely connected 3x3 convs, 1x1 fusion, local residual.

    Args:
        num_feat (int): G0. num_grow (int): G. num_conv (int): C.
    """

    def __init__(self, num_feat, num_grow, num_conv):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_feat + i * num_grow, num_grow, 3, 1, 1), nn.ReLU(inplace=True))
            for i in range(num_conv))
        self.fusion = nn.Conv2d(num_feat + num_conv * num_grow, num_feat, 1)

    def forward(self, x):
        feats = [x]
        for conv in self.convs:
            feats.append(conv(torch.cat(feats, 1)))
        return x + self.fusion(torch.cat(feats, 1))


@ARCH_REGISTRY.register()
class RDNBody(nn.Module):
    """RDN features: shallow extraction, ``num_block`` RDBs, global fusion and global residual (RDN without
    its upsampler, at LR resolution: the encoder of Meta-RDN and of LIIF's RDN variant).

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_feat (int): G0. Default: 64.
        num_block (int): D. Default: 16.
        num_conv (int): C. Default: 8.
        num_grow (int): G. Default: 64.
    """

    def __init__(self, num_in_ch=3, num_feat=64, num_block=16, num_conv=8, num_grow=64):
        super().__init__()
        self.sfe1 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.sfe2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.rdbs = nn.ModuleList(RDB(num_feat, num_grow, num_conv) for _ in range(num_block))
        self.gff = nn.Sequential(nn.Conv2d(num_block * num_feat, num_feat, 1), nn.Conv2d(num_feat, num_feat, 3, 1, 1))

    def forward(self, x):
        f1 = self.sfe1(x)
        x = self.sfe2(f1)
        outs = []
        for rdb in self.rdbs:
            x = rdb(x)
            outs.append(x)
        return f1 + self.gff(torch.cat(outs, 1))


class RDNSameRes(nn.Module):
    """RDN with the upsampler replaced by a 3x3 conv to ``num_out_ch`` (same resolution in and out).

    The last conv starts at zero, so an untrained model adds nothing to its input.
    """

    def __init__(self, num_in_ch, num_out_ch, num_feat=64, num_block=16, num_conv=8, num_grow=64):
        super().__init__()
        self.body = RDNBody(num_in_ch, num_feat, num_block, num_conv, num_grow)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def receptive_radius(self):
        """Every 3x3 conv lies on the longest path (sfe1, sfe2, D*C dense convs, GFF, last): D*C + 4."""
        return conv_receptive_radius(self)

    def forward(self, x):
        return self.conv_last(self.body(x))


@ARCH_REGISTRY.register()
class RDN(nn.Module):
    """Classic RDN for one integer scale: LR in, HR out through a sub-pixel upsampler.

    Args:
        num_in_ch (int): Default: 3. num_out_ch (int): Default: 3.
        upscale (int): 2, 3 or 4. Default: 4.
        num_feat (int): G0. Default: 64. num_block (int): D. Default: 16.
        num_conv (int): C. Default: 8. num_grow (int): G. Default: 64.
    """

    takes_scale = False
    input_size = 'lr'

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_feat=64, num_block=16, num_conv=8, num_grow=64):
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f'RDN: upscale must be 2, 3 or 4, got {upscale!r}')
        self.upscale = upscale
        self.body = RDNBody(num_in_ch, num_feat, num_block, num_conv, num_grow)
        ups = []
        for r in ([2, 2] if upscale == 4 else [upscale]):
            ups += [nn.Conv2d(num_feat if not ups else num_grow, num_grow * r * r, 3, 1, 1), nn.PixelShuffle(r)]
        self.upsample = nn.Sequential(*ups)
        self.conv_last = nn.Conv2d(num_grow, num_out_ch, 3, 1, 1)

    def forward(self, x):
        return self.conv_last(self.upsample(self.body(x)))


@ARCH_REGISTRY.register()
class RDNt(OneShotBase):
    """RDN+t: same-resolution RDN with a scale channel, one-shot: ``SR = I(s) + g(I(s), s)``.

    Args:
        num_in_ch (int): Default: 3. num_out_ch (int): Default: 3.
        num_feat (int): Default: 64. num_block (int): Default: 16.
        num_conv (int): Default: 8. num_grow (int): Default: 64.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, num_conv=8, num_grow=64):
        func = RDNSameRes(num_in_ch + 1, num_out_ch, num_feat, num_block, num_conv, num_grow)
        super().__init__(func, receptive_radius=func.receptive_radius())


@ARCH_REGISTRY.register()
class NODERDN(NODEBase):
    """NODE-RDN: ``dI/dt = f(I, t)`` with a same-resolution RDN ``f`` (G0=64, D=16, C=8, G=64).

    Args:
        num_in_ch (int): Default: 3. num_out_ch (int): Default: 3.
        num_feat (int): Default: 64. num_block (int): Default: 16.
        num_conv (int): Default: 8. num_grow (int): Default: 64.
        ode (dict | None): Solver options, e.g. ``{method: rk4, step_size: 1.0}``.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, num_conv=8, num_grow=64, ode=None):
        func = RDNSameRes(num_in_ch + 1, num_out_ch, num_feat, num_block, num_conv, num_grow)
        super().__init__(func, ode=ode, receptive_radius=func.receptive_radius())
