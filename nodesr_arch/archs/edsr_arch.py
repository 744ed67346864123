"""EDSR's body without its upsampler (Lim et al., CVPR 2017 workshops): LIIF's ``edsr-baseline`` encoder."""
from torch import nn

from nodesr_arch.registry import ARCH_REGISTRY


class ResBlock(nn.Module):
    """EDSR's residual block without batch norm: ``x + res_scale * conv(relu(conv(x)))``.

    Args:
        num_feat (int): Features. res_scale (float): Scale of the residual.
    """

    def __init__(self, num_feat, res_scale=1.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


@ARCH_REGISTRY.register()
class EDSRBody(nn.Module):
    """EDSR features at LR resolution: a head conv, ``num_block`` residual blocks and a conv, plus the head's
    output (LIIF's ``make_edsr_baseline(no_upsampling=True)``; EDSR-baseline: 16 blocks, 64 features).

    BasicSR's ``EDSR`` always upsamples, hence this arch. No mean shift (LIIF's EDSR has it commented out;
    the LIIF network normalises its input itself).

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_feat (int): Features (the output channels). Default: 64.
        num_block (int): Residual blocks. Default: 16.
        res_scale (float): Residual scale. Default: 1.
    """

    def __init__(self, num_in_ch=3, num_feat=64, num_block=16, res_scale=1.0):
        super().__init__()
        self.head = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResBlock(num_feat, res_scale) for _ in range(num_block)),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))

    def forward(self, x):
        x = self.head(x)
        return x + self.body(x)
