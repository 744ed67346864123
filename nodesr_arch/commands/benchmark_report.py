"""Benchmark results: CSV files, tables in the paper's layout and the PSNR-vs-scale plot.

Rows are dicts with keys :data:`FIELDS` (``dataset``, ``scale``, ``model``, ``psnr``, ``ssim``). Tables
follow the paper's Table 2: one table per dataset, scales as columns, methods as rows, the best PSNR of
each column in bold. Rows of a fixed-scale model at another scale (``EDSR x2 + bicubic``) get a note in
``results.md`` and a dashed line in the plot.
"""
import csv
import io
import json
import os
import re

from nodesr_arch.file_io import write_bytes

FIELDS = ['dataset', 'scale', 'model', 'psnr', 'ssim']
IMAGE_FIELDS = ['dataset', 'scale', 'model', 'image', 'psnr', 'ssim']
CELLS = ('psnr', 'psnr-ssim')
BICUBIC = 'bicubic'
# the names nodesr_arch.inference.fixed_scale_label gives a fixed-scale model's rows at other scales
FIXED_SCALE_ROW = re.compile(r' x[0-9.]+ \+ bicubic$')
FIXED_SCALE_NOTE = ('Rows named `NAME xF + bicubic` are a fixed-scale xF model run at its own scale, its output '
                    'resized with MATLAB bicubic to the output size of the other scales: not a model of those scales.')


def scale_key(scale):
    """A hashable key for a scale, robust to float rounding in CSV round trips."""
    return round(float(scale), 6)


def unique(values):
    """``values`` without repeats, in first-seen order."""
    return list(dict.fromkeys(values))


