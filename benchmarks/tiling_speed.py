"""Time a NODE-VDSR solve on a large image untiled and with per-evaluation tiling, and check equality.

Usage: python -m benchmarks.tiling_speed [--size 2048] [--tile 512] [--num-feat 16] [--num-layer 20]
The halo (tile_pad = receptive radius = num_layer) is what tiling costs; per-tile Python overhead is
what this measures beyond it. Small ``num_feat`` makes that overhead relatively larger (a harsher test).
"""
import argparse
import time

import torch

from nodesr_arch.archs.vdsr_arch import NODEVDSR


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=2048)
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--num-feat', type=int, default=16)
    parser.add_argument('--num-layer', type=int, default=20)
    parser.add_argument('--scale', type=float, default=2.0)
    parser.add_argument('--method', default='euler')
    parser.add_argument('--repeat', type=int, default=2)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    net = NODEVDSR(num_feat=args.num_feat, num_layer=args.num_layer, ode={'method': args.method}).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(1, 3, args.size, args.size)
    with torch.no_grad():
        net.set_tiling(None)
        t_whole, y_whole = best_time(lambda: net(x, args.scale), args.repeat)
        net.set_tiling(args.tile)
        t_tiled, y_tiled = best_time(lambda: net(x, args.scale), args.repeat)
    diff = (y_whole - y_tiled).abs().max().item()
    print(f'{args.size}x{args.size}, NODE-VDSR {args.num_layer} layers x {args.num_feat} feat, {args.method}, '
          f'x{args.scale:g}, {net.ode.nfe} evaluations of f, torch threads {torch.get_num_threads()}')
    print(f'untiled {t_whole:.2f} s; tile {args.tile} pad {net.tile_pad}: {t_tiled:.2f} s '
          f'(ratio {t_tiled / t_whole:.3f}); max |difference| {diff:.2e}')


if __name__ == '__main__':
    main()
