"""Several methods, each over its training seeds: one table per dataset, who leads where, and a plot.

    python -m scripts.method_tables RESULTS.csv [MORE.csv ...] --method LABEL=NAME[,NAME ...] ...
        [--compact 1.1 1.5 2 ...] [--vs LABEL] [--cost COST.csv] [--csv-out OUT.csv] [--plot OUT.png]

Each ``--method`` names the rows of ``nodesr benchmark`` results that are one method trained with different
seeds (``NODE=NODE1s-s10,NODE1s-s11``), or one row name for a model without seeds (``bicubic``, a bundled
model). Per dataset and scale every method gets its mean and standard deviation over its seeds (``sd``,
n - 1 in the denominator; 0 for one run), and the scale its *leader*: the method with the highest mean,
``beyond`` the spread when its margin over the runner-up is larger than the two sds together and, when
both have seeds paired by position, every seed pair agrees (the rule of :mod:`scripts.seed_tables`).

Printed: the Markdown table at ``--compact`` scales (mean +- sd; the leader in bold when beyond the
spread), the leader per dataset as ranges of the 0.1 grid, and with ``--vs LABEL`` where ``LABEL`` is ahead
of each other method beyond the spread, where that method is, and where neither (:func:`versus_summary`).
``--cost`` adds the rows of ``python -m benchmarks.method_cost --csv`` (named by method label): parameters,
MACs per output pixel and CPU ms per output at each scale it measured. ``--csv-out`` writes one row per
dataset, scale and method; ``--plot`` draws PSNR gain over the first method (bicubic) against scale.
"""
import argparse
import csv

import numpy as np

from nodesr_arch.commands.benchmark_report import merge_rows, read_csv, scale_key, unique
from scripts.seed_tables import scale_ranges


def parse_method(text):
    """``LABEL=NAME[,NAME ...]`` (or a bare ``NAME``, labelled after itself) -> ``(label, [names])``."""
    label, sep, names = text.partition('=')
    names = [n for n in (names if sep else label).split(',') if n]
    if not label or not names:
        raise ValueError(f'--method {text!r}: give LABEL=NAME[,NAME ...]')
    return label, names


def method_stats(rows, dataset, methods):
    """Mean and sd over seeds of every method at every scale all of them have on ``dataset``.

    Args:
        rows (list[dict]): Result rows (``dataset``, ``scale``, ``model``, ``psnr``).
        dataset (str): The dataset.
        methods (dict[str, list[str]]): Label -> model names (one per seed).

    Returns:
        list[dict]: One dict per scale: ``scale`` and ``methods`` (label -> ``{'values', 'mean', 'sd'}``).
    """
    psnr = {(r['model'], scale_key(r['scale'])): r['psnr'] for r in rows if r['dataset'] == dataset}
    names = [n for ns in methods.values() for n in ns]
    scales = sorted(set.intersection(*({s for m, s in psnr if m == name} for name in names)))
    out = []
    for s in scales:
        per = {}
        for label, ns in methods.items():
            v = np.array([psnr[n, s] for n in ns])
            per[label] = {'values': v, 'mean': float(v.mean()), 'sd': float(v.std(ddof=1)) if len(v) > 1 else 0.0}
        out.append({'scale': s, 'methods': per})
    return out


def leader(per):
    """The leading method of one scale's ``methods`` dict: ``(label, runner_up, margin, beyond)``."""
    ranked = sorted(per, key=lambda k: per[k]['mean'], reverse=True)
    a, b = per[ranked[0]], per[ranked[1]]
    margin = a['mean'] - b['mean']
    beyond = margin > a['sd'] + b['sd']
    if beyond and len(a['values']) == len(b['values']) > 1:
        beyond = bool(np.all(a['values'] > b['values']))
    return ranked[0], ranked[1], margin, beyond


def leader_summary(stats):
    """Sentence: the scales each method leads beyond the spread (as ranges), and those nobody does."""
    wins, none = {}, []
    for st in stats:
        label, _, _, beyond = leader(st['methods'])
        (wins.setdefault(label, []) if beyond else none).append(st['scale'])
    ranked = sorted(wins.items(), key=lambda kv: -len(kv[1]))
    parts = [f'{label} at {len(s)} ({scale_ranges(s)})' for label, s in ranked]
    lead = '; '.join(parts) if parts else 'no method'
    return f'Ahead of every other method beyond the spread: {lead}; no method beyond it at {len(none)} ' \
           f'({scale_ranges(none)}).'


def versus_summary(stats, a, b):
    """Sentence: where method ``a`` is ahead of ``b`` beyond the spread, where ``b`` is, and where neither is
    (the rule of :func:`leader` on the two alone)."""
    sides = {a: [], b: [], None: []}
    for st in stats:
        top, _, _, beyond = leader({k: st['methods'][k] for k in (a, b)})
        sides[top if beyond else None].append(st['scale'])
    return (f'{a} ahead beyond the spread at {len(sides[a])} of {len(stats)} scales ({scale_ranges(sides[a])}); '
            f'{b} ahead beyond it at {len(sides[b])} ({scale_ranges(sides[b])}); within it at '
            f'{len(sides[None])} ({scale_ranges(sides[None])}).')


