"""Two models over several training seeds: mean and spread per scale, and where their difference exceeds it.

    python -m benchmarks.seed_tables RESULTS.csv [MORE.csv ...] --a A1 A2 A3 --b B1 B2 B3
        [--labels NODE VDSRt] [--csv OUT.csv]

``--a`` and ``--b`` name the rows of ``nodesr benchmark`` results that are the same model trained with
different seeds, paired in the order given (seed i of A against seed i of B). Per dataset and scale it
prints the mean and the standard deviation over seeds (``sd``, n - 1 in the denominator) of each model, the
difference of the means, the smallest and largest paired difference, and a verdict:

- ``A`` / ``B``: the difference of the means is larger than the spread, ``|mean A - mean B| > sd A + sd B``
  (the mean +- sd intervals do not overlap), and every seed pair agrees in sign;
- ``~``: it is not (inside seed-to-seed noise).

A summary line per dataset counts the scales of each verdict. ``--csv`` also writes the figures.
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
    counts = {v: [f"x{st['scale']:g}" for st in stats if st['verdict'] == v] for v in 'AB~'}
    lines += ['', f"{la} ahead beyond the spread at {len(counts['A'])} of {len(stats)} scales "
              f"({' '.join(counts['A']) or 'none'}); {lb} ahead beyond it at {len(counts['B'])} "
              f"({' '.join(counts['B']) or 'none'}); within it at {len(counts['~'])}. "
              f"Mean sd over seeds: {la} {np.mean([st['sd_a'] for st in stats]):.3f} dB, "
              f"{lb} {np.mean([st['sd_b'] for st in stats]):.3f} dB."]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('csv', nargs='+', help='results.csv files of nodesr benchmark')
    parser.add_argument('--a', nargs='+', required=True, help='model A, one result name per seed')
    parser.add_argument('--b', nargs='+', required=True, help='model B, one result name per seed (same order)')
    parser.add_argument('--labels', nargs=2, default=('A', 'B'), help='short names of A and B')
    parser.add_argument('--datasets', nargs='+', help='datasets to show (default: all)')
    parser.add_argument('--csv-out', help='also write the statistics to this CSV')
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
    records = []
    for dataset in args.datasets or unique(r['dataset'] for r in rows):
        stats = seed_stats(rows, dataset, args.a, args.b)
        print(f'### {dataset}\n')
        print('\n'.join(table(stats, args.labels)) + '\n')
        records += [dict(dataset=dataset, **st) for st in stats]
    if args.csv_out:
        with open(args.csv_out, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]) if records else ['dataset'])
            writer.writeheader()
            for rec in records:
                writer.writerow({k: (f'{v:g}' if k == 'scale' else f'{v:.4f}' if isinstance(v, float) else v)
                                 for k, v in rec.items()})


if __name__ == '__main__':
    main()
