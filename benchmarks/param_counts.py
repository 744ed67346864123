"""Print the exact parameter counts of the paper's configurations (and the baselines built alike).

Usage: python -m benchmarks.param_counts
"""
import torch

import nodesr_arch  # noqa: F401,I001  (first: applies the compat fixes and registers the archs)
from basicsr.archs import build_network

# the paper's configurations are the defaults of each architecture (docs/design.md section 2.4)
CONFIGS = {
    'NODE-VDSR': {'type': 'NODEVDSR'},
    'VDSR+t': {'type': 'VDSRt'},
    'VDSR': {'type': 'VDSR'},
    'NODE-RDN': {'type': 'NODERDN'},
    'RDN+t': {'type': 'RDNt'},
    'RDN (x4)': {'type': 'RDN', 'upscale': 4},
}


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


def main():
    for name, count in param_counts().items():
        print(f'{name:10s} {CONFIGS[name]}: {count:,} parameters ({count / 1e6:.2f} M)')


if __name__ == '__main__':
    main()
