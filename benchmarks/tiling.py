"""Benchmark 2: tiled vs untiled NODE-SR inference on a large output.

Paper-size NODE-VDSR (20 layers, 64 features, or ``--num-feat``; He-initialised hidden layers and a random,
non-zero last layer), x4 (``--scale``), input ``I(4)``: skimage's astronaut (512x512) shrunk to ``size / 4``
and enlarged bicubically to ``size x size``. rk4 (``--method``) with ``--steps`` fixed steps (4 evaluations
of f per step). Each mode runs in a
fresh process, so each peak resident memory (ru_maxrss, whole process) is its own; modes alternate
round by round. Printed: max |tiled - untiled|, peak RSS per mode (and the part added by the solve over
the process after its imports: a CUDA build of torch alone keeps about 0.5 GB resident), solve time per
mode and the ratio.

Tiling applies to each evaluation of f independently (the ODE state stays whole), so the difference,
the memory and the time ratio do not depend on the number of steps: the default ``--steps 1``
(4 evaluations) stands for the 12 of a default x4 solve (step_size 1.0: 3 rk4 steps), which at 2048x2048
takes several minutes per mode on a 2-core CPU.
Targets: difference <= 1e-5 with tile_pad >= the receptive radius (20), tiled peak RSS <= 1.5 GB,
time ratio tiled / untiled <= 1.2.

    python -m benchmarks.tiling [--size 2048] [--steps 1] [--tile 512] [--tile-pad 20] [--repeat 1]
        [--num-feat 64] [--scale 4] [--method rk4]

A few features (``--num-feat 16 --method euler --scale 2``: one evaluation of f) make the per-tile Python
overhead relatively larger, the harsher test of what tiling costs beyond its halo.
"""
import argparse
import json
import os
import tempfile
import time

from benchmarks.common import machine, peak_rss_mb, run_isolated

TARGETS = {'diff': 1e-5, 'tiled_rss_mb': 1536, 'ratio': 1.2}


def make_input(size, scale):
    """``I(scale)`` at ``size x size``: a natural picture shrunk to ``size / scale``, enlarged back (1, 3, H, W)."""
    import torch
    from skimage.data import astronaut

    from nodesr_arch.data.scale_space import imresize
    from nodesr_arch.inference import enlarge_to
    hr = torch.from_numpy(astronaut()).permute(2, 0, 1)[None].float() / 255
    lr = imresize(hr, size=(round(size / scale),) * 2).clamp(0, 1)
    lr = torch.round(lr * 255) / 255  # an 8-bit LR, as files are
    return enlarge_to(lr, scale, (size, size)).contiguous()


def build_net(steps, method='rk4', num_feat=64):
    """NODE-VDSR (paper depth) with fixed random weights (the last layer is non-zero, unlike at init)."""
    import torch

    import nodesr_arch  # noqa: F401
    from basicsr.archs import build_network
    torch.manual_seed(0)
    net = build_network({'type': 'NODEVDSR', 'num_feat': num_feat, 'ode': {'method': method, 'num_steps': steps}})
    net.eval()
    torch.nn.init.normal_(net.func[-1].weight, std=1e-3)
    torch.nn.init.normal_(net.func[-1].bias, std=1e-3)
    return net


