"""Tables for docs from ``nodesr benchmark`` results: selected scales, and one method against another.

    python -m scripts.results_tables RESULTS.csv [MORE.csv ...] [--scales 1.5 2 2.5 3 3.5 4 6 8]
        [--models bicubic A B] [--cell psnr|psnr-ssim] [--vs A B]

Prints, per dataset, the paper-layout table (scales as columns, methods as rows, best PSNR in bold) at the
chosen scales, and with ``--vs A B`` the PSNR of A minus B at every scale both have, with a summary line
(A ahead at k of n scales, mean / min / max difference). Several CSVs are combined (each result once).
"""
import argparse

import numpy as np

from nodesr_arch.commands.benchmark_report import merge_rows, paper_table, read_csv, scale_key, unique


def versus(rows, dataset, a, b, scales=None, max_columns=12):
    """Markdown lines: PSNR of ``a`` minus ``b`` per scale on ``dataset``, and a summary line.

    Args:
        rows (list[dict]): Result rows.
        dataset (str): The dataset.
        a (str), b (str): Model names.
        scales (list[float] | None): Scales to use (default: every scale both have).
        max_columns (int): Most scale columns per table.

    Returns:
        list[str]: The lines (empty if ``a`` and ``b`` share no scale on ``dataset``).
    """
    psnr = {(r['model'], scale_key(r['scale'])): r['psnr'] for r in rows if r['dataset'] == dataset}
    common = sorted({s for m, s in psnr if m == a} & {s for m, s in psnr if m == b})
    if scales is not None:
        common = [s for s in common if s in {scale_key(v) for v in scales}]
    if not common:
        return []
    diff = [psnr[a, s] - psnr[b, s] for s in common]
    lines = []
    for start in range(0, len(common), max_columns):
        part = common[start:start + max_columns]
        lines += ['| | ' + ' | '.join(f'x{s:g}' for s in part) + ' |', '|---' * (len(part) + 1) + '|',
                  f'| {a} - {b} (dB) | ' + ' | '.join(f'{d:+.2f}' for d in diff[start:start + max_columns]) + ' |',
                  '']
    wins = sum(d > 0 for d in diff)
    lines.append(f'{a} ahead of {b} at {wins} of {len(diff)} scales; difference mean {np.mean(diff):+.3f} dB, '
                 f'min {min(diff):+.3f} (x{common[int(np.argmin(diff))]:g}), '
                 f'max {max(diff):+.3f} (x{common[int(np.argmax(diff))]:g}).')
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('csv', nargs='+', help='results.csv files of nodesr benchmark')
    parser.add_argument('--scales', nargs='+', type=float, help='columns to show (default: all)')
    parser.add_argument('--models', nargs='+', help='rows to show, in this order (default: all)')
    parser.add_argument('--datasets', nargs='+', help='datasets to show (default: all)')
    parser.add_argument('--cell', choices=['psnr', 'psnr-ssim'], default='psnr')
    parser.add_argument('--max-columns', type=int, default=12)
    parser.add_argument('--vs', nargs=2, metavar=('A', 'B'), help='also print PSNR of A minus B per scale')
    args = parser.parse_args(argv)
    try:
        rows = merge_rows([read_csv(p) for p in args.csv])
    except (OSError, ValueError) as e:
        parser.error(str(e))
    names = unique(r['model'] for r in rows)
    missing = [m for m in (args.models or []) + (args.vs or []) if m not in names]
    if missing:
        parser.error(f'no results for model(s) {missing}; the files hold {names}')
    for dataset in args.datasets or unique(r['dataset'] for r in rows):
        print(f'### {dataset}\n')
        print('\n'.join(paper_table(rows, dataset, args.scales, args.cell, args.max_columns, args.models)))
        if args.vs:
            lines = versus(rows, dataset, *args.vs, scales=args.scales, max_columns=args.max_columns)
            print('\n' + '\n'.join(lines or [f'{args.vs[0]} and {args.vs[1]} share no scale on {dataset}']))
        print()


if __name__ == '__main__':
    main()
