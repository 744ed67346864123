"""VDSR (Kim et al., CVPR 2016) as the paper's backbone, its ``+t`` baseline and NODE-VDSR."""
from torch import nn

from nodesr_arch.archs.contract import SRNetwork, apply_tiled
from nodesr_arch.archs.node_util import NODEBase, OneShotBase
from nodesr_arch.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class VDSRBody(nn.Sequential):
    """Plain VDSR body: ``num_layer`` 3x3 convs, ReLU between them, no global residual.

    Hidden layers use He initialisation; the last conv starts at zero, so an untrained model returns
    its (bicubic) input. Registered as an LR encoder of the rivals' small versions (``zero_last: false``,
    ``num_out_ch`` = the features).

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Features. Default: 64.
        num_layer (int): Number of conv layers (>= 2). Default: 20.
        zero_last (bool): Start the last conv at zero (False: He initialisation as the others). Default: True.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_layer=20, zero_last=True):
        if num_layer < 2:
            raise ValueError(f'num_layer must be >= 2, got {num_layer}')
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(num_layer - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(num_feat, num_out_ch, 3, 1, 1))
        super().__init__(*layers)
        for m in self:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
                nn.init.zeros_(m.bias)
        if zero_last:
            nn.init.zeros_(self[-1].weight)
        self.num_layer = num_layer

    def receptive_radius(self):
        """Each 3x3 conv widens the receptive field by one pixel on each side."""
        return self.num_layer


@ARCH_REGISTRY.register()
class VDSR(SRNetwork, nn.Module):
    """Classic VDSR: ``SR = x + body(x)`` on the bicubic-enlarged image (no scale input).

    Args:
        num_in_ch (int): Channels of the image. Default: 3.
        num_out_ch (int): Default: 3.
        num_feat (int): Default: 64.
        num_layer (int): Default: 20.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_layer=20):
        super().__init__()
        self.body = VDSRBody(num_in_ch, num_out_ch, num_feat, num_layer)
        self.radius = num_layer

    def forward(self, x, tiling=None):
        """``x + body(x)``; ``tiling``: this call's (:meth:`tiling_for`), None: the network's default."""
        return x + apply_tiled(self.body, x, self.tiling if tiling is None else tiling)


@ARCH_REGISTRY.register()
class VDSRt(OneShotBase):
    """VDSR+t: VDSR with a scale channel, used one-shot: ``SR = I(s) + g(I(s), s)``.

    Args:
        num_in_ch (int): Channels of the image (the scale channel is added). Default: 3.
        num_out_ch (int): Default: 3.
        num_feat (int): Default: 64.
        num_layer (int): Default: 20.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_layer=20):
        body = VDSRBody(num_in_ch + 1, num_out_ch, num_feat, num_layer)
        super().__init__(body, receptive_radius=body.receptive_radius())


@ARCH_REGISTRY.register()
class NODEVDSR(NODEBase):
    """NODE-VDSR: ``dI/dt = f(I, t)`` with a VDSR ``f`` (paper: 20 layers, 64 features, 0.67 M params).

    Args:
        num_in_ch (int): Channels of the image (the scale channel is added). Default: 3.
        num_out_ch (int): Default: 3.
        num_feat (int): Default: 64.
        num_layer (int): Default: 20.
        ode (dict | None): Solver options, e.g. ``{method: rk4, step_size: 1.0}``.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_layer=20, ode=None):
        body = VDSRBody(num_in_ch + 1, num_out_ch, num_feat, num_layer)
        super().__init__(body, ode=ode, receptive_radius=body.receptive_radius())
