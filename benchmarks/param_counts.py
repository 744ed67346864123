"""Print the exact parameter counts of the paper's configurations (and the baselines and rivals built alike), and
the parameters and multiply-accumulates per output pixel of the small models of the CPU table.

Usage: python -m benchmarks.param_counts
"""
import os

import torch
from torch.utils.flop_counter import FlopCounterMode

import nodesr_arch  # noqa: F401,I001  (first: applies the compat fixes and registers the archs)
from basicsr.archs import build_network
from nodesr_arch.archs.contract import contract
from nodesr_arch.option_files import read_yaml
from nodesr_arch.scales import output_size

# the paper's configurations are the defaults of each architecture (docs/design.md section 2.4); the rivals'
# are their papers' (Meta-SR: Meta-RDN; LIIF: EDSR-baseline and RDN encoders, MLP 256 x 4)
CONFIGS = {
    'NODE-VDSR': {'type': 'NODEVDSR'},
    'VDSR+t': {'type': 'VDSRt'},
    'VDSR': {'type': 'VDSR'},
    'NODE-RDN': {'type': 'NODERDN'},
    'RDN+t': {'type': 'RDNt'},
    'RDN (x4)': {'type': 'RDN', 'upscale': 4},
    'Meta-RDN': {'type': 'MetaRDN'},
    'LIIF (EDSR-baseline)': {'type': 'LIIF', 'encoder': {'type': 'EDSRBody'}},
    'LIIF (RDN)': {'type': 'LIIF', 'encoder': {'type': 'RDNBody'}},
}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The small models of the CPU table: their ``network_g`` is read from these training option files.
SMALL = {
    'NODE-VDSR-S': 'train_NODEVDSR_S_bundled.yml',
    'NODE-VDSR-S one-step': 'train_NODEVDSR_S_onestep.yml',
    'VDSR+t-S': 'train_VDSRt_S_bundled.yml',
    'MetaSR-S': 'train_MetaSR_S_cpu.yml',
    'LIIF-S': 'train_LIIF_S_cpu.yml',
}
#: The small models' parameter target: NODE-VDSR-S.
TARGET = 'NODE-VDSR-S'


def count_params(net):
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())


def param_counts(names=None):
    """Parameter counts of the configurations in ``CONFIGS`` (all, or ``names``).

    Returns:
        dict[str, int]: Name -> count.
    """
    with torch.device('meta'):  # shapes only: no memory, no initialisation cost
        return {name: count_params(build_network(dict(CONFIGS[name]))) for name in (names or CONFIGS)}


def small_config(name):
    """``network_g`` of the small model ``name`` (:data:`SMALL`), from its option file."""
    return dict(read_yaml(os.path.join(ROOT, 'options', 'train', SMALL[name]))['network_g'])


def macs_per_pixel(net, scale, side=96):
    """Multiply-accumulates of the convolutions and matrix products of one forward, per output pixel.

    The network runs on zeros of the size it takes: the output size (``side`` x ``side``) for networks fed the
    enlarged image, else an LR image of ``round(side / scale)`` px. NODE models count all their evaluations
    of ``f`` at that scale (their solver's step count); the bicubic enlargement and elementwise work are not
    counted (``torch.utils.flop_counter``).

    Args:
        net (nn.Module): The network (eval mode).
        scale (float): Scale.
        side (int): About the output side in pixels. Default: 96.

    Returns:
        float: MACs per output pixel.
    """
    c = contract(net)
    if c.input_size == 'output':
        x, out = torch.zeros(1, 3, side, side), (side, side)
    else:
        n = max(1, round(side / scale))
        x, out = torch.zeros(1, 3, n, n), output_size((n, n), scale)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x, scale) if c.takes_scale else net(x)
    return counter.get_total_flops() / 2 / (out[0] * out[1])


def small_models(scales=(2.0, 4.0)):
    """Parameters and MACs per output pixel of the small models (:data:`SMALL`).

    Returns:
        dict[str, dict]: Name -> ``{'config', 'params', 'macs': {scale: MACs per output pixel}}``.
    """
    out = {}
    for name in SMALL:
        opt = small_config(name)
        net = build_network(dict(opt)).eval()
        out[name] = {'config': opt, 'params': count_params(net),
                     'macs': {s: macs_per_pixel(net, s) for s in scales}}
    return out


def main():
    for name, count in param_counts().items():
        print(f'{name:20s} {CONFIGS[name]}: {count:,} parameters ({count / 1e6:.2f} M)')
    small = small_models()
    target = small[TARGET]['params']
    print('\nsmall models (network_g of options/train/*.yml), MACs per output pixel (convs and matrix products):')
    print(f'{"model":22s} {"params":>8s} {"vs " + TARGET:>16s} {"MACs/px x2":>11s} {"MACs/px x4":>11s}')
    for name, row in small.items():
        macs = row['macs']
        print(f'{name:22s} {row["params"]:8,d} {100 * (row["params"] / target - 1):+15.2f}% '
              f'{macs[2.0]:11,.0f} {macs[4.0]:11,.0f}')


if __name__ == '__main__':
    main()
