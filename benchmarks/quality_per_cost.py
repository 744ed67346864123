"""Benchmark 4: quality per cost of the ODE solver settings at inference.

PSNR/SSIM (Y channel, Meta-SR protocol) of one trained NODE model on Set14 at x2, x3 and x4 against the
number of evaluations of f (NFE, mean per image) and the time per image, for rk4 (1, 2, 4 steps),
midpoint and euler (1, 2, 4, 8 steps), dopri5 (rtol/atol 1e-3/1e-4 and 1e-5/1e-6), the model's own
setting ("trained") and bicubic (0 NFE). The loop is ``nodesr benchmark``'s: each HR image read once,
each LR and its ``I(s)`` made once per scale and shared by all settings, inference mode.

    python -m benchmarks.quality_per_cost [--model NODEVDSR_S | CKPT.pth | OPT.yml] [--data DIR]
        [--scales 2 3 4] [--settings trained rk4:1 euler:8 dopri5:1e-3:1e-4 ...] [--out DIR] [--threads N]

Settings: ``METHOD:STEPS`` (fixed-grid method, ``num_steps`` STEPS), ``METHOD:RTOL:ATOL`` (adaptive
method) or ``trained`` (the solver options the model was trained with). ``--out`` also writes
``quality_per_cost.csv`` and ``quality_per_cost.png`` (PSNR against NFE, one panel per scale).
"""
import argparse
import os

import numpy as np

from benchmarks.common import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data', 'benchmark', 'Set14', 'HR'))
DEFAULT_SETTINGS = ['trained', 'rk4:1', 'rk4:2', 'rk4:4', 'midpoint:1', 'midpoint:2', 'midpoint:4', 'midpoint:8',
                    'euler:1', 'euler:2', 'euler:4', 'euler:8', 'dopri5:1e-3:1e-4', 'dopri5:1e-5:1e-6']


def plot(table, scales, path):
    """PSNR against mean NFE, one panel per scale, one line per solver method."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, axes = plt.subplots(1, len(scales), figsize=(5 * len(scales), 4), squeeze=False)
    for ax, s in zip(axes[0], scales):
        methods = {}
        for r in table:
            if r['scale'] == s and r['nfe'] > 0:
                methods.setdefault(r['method'], []).append((r['nfe'], r['psnr']))
        for method, points in methods.items():
            points.sort()
            ax.plot(*zip(*points), marker='o', markersize=4, label=method)
        bicubic = [r['psnr'] for r in table if r['scale'] == s and r['nfe'] == 0]
        if bicubic:
            ax.axhline(bicubic[0], color='grey', linestyle='--', linewidth=0.8, label='bicubic')
        ax.set(title=f'x{s:g}', xlabel='evaluations of f (NFE)', ylabel='PSNR (dB)', xscale='log')
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', help='bundled name, checkpoint or option YAML (default: the bundled model)')
    parser.add_argument('--data', default=DEFAULT_DATA, help='HR folder (default: shared Set14/HR)')
    parser.add_argument('--scales', nargs='+', default=['2', '3', '4'])
    parser.add_argument('--settings', nargs='+', default=DEFAULT_SETTINGS)
    parser.add_argument('--out', help='also write quality_per_cost.csv and .png here')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)

    import torch

    from nodesr_arch.api import load_model
    from nodesr_arch.commands.benchmark import Bicubic, evaluate
    from nodesr_arch.commands.benchmark_report import csv_text
    from nodesr_arch.commands.solver_settings import SolverSetting, parse_setting
    from nodesr_arch.data.scale_space import parse_scales
    from nodesr_arch.file_io import resolve_dataset, write_bytes
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        scales = parse_scales(args.scales)
        dataset = resolve_dataset(args.data)
        up = load_model(args.model)
        if not up.is_ode:
            raise ValueError(f'{up.name} ({type(up.net).__name__}) is one-shot: it has no solver settings')
        trained = up.net.ode.solver_options()
        settings = [parse_setting(s, trained) for s in args.settings]
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    models = [(label, SolverSetting(up, ode)) for label, ode in settings] + [('bicubic', Bicubic())]
    print(machine())
    print(f'{up.name} on {dataset[0]} ({dataset[1]}), Meta-SR protocol, Y channel; NFE = evaluations of f per '
          'image (mean), time = seconds per image (mean)\n')
    rows = evaluate(models, [dataset], scales, 'metasr', progress=not args.quiet)
    table = []
    for (label, model), (_, ode) in zip(models, settings + [('bicubic', {})]):
        for s in scales:
            r = next(r for r in rows if r['model'] == label and r['scale'] == s)
            nfe = float(np.mean(model.nfe[s])) if isinstance(model, SolverSetting) else 0.0
            secs = float(np.mean(model.seconds[s])) if isinstance(model, SolverSetting) else 0.0
            table.append(dict(setting=label, method=ode.get('method', 'bicubic'), scale=s, nfe=round(nfe, 2),
                              psnr=r['psnr'], ssim=r['ssim'], seconds=round(secs, 4)))
    head = ' | '.join(f'x{s:g} PSNR | x{s:g} NFE | x{s:g} s/img' for s in scales)
    print(f'| setting | {head} |')
    print('|---' * (1 + 3 * len(scales)) + '|')
    for label, _ in models:
        cells = []
        for s in scales:
            r = next(r for r in table if r['setting'] == label and r['scale'] == s)
            nfe = f"{r['nfe']:.0f}" if r['nfe'] == round(r['nfe']) else f"{r['nfe']:.1f}"
            cells.append(f"{r['psnr']:.2f} | {nfe} | {r['seconds']:.2f}")
        print(f'| {label} | ' + ' | '.join(cells) + ' |')
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        fields = ['setting', 'method', 'scale', 'nfe', 'psnr', 'ssim', 'seconds']
        write_bytes(os.path.join(args.out, 'quality_per_cost.csv'), csv_text(table, fields))
        plot(table, scales, os.path.join(args.out, 'quality_per_cost.png'))
        print(f"\nwrote {os.path.join(args.out, 'quality_per_cost.csv')}, "
              f"{os.path.join(args.out, 'quality_per_cost.png')}")


if __name__ == '__main__':
    main()
