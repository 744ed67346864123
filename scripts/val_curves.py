"""Validation PSNR over iterations, read from BasicSR training logs: a table and a CSV.

    python -m scripts.val_curves NAME=LOG [NAME=LOG ...] [--datasets Set5_x1.1 Set5_x2]
        [--every 500] [--csv OUT.csv] [--vs A B]

Each ``LOG`` is a ``train_*.log`` that BasicSR writes into ``experiments/NAME/`` (several logs of one run,
e.g. before and after ``--auto_resume``, may be given as ``NAME=LOG1,LOG2``). A validation result is
taken at the iteration of the last progress line before it. Prints one Markdown table per validation
set (iterations as rows, runs as columns) and with ``--vs A B`` the column A - B.
"""
import argparse
import csv
import re

_ITER = re.compile(r'\biter:\s*([\d,]+)')
_VALID = re.compile(r'INFO: Validation (\S+)')
_PSNR = re.compile(r'# psnr: ([-\d.]+)')


def read_log(paths):
    """``{(dataset, iteration): psnr}`` from BasicSR log files (later files win).

    Args:
        paths (list[str]): Log files of one run, in order.

    Returns:
        dict: Validation PSNR per (validation set name, iteration).
    """
    out = {}
    for path in paths:
        current, dataset = 0, None
        with open(path) as f:
            for line in f:
                if (m := _ITER.search(line)) and 'Best:' not in line:
                    current = int(m.group(1).replace(',', ''))
                elif m := _VALID.search(line):
                    dataset = m.group(1)
                elif (m := _PSNR.search(line)) and dataset is not None:
                    out[dataset, current] = float(m.group(1))
                    dataset = None
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='+', help='NAME=LOG or NAME=LOG1,LOG2')
    parser.add_argument('--datasets', nargs='+', help='validation sets to show (default: all)')
    parser.add_argument('--every', type=int, default=0, help='only iterations that are multiples of this')
    parser.add_argument('--vs', nargs=2, metavar=('A', 'B'), help='also the column A - B')
    parser.add_argument('--csv', help='write run,dataset,iter,psnr rows here')
    args = parser.parse_args(argv)
    curves = {}
    for spec in args.runs:
        name, sep, paths = spec.partition('=')
        if not sep or not paths:
            parser.error(f'give runs as NAME=LOG, got {spec!r}')
        try:
            curves[name] = read_log(paths.split(','))
        except OSError as e:
            parser.error(str(e))
    if args.vs and not set(args.vs) <= set(curves):
        parser.error(f'--vs names must be among the runs {list(curves)}')
    datasets = args.datasets or sorted({d for c in curves.values() for d, _ in c})
    for dataset in datasets:
        iters = sorted({i for c in curves.values() for d, i in c if d == dataset and i % (args.every or 1) == 0})
        head = list(curves) + ([f'{args.vs[0]} - {args.vs[1]}'] if args.vs else [])
        print(f'### {dataset}\n\n| iteration | ' + ' | '.join(head) + ' |\n' + '|---' * (len(head) + 1) + '|')
        for i in iters:
            cells = [f'{curves[n][dataset, i]:.2f}' if (dataset, i) in curves[n] else '' for n in curves]
            if args.vs:
                a, b = (curves[n].get((dataset, i)) for n in args.vs)
                cells.append(f'{a - b:+.2f}' if a is not None and b is not None else '')
            print(f'| {i} | ' + ' | '.join(cells) + ' |')
        print()
    if args.csv:
        with open(args.csv, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['run', 'dataset', 'iter', 'psnr'])
            for name, c in curves.items():
                for (dataset, i), v in sorted(c.items()):
                    writer.writerow([name, dataset, i, f'{v:.4f}'])


if __name__ == '__main__':
    main()
