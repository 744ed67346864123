"""Cost of super-resolution models side by side: parameters, MACs per output pixel and CPU time per output.

    python -m benchmarks.method_cost --model NAME=SPEC [NAME=SPEC ...] [--scales 2 4] [--side 256]
        [--threads 1] [--repeat 5] [--csv OUT.csv]

``SPEC`` is what :func:`nodesr_arch.api.load_model` takes (a bundled model's name, a ``.pth`` with its sidecar
``.yml``, an option YAML). For each scale ``s`` the input is an LR image of ``round(side / s)`` px, so the
output is about ``side x side``; the time is the whole enlargement through the API (``super_resolve``: the
bicubic enlargement and the ODE solve included for NODE models, the network alone for the LR-input rivals),
median over ``--repeat`` rounds. All models run in one process, interleaved (A B C ... A B C ...), at one
thread count, so the machine's load falls on them alike: compare the times of one run, not across runs.
MACs per output pixel are those of :func:`benchmarks.param_counts.macs_per_pixel` (convolutions and matrix
products of every evaluation; bicubic and elementwise work not counted).
"""
import argparse
import csv
import time

import numpy as np
import torch

from benchmarks.common import machine
from benchmarks.param_counts import count_params, macs_per_pixel


def parse_model(text):
    """``NAME=SPEC`` (or a bare ``SPEC``, named after itself) -> ``(name, spec)``."""
    name, sep, spec = text.partition('=')
    return (name, spec) if sep else (text, text)


def measure(models, scales, side, repeat):
    """Time every model at every scale, interleaved.

    Args:
        models (dict[str, Upscaler]): Name -> loaded model.
        scales (list[float]): Scales.
        side (int): About the output side in pixels.
        repeat (int): Rounds; the median is kept.

    Returns:
        list[dict]: One row per model and scale: ``model``, ``scale``, ``params``, ``macs_per_px``, ``ms``,
        ``out`` (output size as ``HxW``).
    """
    rng = np.random.default_rng(0)
    rows = []
    for s in scales:
        n = max(1, round(side / s))
        lr = rng.random((n, n, 3), dtype=np.float32)
        times = {name: [] for name in models}
        shapes = {}
        for name, up in models.items():  # warm-up
            shapes[name] = up.super_resolve(lr, s).shape
        for _ in range(repeat):
            for name, up in models.items():
                start = time.perf_counter()
                up.super_resolve(lr, s)
                times[name].append(time.perf_counter() - start)
        for name, up in models.items():
            rows.append({'model': name, 'scale': s, 'params': count_params(up.net),
                         'macs_per_px': macs_per_pixel(up.net, s, side=side),
                         'ms': 1000 * float(np.median(times[name])), 'out': f'{shapes[name][0]}x{shapes[name][1]}'})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', nargs='+', required=True, help='NAME=SPEC, as load_model takes SPEC')
    parser.add_argument('--scales', nargs='+', type=float, default=[2.0, 4.0])
    parser.add_argument('--side', type=int, default=256, help='output side in pixels (default 256)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--repeat', type=int, default=5, help='timed rounds; the median is kept (default 5)')
    parser.add_argument('--csv', help='also write the rows to this CSV')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nodesr_arch.api import load_model
    models = {}
    for text in args.model:
        name, spec = parse_model(text)
        try:
            models[name] = load_model(spec)
        except (OSError, ValueError) as e:
            parser.error(f'{name}: {e}')
    rows = measure(models, args.scales, args.side, args.repeat)
    print(machine())
    print(f'\n{args.side} px outputs, {args.threads} thread(s), median of {args.repeat} interleaved rounds\n')
    head = ' | '.join(f'MACs/px x{s:g} | ms x{s:g}' for s in args.scales)
    print(f'| model | params | {head} |')
    print('|---|---|' + '---|---|' * len(args.scales))
    for name in models:
        cells = {r['scale']: r for r in rows if r['model'] == name}
        body = ' | '.join(f"{cells[s]['macs_per_px']:,.0f} | {cells[s]['ms']:,.0f}" for s in args.scales)
        print(f"| {name} | {cells[args.scales[0]]['params']:,} | {body} |")
    if args.csv:
        with open(args.csv, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: (f'{v:.0f}' if k == 'macs_per_px' else f'{v:.4g}' if isinstance(v, float) else v)
                                 for k, v in r.items()})


if __name__ == '__main__':
    main()
