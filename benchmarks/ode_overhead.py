"""Benchmark 1: ODE overhead of NODE-SR inference.

Ratio = NODE forward time / (number of evaluations of f x one forward of f), in one process, inference
mode, paper-size NODE-VDSR (20 layers, 64 features) with a 2-step rk4 (8 evaluations). Measurements of
the two sides are interleaved so machine load affects both alike. Target: <= 1.05.

    python -m benchmarks.ode_overhead [--sizes 256 512] [--repeat 3]
"""
import argparse

import torch

import nodesr_arch  # noqa: F401
from basicsr.archs import build_network
from benchmarks.common import machine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 512])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--steps', type=int, default=2)
    parser.add_argument('--scale', type=float, default=2.0)
    args = parser.parse_args()
    import time
    print(machine())
    net = build_network({'type': 'NODEVDSR', 'ode': {'method': 'rk4', 'num_steps': args.steps}}).eval()
    # a trained f is not zero; random last layer keeps the solver's work realistic
    torch.nn.init.normal_(net.func[-1].weight, std=1e-3)
    print('| size | NFE | NODE forward (s) | NFE x f forward (s) | ratio |')
    print('|---|---|---|---|---|')
    for size in args.sizes:
        x = torch.rand(1, 3, size, size)
        xt = torch.cat([x, torch.full((1, 1, size, size), args.scale)], 1)
        with torch.inference_mode():
            net(x, args.scale)  # warm-up
            nfe = net.ode.nfe
            net.func(xt)
            node_t, f_t = [], []
            for _ in range(args.repeat):
                start = time.perf_counter()
                net(x, args.scale)
                node_t.append(time.perf_counter() - start)
                start = time.perf_counter()
                for _ in range(nfe):
                    net.func(xt)
                f_t.append(time.perf_counter() - start)
        node, f = sorted(node_t)[len(node_t) // 2], sorted(f_t)[len(f_t) // 2]
        print(f'| {size}x{size} | {nfe} | {node:.3f} | {f:.3f} | {node / f:.3f} |', flush=True)


if __name__ == '__main__':
    main()