def one_mode(args):
    """Run one solve in this process (``args.mode``); save the output to ``args.save`` and return the figures."""
    import numpy as np
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    net = build_net(args.steps, args.method, args.num_feat)
    x = make_input(args.size, args.scale)
    mode, save = args.mode, args.save
    if mode == 'tiled':
        net.set_tiling(args.tile, args.tile_pad)
    before = peak_rss_mb()
    with torch.inference_mode():
        start = time.perf_counter()
        out = net(x, args.scale)
        seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    np.save(save, out.numpy())
    return dict(mode=mode, seconds=seconds, peak_mb=peak, before_mb=before, nfe=net.ode.nfe,
                change=float((out - x).abs().mean()), radius=net.receptive_radius(), tile_pad=net.tile_pad,
                threads=torch.get_num_threads())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=2048, help='output side (default 2048)')
    parser.add_argument('--steps', type=int, default=1, help='rk4 steps (4 evaluations each; default 1)')
    parser.add_argument('--tile', type=int, default=512, help='tile side (default 512)')
    parser.add_argument('--tile-pad', type=int, help='tile overlap (default: the receptive radius, 20)')
    parser.add_argument('--repeat', type=int, default=1, help='rounds of (untiled, tiled); the fastest counts')
    parser.add_argument('--threads', type=int, help='torch threads in each process (default: torch\'s)')
    parser.add_argument('--num-feat', type=int, default=64, help='features of f (default 64, the paper\'s)')
    parser.add_argument('--scale', type=float, default=4.0, help='scale (default 4)')
    parser.add_argument('--method', default='rk4', help='fixed-grid solver (default rk4)')
    parser.add_argument('--mode', choices=['untiled', 'tiled'], help=argparse.SUPPRESS)
    parser.add_argument('--save', help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ('size', 'steps', 'tile', 'repeat', 'num_feat'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.mode:
        print(json.dumps(one_mode(args)))
        return
    import numpy as np

    print(machine())
    runs = {'untiled': [], 'tiled': []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for mode in runs:
                cmd = ['-m', 'benchmarks.tiling', '--mode', mode, '--size', str(args.size), '--steps',
                       str(args.steps), '--tile', str(args.tile), '--save', os.path.join(tmp, mode + '.npy'),
                       '--num-feat', str(args.num_feat), '--scale', str(args.scale), '--method', args.method]
                cmd += ['--tile-pad', str(args.tile_pad)] if args.tile_pad is not None else []
                cmd += ['--threads', str(args.threads)] if args.threads else []
                runs[mode].append(run_isolated(cmd))
        diff = float(np.abs(np.load(os.path.join(tmp, 'untiled.npy')) - np.load(os.path.join(tmp, 'tiled.npy'))).max())
    best = {mode: min(rs, key=lambda r: r['seconds']) for mode, rs in runs.items()}
    peak = {mode: max(r['peak_mb'] for r in rs) for mode, rs in runs.items()}
    tiled = best['tiled']
    ratio = tiled['seconds'] / best['untiled']['seconds']
    size = 'paper size, ' if args.num_feat == 64 else ''
    print(f"NODE-VDSR ({size}20 layers x {args.num_feat} features), {args.size}x{args.size} output at "
          f"x{args.scale:g}, {args.method} num_steps {args.steps} ({tiled['nfe']} evaluations of f), tile {args.tile}, "
          f"tile_pad {tiled['tile_pad']} (receptive radius {tiled['radius']}), {tiled['threads']} torch threads per "
          f"process, fastest of {args.repeat} round(s); mean |I(1) - I({args.scale:g})| = {tiled['change']:.4f}\n")
    print('| mode | peak RSS (MB) | RSS before the solve (MB) | added by the solve (MB) | solve time (s) |')
    print('|---|---|---|---|---|')
    for mode in runs:
        before = best[mode]['before_mb']
        print(f"| {mode} | {peak[mode]:.0f} | {before:.0f} | {peak[mode] - before:.0f} | {best[mode]['seconds']:.2f} |")
    print()
    figures = [('max abs difference tiled vs untiled', diff, TARGETS['diff'], f'{diff:.2e}', f"{TARGETS['diff']:.0e}"),
               ('tiled peak RSS (MB)', peak['tiled'], TARGETS['tiled_rss_mb'], f"{peak['tiled']:.0f}",
                f"{TARGETS['tiled_rss_mb']}"),
               ('time ratio tiled / untiled', ratio, TARGETS['ratio'], f'{ratio:.3f}', f"{TARGETS['ratio']}")]
    print('| figure | value | target | |')
    print('|---|---|---|---|')
    for name, value, target, shown, target_shown in figures:
        verdict = 'met' if value <= target else f'missed by {value / target:.2f}x'
        print(f'| {name} | {shown} | <= {target_shown} | {verdict} |')


if __name__ == '__main__':
    main()
