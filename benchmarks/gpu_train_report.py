"""``gpu_train.json``, the report of scripts/gpu_train.sh, from the files its parts left (no torch import: cheap).

    python -m benchmarks.gpu_train_report --out DIR --names NODEVDSR_T291_gpu VDSRt_T291_gpu [--dry-run]

Fields: ``speed`` (``speed.json`` of ``benchmarks.gpu_train speed`` as written), ``trainings`` (per model, the
``NAME.json`` of ``benchmarks.gpu_train train``, with ``random_batch_it_per_s``: the eager speed case of the same
model, and ``real_over_random``), ``compile_vs_eager`` (per model and path: ``speedup``, ``loss_diff``,
``max_grad_diff`` of the first step beside ``max_grad``, ``max_weight_diff`` after two Adam steps beside
``max_weight_change``: how far those steps moved the weights),
``bundled`` (``bundled.json``: the bundled models evaluated by the same code), ``psnr`` (per model, trained and
bundled, and set), ``nodevdsr_beats_bundled_everywhere`` (the trained NODE-VDSR's PSNR above NODEVDSR_S's on
every set and scale; None when either is missing), ``parts`` (each earlier part's exit status and seconds) and
``missing`` (parts that left no file).
"""
import argparse
import json
import os
import sys

from nodesr_arch.file_io import atomic_write


def write_json(path, obj):
    """``obj`` as JSON at ``path``, atomically (a killed run leaves the previous file or none, never half of one)."""
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=1)
    atomic_write(path, write)


def _read(path):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def build_report(out, names, dry_run=False):
    """The report of the run whose files are in ``out``; ``names``: the trainings' option names."""
    speed = _read(os.path.join(out, 'speed.json'))
    report = {'kind': 'gpu_train', 'dry_run': dry_run, 'speed': speed, 'trainings': {}, 'compile_vs_eager': {},
              'missing': [] if speed else ['speed']}
    rows = (speed or {}).get('cases', [])
    eager = {r['model']: r for r in rows if r.get('path') == 'eager' and r.get('status') == 'ok'}
    for name in names:
        rec = _read(os.path.join(out, f'{name}.json'))
        if rec is None:
            report['missing'].append(name)
            continue
        rate = eager.get(rec['model'], {}).get('it_per_s')
        rec['random_batch_it_per_s'] = rate
        rec['real_over_random'] = round(rec['it_per_s'] / rate, 3) if rate else None
        report['trainings'][rec['model']] = rec
    for row in rows:
        ref = eager.get(row['model'])
        if row.get('path') != 'eager' and row.get('status') == 'ok' and ref:
            report['compile_vs_eager'][f"{row['model']} {row['path']}"] = {
                'speedup': round(row['it_per_s'] / ref['it_per_s'], 3), 'loss_diff': row.get('loss_diff'),
                'max_grad_diff': row.get('max_grad_diff'), 'max_grad': row.get('max_grad'),
                'max_weight_diff': row.get('max_weight_diff'), 'max_weight_change': row.get('max_weight_change'),
                'peak_alloc_gib': row.get('peak_alloc_gib'), 'eager_peak_alloc_gib': ref.get('peak_alloc_gib')}
    bundled = _read(os.path.join(out, 'bundled.json'))
    report['bundled'] = bundled
    if bundled is None:
        report['missing'].append('bundled')
    report['psnr'] = psnr_table(report['trainings'], (bundled or {}).get('models', {}))
    new, old = report['psnr'].get('NODE-VDSR'), report['psnr'].get('NODEVDSR_S')
    report['nodevdsr_beats_bundled_everywhere'] = (
        all(k in old and v > old[k] for k, v in new.items()) if new and old else None)
    parts = os.path.join(out, 'parts.tsv')
    if os.path.isfile(parts):
        with open(parts) as f:
            report['parts'] = [dict(zip(('part', 'exit', 'seconds', 'limit_s'), line.rstrip('\n').split('\t')))
                               for line in f if line.strip()]
    return report


def psnr_table(trainings, bundled):
    """PSNR per model and set (``Set5_x2``...): the trained models and the bundled ones of the same run."""
    table = {}
    for model, rec in list(trainings.items()) + list(bundled.items()):
        table[model] = {k: v['psnr'] for k, v in rec.get('eval', {}).items() if 'psnr' in v}
    return table


def summary(report):
    """A few lines for the log: each training's it/s, data wait and PSNRs; each compiled path against eager."""
    lines = []
    for model, rec in report['trainings'].items():
        psnr = ', '.join(f"{k} {v.get('psnr')}" for k, v in rec['eval'].items())
        lines.append(f"{model}: {rec['iters']} it in {rec['train_s']} s, {rec['it_per_s']} it/s with real data, "
                     f"{rec['random_batch_it_per_s']} with random batches, data wait {rec['data_wait_fraction']:.1%}; "
                     f'PSNR {psnr}')
    lines += [f'{key}: {c}' for key, c in report['compile_vs_eager'].items()]
    for model, row in report['psnr'].items():
        if model not in report['trainings']:
            lines.append(f"{model} (bundled): PSNR {', '.join(f'{k} {v}' for k, v in row.items())}")
    if report['nodevdsr_beats_bundled_everywhere'] is not None:
        lines.append(f"NODE-VDSR above NODEVDSR_S on every set: {report['nodevdsr_beats_bundled_everywhere']}")
    if report['missing']:
        lines.append(f"missing: {report['missing']}")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='the run folder')
    parser.add_argument('--names', nargs='+', required=True, help='the trainings (option names)')
    parser.add_argument('--dry-run', action='store_true', help='mark the report as a dry run')
    args = parser.parse_args(argv)
    report = build_report(args.out, args.names, args.dry_run)
    write_json(os.path.join(args.out, 'gpu_train.json'), report)
    print(summary(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
