"""Two models over several training seeds: mean and spread per scale, and where their difference exceeds it.

    python -m scripts.seed_tables RESULTS.csv [MORE.csv ...] --a A1 A2 A3 --b B1 B2 B3
        [--labels NODE VDSRt] [--csv-out OUT.csv] [--compact 1.1 1.5 2 ...] [--compact-diff 1.1 2 ...]

``--a`` and ``--b`` name the rows of ``nodesr benchmark`` results that are the same model trained with
different seeds, paired in the order given (seed i of A against seed i of B). Per dataset and scale it
prints the mean and the standard deviation over seeds (``sd``, n - 1 in the denominator) of each model, the
difference of the means, the smallest and largest paired difference, and a verdict:

- ``A`` / ``B``: the difference of the means is larger than the spread, ``|mean A - mean B| > sd A + sd B``
  (the mean +- sd intervals do not overlap), and every seed pair agrees in sign;
- ``~``: it is not (inside seed-to-seed noise).

A summary line per dataset counts the scales of each verdict and names them as ranges of the 0.1 grid
(``x2.0 to x3.4``). ``--csv-out`` also writes the figures. ``--compact SCALES`` prints, instead of the
per-scale tables, one table per dataset with ``mean +- sd`` of each model and their difference at the
given scales (bold: beyond the spread), and ``--compact-diff SCALES`` one row of differences per dataset:
the tables quoted in ``docs/results.md``, generated so that their figures cannot drift from the CSVs.
"""
import argparse
import csv

import numpy as np

from nodesr_arch.commands.benchmark_report import merge_rows, read_csv, scale_key, unique


def seed_stats(rows, dataset, a, b):
    """Per-scale statistics of models ``a`` and ``b`` (lists of seed rows' model names) on ``dataset``.

    Args:
        rows (list[dict]): Result rows (``dataset``, ``scale``, ``model``, ``psnr``).
        dataset (str): The dataset.
        a (list[str]), b (list[str]): Model names, one per seed, paired by position.

    Returns:
        list[dict]: One dict per scale that every model has: ``scale``, ``mean_a``, ``sd_a``, ``mean_b``,
        ``sd_b``, ``diff`` (mean a - mean b), ``pair_min``, ``pair_max`` (paired differences) and ``verdict``
        ('A', 'B' or '~').
    """
    psnr = {(r['model'], scale_key(r['scale'])): r['psnr'] for r in rows if r['dataset'] == dataset}
    scales = sorted(set.intersection(*({s for m, s in psnr if m == name} for name in a + b)))
    out = []
    for s in scales:
        va = np.array([psnr[name, s] for name in a])
        vb = np.array([psnr[name, s] for name in b])
        sd_a, sd_b = va.std(ddof=1), vb.std(ddof=1)
        diff = va.mean() - vb.mean()
        pairs = va - vb
        beyond = abs(diff) > sd_a + sd_b and (np.all(pairs > 0) or np.all(pairs < 0))
        out.append({'scale': s, 'mean_a': va.mean(), 'sd_a': sd_a, 'mean_b': vb.mean(), 'sd_b': sd_b,
                    'diff': diff, 'pair_min': pairs.min(), 'pair_max': pairs.max(),
                    'verdict': ('A' if diff > 0 else 'B') if beyond else '~'})
    return out


def scale_ranges(scales, step=0.1):
    """Scales as ranges of consecutive grid points: ``[2.0, 2.1, 2.2, 6]`` -> ``'x2.0 to x2.2, x6'``.

    Args:
        scales (list[float]): Sorted scales.
        step (float): The grid step that makes two scales consecutive.

    Returns:
        str: The ranges, or ``'none'``.
    """
    runs = []
    for s in scales:
        if runs and abs(s - runs[-1][-1] - step) < 1e-6:
            runs[-1].append(s)
        else:
            runs.append([s])

    def name(s, decimal):
        return f'x{s:.1f}' if decimal else f'x{s:g}'

    parts = []
    for run in runs:
        decimal = len(run) > 1 or any(abs(s * 10 - round(s * 10)) < 1e-6 and s != int(s) for s in run)
        parts.append(name(run[0], decimal) if len(run) == 1 else f'{name(run[0], True)} to {name(run[-1], True)}')
    return ', '.join(parts) or 'none'


def summary(stats, labels):
    """The summary sentence of one dataset's :func:`seed_stats`: scales of each verdict, as ranges."""
    la, lb = labels
    counts = {v: [st['scale'] for st in stats if st['verdict'] == v] for v in 'AB~'}
    return (f"{la} ahead beyond the spread at {len(counts['A'])} of {len(stats)} scales "
            f"({scale_ranges(counts['A'])}); {lb} ahead beyond it at {len(counts['B'])} "
            f"({scale_ranges(counts['B'])}); within it at {len(counts['~'])} ({scale_ranges(counts['~'])}). "
            f"Mean sd over seeds: {la} {np.mean([st['sd_a'] for st in stats]):.3f} dB, "
            f"{lb} {np.mean([st['sd_b'] for st in stats]):.3f} dB.")