def compact_table(stats, dataset, scales):
    """Markdown lines: one row per method, ``mean +- sd`` at ``scales``; the leader bold when beyond."""
    by_scale = {st['scale']: st for st in stats}
    missing = [s for s in scales if s not in by_scale]
    if missing:
        raise ValueError(f"no results at scale(s) {' '.join(f'x{s:g}' for s in missing)}")
    picked = [by_scale[s] for s in scales]
    leads = [leader(st['methods']) for st in picked]
    lines = [f'| {dataset} | ' + ' | '.join(f'x{s:g}' for s in scales) + ' |', '|---' * (len(scales) + 1) + '|']
    for label in picked[0]['methods']:
        cells = []
        for st, (top, _, _, beyond) in zip(picked, leads):
            m = st['methods'][label]
            cell = f"{m['mean']:.2f}" + (f" +- {m['sd']:.2f}" if len(m['values']) > 1 else '')
            cells.append(f'**{cell}**' if label == top and beyond else cell)
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return lines


def cost_lines(path, labels):
    """Markdown lines of a ``benchmarks.method_cost`` CSV for the methods in ``labels`` that it has."""
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    scales = unique(float(r['scale']) for r in rows)
    head = ' | '.join(f'MACs/px x{s:g} | CPU ms x{s:g}' for s in scales)
    lines = [f'| method | params | {head} |', '|---|---|' + '---|---|' * len(scales)]
    for label in labels:
        cells = {float(r['scale']): r for r in rows if r['model'] == label}
        if len(cells) != len(scales):
            continue
        body = ' | '.join(f"{float(cells[s]['macs_per_px']):,.0f} | {float(cells[s]['ms']):,.0f}" for s in scales)
        lines.append(f"| {label} | {int(cells[scales[0]]['params']):,} | {body} |")
    return lines


def plot(all_stats, path):
    """PSNR gain over the first method against scale, one panel per dataset, sd as a band."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, axes = plt.subplots(1, len(all_stats), figsize=(6.5 * len(all_stats), 4.5), squeeze=False)
    for ax, (dataset, stats) in zip(axes[0], all_stats.items()):
        labels = list(stats[0]['methods'])
        x = np.arange(len(stats))
        ref = np.array([st['methods'][labels[0]]['mean'] for st in stats])
        for label in labels[1:]:
            mean = np.array([st['methods'][label]['mean'] for st in stats]) - ref
            sd = np.array([st['methods'][label]['sd'] for st in stats])
            ax.plot(x, mean, marker='.', label=label)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.axhline(0, color='grey', lw=0.8)
        ax.set_xticks(x[::3], [f"x{st['scale']:g}" for st in stats][::3], fontsize=8)
        ax.set_title(dataset)
        ax.set_ylabel(f'PSNR (dB) over {labels[0]}')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('csv', nargs='+', help='results.csv files of nodesr benchmark')
    parser.add_argument('--method', nargs='+', required=True, help='LABEL=NAME[,NAME ...], one name per seed')
    parser.add_argument('--datasets', nargs='+', help='datasets to show (default: all)')
    parser.add_argument('--compact', nargs='+', type=float, metavar='SCALE', help='the table at these scales')
    parser.add_argument('--vs', help='also compare this method with every other one that has seeds')
    parser.add_argument('--cost', help='a benchmarks.method_cost CSV, its rows named by method label')
    parser.add_argument('--csv-out', help='write one row per dataset, scale and method to this CSV')
    parser.add_argument('--plot', help='write the PSNR-against-scale plot to this PNG')
    args = parser.parse_args(argv)
    try:
        methods = dict(parse_method(m) for m in args.method)
        rows = merge_rows([read_csv(p) for p in args.csv])
    except (OSError, ValueError) as e:
        parser.error(str(e))
    if len(methods) < 2:
        parser.error('give at least two --method')
    if args.vs is not None and args.vs not in methods:
        parser.error(f'--vs {args.vs}: not one of the methods {list(methods)}')
    names = unique(r['model'] for r in rows)
    missing = [n for ns in methods.values() for n in ns if n not in names]
    if missing:
        parser.error(f'no results for model(s) {missing}; the files hold {names}')
    all_stats = {}
    for dataset in args.datasets or unique(r['dataset'] for r in rows):
        stats = all_stats[dataset] = method_stats(rows, dataset, methods)
        if args.compact:
            try:
                print('\n'.join(compact_table(stats, dataset, args.compact)) + '\n')
            except ValueError as e:
                parser.error(f'{dataset}: {e}')
        print(f'- {dataset}, all {len(stats)} scales: {leader_summary(stats)}')
        if args.vs:
            for label in methods:
                if label != args.vs:
                    print(f'  - {args.vs} against {label}: {versus_summary(stats, args.vs, label)}')
        print()
    if args.cost:
        print('\n'.join(cost_lines(args.cost, methods)) + '\n')
    if args.csv_out:
        with open(args.csv_out, 'w', newline='') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(['dataset', 'scale', 'method', 'seeds', 'mean', 'sd'])
            for dataset, stats in all_stats.items():
                for st in stats:
                    for label, m in st['methods'].items():
                        writer.writerow([dataset, f"{st['scale']:g}", label, len(m['values']), f"{m['mean']:.4f}",
                                         f"{m['sd']:.4f}"])
    if args.plot:
        plot(all_stats, args.plot)


if __name__ == '__main__':
    main()