def csv_text(rows, fields=FIELDS):
    """Rows as CSV text: PSNR to 4 decimals, SSIM to 5, scales as ``%g``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator='\n', extrasaction='ignore')
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f'{v:.4f}' if k == 'psnr' else f'{v:.5f}' if k == 'ssim' else
                             f'{v:g}' if k == 'scale' else v) for k, v in r.items()})
    return buf.getvalue()


def read_csv(path):
    """Rows of a ``results.csv`` (or ``per_image.csv``) with numbers as floats.

    Raises:
        ValueError: The file lacks the result columns or holds a non-number.
    """
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        missing = [k for k in FIELDS if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{path}: not a benchmark results file (missing columns {missing})')
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rows.append({**r, 'scale': float(r['scale']), 'psnr': float(r['psnr']), 'ssim': float(r['ssim'])})
            except (TypeError, ValueError):
                raise ValueError(f'{path}, line {line}: bad number in {dict(r)}') from None
    return rows


def merge_rows(row_lists, key_fields=('dataset', 'scale', 'model')):
    """Combine result rows from several runs, sorted by dataset (first seen), scale, model (first seen).

    Args:
        row_lists (list[list[dict]]): Rows of each run.
        key_fields (tuple[str]): Fields identifying one result.

    Returns:
        list[dict]: The rows; a result found twice with the same figures is kept once.

    Raises:
        ValueError: The same result appears twice with different figures.
    """
    merged = {}
    for rows in row_lists:
        for r in rows:
            key = tuple(scale_key(r[k]) if k == 'scale' else r[k] for k in key_fields)
            old = merged.get(key)
            if old is not None and (abs(old['psnr'] - r['psnr']) > 1e-4 or abs(old['ssim'] - r['ssim']) > 1e-5):
                raise ValueError(f'conflicting results for {dict(zip(key_fields, key))}: psnr {old["psnr"]:.4f} '
                                 f'vs {r["psnr"]:.4f}')
            merged.setdefault(key, r)
    rows = list(merged.values())
    datasets = unique(r['dataset'] for r in rows)
    models = unique(r['model'] for r in rows)
    return sorted(rows, key=lambda r: (datasets.index(r['dataset']), r['scale'], models.index(r['model']),
                                       r.get('image', '')))


def _grid(rows, dataset):
    """Scales (ascending), models (first seen) and ``{(model, scale key): row}`` of one dataset."""
    sub = [r for r in rows if r['dataset'] == dataset]
    scales = sorted(unique(scale_key(r['scale']) for r in sub))
    models = unique(r['model'] for r in sub)
    return scales, models, {(r['model'], scale_key(r['scale'])): r for r in sub}


def _chunks(items, size):
    size = max(1, int(size or len(items) or 1))
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def paper_table(rows, dataset, scales=None, cell='psnr-ssim', max_columns=None, models=None):
    """Markdown lines of one dataset's table: scales as columns, methods as rows, best PSNR in bold.

    Args:
        rows (list[dict]): Result rows (any datasets; only ``dataset``'s are used).
        dataset (str): The dataset.
        scales (list[float] | None): Columns to show (default: every scale of the dataset, ascending).
        cell (str): 'psnr' or 'psnr-ssim' (``PSNR / SSIM``). Default: 'psnr-ssim'.
        max_columns (int | None): Split into several tables of at most this many scale columns.
        models (list[str] | None): Rows to show, in this order (default: every model, first seen).

    Returns:
        list[str]: The lines (tables separated by blank lines).
    """
    if cell not in CELLS:
        raise ValueError(f'cell must be one of {CELLS}, got {cell!r}')
    all_scales, all_models, grid = _grid(rows, dataset)
    scales = all_scales if scales is None else [scale_key(s) for s in scales]
    models = all_models if models is None else list(models)
    lines = []
    for part in _chunks(scales, max_columns):
        best = {}
        for s in part:
            values = [round(grid[m, s]['psnr'], 2) for m in models if (m, s) in grid]
            if len(values) > 1:
                best[s] = max(values)
        lines += ['| method | ' + ' | '.join(f'x{s:g}' for s in part) + ' |', '|---' * (len(part) + 1) + '|']
        for m in models:
            cells = []
            for s in part:
                r = grid.get((m, s))
                if r is None:
                    cells.append('')
                    continue
                psnr = f"{r['psnr']:.2f}"
                if best.get(s) == round(r['psnr'], 2):
                    psnr = f'**{psnr}**'
                cells.append(psnr if cell == 'psnr' else f"{psnr} / {r['ssim']:.4f}")
            lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    return lines[:-1]


def gain_table(rows, dataset, reference=BICUBIC, max_columns=None):
    """Markdown lines: PSNR of each other model minus ``reference``'s, per scale (empty if not possible)."""
    scales, models, grid = _grid(rows, dataset)
    others = [m for m in models if m != reference]
    scales = [s for s in scales if (reference, s) in grid]
    if not others or not scales or reference not in models:
        return []
    lines = []
    for part in _chunks(scales, max_columns):
        lines += ['| method | ' + ' | '.join(f'x{s:g}' for s in part) + ' |', '|---' * (len(part) + 1) + '|']
        for m in others:
            cells = [f"{grid[m, s]['psnr'] - grid[reference, s]['psnr']:+.2f}" if (m, s) in grid else ''
                     for s in part]
            lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    return lines[:-1]


def markdown(rows, command=None, protocol=None, cell='psnr-ssim', max_columns=12, self_ensemble=False, source=None):
    """The whole ``results.md``: per dataset, the paper-layout table and the gain over bicubic.

    Args:
        rows (list[dict]): Result rows.
        command (str | None): The command that made them (shown).
        protocol (str | None): The protocol (None: LR files were read).
        cell (str): 'psnr' or 'psnr-ssim'. Default: 'psnr-ssim'.
        max_columns (int | None): Most scale columns per table. Default: 12.
        self_ensemble (bool): Say that the figures are self-ensembled ("+"). Default: False.
        source (str | None): Where the LR images came from, overriding ``protocol`` (merged runs).
    """
    lines = ['# Benchmark', '']
    if command:
        lines += [f'Command: `{command}`', '']
    what = source or run_source(protocol, self_ensemble)
    measure = 'PSNR (dB) / SSIM' if cell == 'psnr-ssim' else 'PSNR (dB)'
    lines += [f'{measure}, {what}; Y channel (grey images: their one channel), border ceil(scale). '
              'Scales as columns, methods as rows; the best PSNR of each column in bold.', '']
    if any(FIXED_SCALE_ROW.search(m) for m in unique(r['model'] for r in rows)):
        lines += [FIXED_SCALE_NOTE, '']
    for dataset in unique(r['dataset'] for r in rows):
        lines += [f'## {dataset}', ''] + paper_table(rows, dataset, cell=cell, max_columns=max_columns) + ['']
        gain = gain_table(rows, dataset, max_columns=max_columns)
        if gain:
            lines += [f'PSNR gain over bicubic (dB), {dataset}:', ''] + gain + ['']
    return '\n'.join(lines)


def plot(rows, path, reference=BICUBIC):
    """PSNR against scale, one line per method and one row of panels per dataset (PNG).

    With ``reference`` (bicubic) among the methods, a second panel per dataset shows each other
    method's PSNR gain over it.

    Args:
        rows (list[dict]): Result rows.
        path (str): The ``.png`` to write.
        reference (str): The baseline of the gain panels. Default: 'bicubic'.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    datasets = unique(r['dataset'] for r in rows)
    gains = [ds for ds in datasets if gain_table(rows, ds)]
    ncols = 2 if gains else 1
    colour = {m: f'C{k % 10}' for k, m in enumerate(unique(r['model'] for r in rows))}  # same in every panel
    dashes = {m: '--' if FIXED_SCALE_ROW.search(m) else '-' for m in colour}  # resized fixed-scale rows dashed
    fig, axes = plt.subplots(len(datasets), ncols, figsize=(6.5 * ncols, 4 * len(datasets)), squeeze=False)
    for i, ds in enumerate(datasets):
        scales, models, grid = _grid(rows, ds)
        ax = axes[i][0]
        for m in models:
            xs = [s for s in scales if (m, s) in grid]
            ax.plot(xs, [grid[m, s]['psnr'] for s in xs], marker='o', markersize=3, label=m, color=colour[m],
                    linestyle=dashes[m])
        ax.set(title=f'{ds}: PSNR', xlabel='scale', ylabel='PSNR (dB)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
        if ncols == 2:
            ax = axes[i][1]
            if ds in gains:
                for m in [m for m in models if m != reference]:
                    xs = [s for s in scales if (m, s) in grid and (reference, s) in grid]
                    ax.plot(xs, [grid[m, s]['psnr'] - grid[reference, s]['psnr'] for s in xs], marker='o',
                            markersize=3, label=m, color=colour[m], linestyle=dashes[m])
                ax.axhline(0, color='grey', linewidth=0.8)
                ax.set(title=f'{ds}: gain over {reference}', xlabel='scale', ylabel='PSNR gain (dB)')
                ax.grid(alpha=0.3)
                ax.legend(fontsize='small')
            else:
                ax.set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def run_source(protocol=None, self_ensemble=False):
    """How a run made its figures, as said in ``results.md`` and kept in ``run.json``."""
    what = f'protocol `{protocol}`' if protocol else 'LR files'
    return what + (', x8 self-ensemble' if self_ensemble else '')


def read_source(folder):
    """The :func:`run_source` text kept in ``folder/run.json`` (None if absent)."""
    path = os.path.join(folder, 'run.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get('source')


def write_results(rows, out_dir, command=None, protocol=None, per_image=None, cell='psnr-ssim', max_columns=12,
                  self_ensemble=False, with_plot=True, source=None):
    """Write ``results.csv``, ``results.md``, ``run.json`` (command and source), ``psnr_vs_scale.png``
    and ``per_image.csv`` (if given).

    Returns:
        list[str]: The paths written.
    """
    os.makedirs(out_dir, exist_ok=True)
    source = source or run_source(protocol, self_ensemble)
    paths = [os.path.join(out_dir, 'results.csv'), os.path.join(out_dir, 'results.md')]
    write_bytes(paths[0], csv_text(rows, FIELDS))
    write_bytes(paths[1], markdown(rows, command, protocol, cell, max_columns, source=source))
    write_bytes(os.path.join(out_dir, 'run.json'), json.dumps(dict(command=command, source=source), indent=1))
    if per_image:
        paths.append(os.path.join(out_dir, 'per_image.csv'))
        write_bytes(paths[-1], csv_text(per_image, IMAGE_FIELDS))
    if with_plot and rows:
        paths.append(os.path.join(out_dir, 'psnr_vs_scale.png'))
        plot(rows, paths[-1])
    return paths