def _pick(stats, scales):
    by_scale = {st['scale']: st for st in stats}
    missing = [s for s in scales if s not in by_scale]
    if missing:
        raise ValueError(f"no results at scale(s) {' '.join(f'x{s:g}' for s in missing)}")
    return [by_scale[s] for s in scales]


def _diff_cell(st):
    return f"**{st['diff']:+.2f}**" if st['verdict'] != '~' else f"{st['diff']:+.2f}"


def compact_table(stats, dataset, labels, scales):
    """Markdown lines: ``mean +- sd`` of A and B and their difference (bold: beyond the spread) at ``scales``."""
    picked = _pick(stats, scales)
    lines = [f'| {dataset} | ' + ' | '.join(f'x{s:g}' for s in scales) + ' |', '|---' * (len(scales) + 1) + '|']
    for label, key in zip(labels, 'ab'):
        cells = [f"{st['mean_' + key]:.2f} +- {st['sd_' + key]:.2f}" for st in picked]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    lines.append('| difference | ' + ' | '.join(_diff_cell(st) for st in picked) + ' |')
    return lines


def compact_diff_row(stats, dataset, scales):
    """One Markdown row: the differences of the means at ``scales`` (bold: beyond the spread)."""
    return f'| {dataset} | ' + ' | '.join(_diff_cell(st) for st in _pick(stats, scales)) + ' |'


def table(stats, labels):
    """Markdown lines of :func:`seed_stats` output, with a summary line."""
    la, lb = labels
    lines = [f'| scale | {la} mean +- sd | {lb} mean +- sd | {la} - {lb} | paired min .. max | beyond spread |',
             '|---|---|---|---|---|---|']
    for st in stats:
        verdict = {'A': f'{la} ahead', 'B': f'{lb} ahead', '~': ''}[st['verdict']]
        lines.append(f"| x{st['scale']:g} | {st['mean_a']:.2f} +- {st['sd_a']:.3f} | {st['mean_b']:.2f} +- "
                     f"{st['sd_b']:.3f} | {st['diff']:+.3f} | {st['pair_min']:+.3f} .. {st['pair_max']:+.3f} "
                     f'| {verdict} |')
    return lines + ['', summary(stats, labels)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('csv', nargs='+', help='results.csv files of nodesr benchmark')
    parser.add_argument('--a', nargs='+', required=True, help='model A, one result name per seed')
    parser.add_argument('--b', nargs='+', required=True, help='model B, one result name per seed (same order)')
    parser.add_argument('--labels', nargs=2, default=('A', 'B'), help='short names of A and B')
    parser.add_argument('--datasets', nargs='+', help='datasets to show (default: all)')
    parser.add_argument('--csv-out', help='also write the statistics to this CSV')
    compact = parser.add_mutually_exclusive_group()
    compact.add_argument('--compact', nargs='+', type=float, metavar='SCALE',
                         help='one table per dataset at these scales: mean +- sd of A and B, difference')
    compact.add_argument('--compact-diff', nargs='+', type=float, metavar='SCALE',
                         help='one row of differences per dataset at these scales')
    args = parser.parse_args(argv)
    if len(args.a) != len(args.b) or len(args.a) < 2:
        parser.error(f'--a and --b need the same number (>= 2) of seeds, got {len(args.a)} and {len(args.b)}')
    try:
        rows = merge_rows([read_csv(p) for p in args.csv])
    except (OSError, ValueError) as e:
        parser.error(str(e))
    names = unique(r['model'] for r in rows)
    missing = [m for m in args.a + args.b if m not in names]
    if missing:
        parser.error(f'no results for model(s) {missing}; the files hold {names}')
    records, summaries = [], []
    datasets = args.datasets or unique(r['dataset'] for r in rows)
    if args.compact_diff:
        print('| | ' + ' | '.join(f'x{s:g}' for s in args.compact_diff) + ' |')
        print('|---' * (len(args.compact_diff) + 1) + '|')
    for dataset in datasets:
        stats = seed_stats(rows, dataset, args.a, args.b)
        try:
            if args.compact:
                print('\n'.join(compact_table(stats, dataset, args.labels, args.compact)) + '\n')
            elif args.compact_diff:
                print(compact_diff_row(stats, dataset, args.compact_diff))
            else:
                print(f'### {dataset}\n')
                print('\n'.join(table(stats, args.labels)) + '\n')
        except ValueError as e:
            parser.error(f'{dataset}: {e}')
        if args.compact:
            print(f'- {dataset}: {summary(stats, args.labels)}\n')
        elif args.compact_diff:
            summaries.append(f'- {dataset}: {summary(stats, args.labels)}')
        records += [dict(dataset=dataset, **st) for st in stats]
    if summaries:
        print('\n' + '\n'.join(summaries))
    if args.csv_out:
        with open(args.csv_out, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]) if records else ['dataset'])
            writer.writeheader()
            for rec in records:
                writer.writerow({k: (f'{v:g}' if k == 'scale' else f'{v:.4f}' if isinstance(v, float) else v)
                                 for k, v in rec.items()})


if __name__ == '__main__':
    main()
