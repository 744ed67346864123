"""``nodesr benchmark``: PSNR/SSIM tables over datasets, scales and models.

    nodesr benchmark --model bicubic [CKPT.pth | OPT.yml | NAME=SPEC ...] --data DIR [NAME=DIR ...]
                     --scales 2 3 4 | 1.1:4.0:0.1 --protocol metasr|modcrop --out OUTDIR
                     [--lr-dir TEMPLATE ...] [--self-ensemble] [--device cpu|cuda|auto]

Writes ``OUTDIR/results.csv`` (dataset, scale, model, psnr, ssim) and ``OUTDIR/results.md``.
LR inputs come from the HR images under the protocol (DESIGN.md section 3), or from LR files with
``--lr-dir`` (e.g. SelfExSR pairs, or ``nodesr prepare lr`` output). Models are plug-ins: anything with
``super_resolve(lr, scale, out_size, self_ensemble=...)``; ``bicubic`` is built in, every other entry is
loaded by ``nodesr_arch.api.load_model`` (checkpoint, option YAML or bundled model name).
"""
import argparse
import csv
import io
import math
import os
import shlex
import sys

import numpy as np
from tqdm import tqdm

from nodesr_arch.data.continuous_scale_dataset import ContinuousScalePairedDataset
from nodesr_arch.data.image_io import resolve_dataset
from nodesr_arch.data.scale_space import PROTOCOLS, enlarge, parse_scales
from nodesr_arch.metrics import psnr_ssim

FIELDS = ['dataset', 'scale', 'model', 'psnr', 'ssim']


class Bicubic:
    """The bicubic baseline as a model: MATLAB bicubic enlargement to the output size."""

    name = 'bicubic'

    def super_resolve(self, lr, scale, out_size=None, self_ensemble=False, **kwargs):
        """Enlarge ``lr`` (H, W, 3 float) by ``scale`` to ``out_size`` (default ``floor(h * s)``)."""
        if out_size is None:
            out_size = tuple(int(math.floor(n * scale + 1e-6)) for n in lr.shape[:2])
        return enlarge(lr, scale, out_size)


def load_models(specs, device='cpu'):
    """``[(name, model)]`` from ``--model`` entries: 'bicubic', or ``[NAME=]SPEC`` for ``api.load_model``."""
    models = []
    for spec in specs:
        name, sep, target = spec.partition('=')
        if not sep or os.path.exists(spec):
            name, target = '', spec
        if target == 'bicubic':
            model = Bicubic()
        else:
            from nodesr_arch.api import load_model  # lazy: bicubic runs without the network stack
            model = load_model(target, device=device)
        name = name or getattr(model, 'name', None) or os.path.splitext(os.path.basename(target))[0]
        while name in [n for n, _ in models]:
            name += "'"
        models.append((name, model))
    return models


def _lr_dirs(templates, datasets, scales):
    """Per (dataset index, scale): the LR folder, or None (made from HR). Checked before any work."""
    if not templates:
        return {}
    if len(templates) not in (1, len(datasets)):
        raise ValueError(f'give one --lr-dir, or one per --data ({len(datasets)}); got {len(templates)}')
    dirs = {}
    for i, (name, _, _) in enumerate(datasets):
        template = templates[0] if len(templates) == 1 else templates[i]
        for s in scales:
            folder = template.format(name=name, scale=s, s=f'{s:g}')
            if not os.path.isdir(folder):
                raise FileNotFoundError(f'LR folder not found: {folder} (from --lr-dir {template})')
            dirs[i, s] = folder
    return dirs


def evaluate(models, datasets, scales, protocol='metasr', lr_dirs=None, self_ensemble=False, sr_kwargs=None,
             per_image=None, progress=True):
    """Mean PSNR/SSIM of each model on each dataset and scale.

    Args:
        models (list[tuple[str, object]]): ``(name, model)`` with ``model.super_resolve``.
        datasets (list[tuple[str, str, str]]): ``(name, hr_dir, root)`` from ``resolve_dataset``.
        scales (list[float]): Scales.
        protocol (str): 'metasr' or 'modcrop' (ignored where LR files are read).
        lr_dirs (dict | None): ``{(dataset index, scale): LR folder}``.
        self_ensemble (bool): Pass ``self_ensemble=True`` to the models. Default: False.
        sr_kwargs (dict | None): More keyword arguments for ``super_resolve`` (e.g. tile).
        per_image (list | None): If a list, per-image rows are appended to it.
        progress (bool): Show a tqdm bar. Default: True.

    Returns:
        list[dict]: Rows with keys ``FIELDS``.
    """
    lr_dirs = lr_dirs or {}
    jobs = []
    for i, (name, hr_dir, _) in enumerate(datasets):
        for s in scales:
            opt = dict(phase='test', dataroot_gt=hr_dir, io_backend=dict(type='disk'), scale=s, protocol=protocol,
                       lq_size='lr')
            if (i, s) in lr_dirs:
                opt['dataroot_lq'] = lr_dirs[i, s]
            jobs.append((name, s, ContinuousScalePairedDataset(opt)))
    bar = tqdm(total=sum(len(ds) for _, _, ds in jobs) * len(models), disable=not progress, unit='img')
    rows = []
    for name, s, ds in jobs:
        scores = {m: [] for m, _ in models}
        bar.set_description(f'{name} x{s:g}')
        for k in range(len(ds)):
            sample = ds[k]
            lr = sample['lq'].numpy().transpose(1, 2, 0)
            gt = sample['gt'].numpy().transpose(1, 2, 0)
            for model_name, model in models:
                sr = model.super_resolve(lr, s, gt.shape[:2], self_ensemble=self_ensemble, **(sr_kwargs or {}))
                score = psnr_ssim(np.asarray(sr), gt, s, grey=sample['grey'])
                scores[model_name].append(score)
                if per_image is not None:
                    per_image.append(dict(dataset=name, scale=s, model=model_name, image=os.path.basename(
                        sample['gt_path']), psnr=score[0], ssim=score[1]))
                bar.update(1)
        for model_name, _ in models:
            psnr, ssim = np.mean(scores[model_name], axis=0)
            rows.append(dict(dataset=name, scale=s, model=model_name, psnr=float(psnr), ssim=float(ssim)))
    bar.close()
    return rows


def markdown(rows, command=None, protocol=None):
    """One table per dataset: a row per scale, a ``PSNR / SSIM`` column per model."""
    lines = ['# Benchmark', '']
    if command:
        lines += [f'Command: `{command}`', '']
    what = f'protocol `{protocol}`; ' if protocol else ''
    lines += [f'PSNR (dB) / SSIM, {what}Y channel (grey images: their one channel), border ceil(scale).', '']
    for dataset in dict.fromkeys(r['dataset'] for r in rows):
        sub = [r for r in rows if r['dataset'] == dataset]
        models = list(dict.fromkeys(r['model'] for r in sub))
        lines += [f'## {dataset}', '', '| scale | ' + ' | '.join(models) + ' |', '|---' * (len(models) + 1) + '|']
        for s in dict.fromkeys(r['scale'] for r in sub):
            cells = {r['model']: f"{r['psnr']:.2f} / {r['ssim']:.4f}" for r in sub if r['scale'] == s}
            lines.append(f'| x{s:g} | ' + ' | '.join(cells.get(m, '') for m in models) + ' |')
        lines.append('')
    return '\n'.join(lines)


def _write_atomic(path, text):
    tmp = f'{path}.partial-{os.getpid()}'
    with open(tmp, 'w', newline='') as f:
        f.write(text)
    os.replace(tmp, path)


def _csv_text(rows, fields):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator='\n')
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f'{v:.4f}' if k == 'psnr' else f'{v:.5f}' if k == 'ssim' else
                             f'{v:g}' if k == 'scale' else v) for k, v in r.items()})
    return buf.getvalue()


def write_results(rows, out_dir, command=None, protocol=None, per_image=None):
    """Write ``results.csv`` and ``results.md`` (and ``per_image.csv`` if given); return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, 'results.csv'), os.path.join(out_dir, 'results.md')]
    _write_atomic(paths[0], _csv_text(rows, FIELDS))
    _write_atomic(paths[1], markdown(rows, command, protocol))
    if per_image:
        paths.append(os.path.join(out_dir, 'per_image.csv'))
        _write_atomic(paths[2], _csv_text(per_image, ['dataset', 'scale', 'model', 'image', 'psnr', 'ssim']))
    return paths


def build_parser():
    parser = argparse.ArgumentParser(prog='nodesr benchmark', description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', nargs='+', default=['bicubic'],
                        help="'bicubic', checkpoints, option YAMLs or bundled names; NAME=SPEC to name one")
    parser.add_argument('--data', nargs='+', required=True,
                        help='dataset folders: DIR with HR/ inside, an HR folder, a folder of images, or NAME=DIR')
    parser.add_argument('--scales', nargs='+', required=True, help='numbers and/or lo:hi:step ranges')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS), default='metasr')
    parser.add_argument('--lr-dir', nargs='+',
                        help='read LR files instead of making them: one folder template for all datasets or one '
                        'per --data; {name}, {s} (2, 2.5) and {scale} (float, e.g. X{scale:.2f}) are filled in')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--self-ensemble', action='store_true', help='x8 flip/transpose average')
    parser.add_argument('--tile', type=int, help='tile size for network evaluations (bounded memory)')
    parser.add_argument('--tile-pad', type=int, help='tile overlap (default: the receptive radius)')
    parser.add_argument('--device', default='cpu', help="cpu, cuda or auto (default: cpu)")
    parser.add_argument('--per-image', action='store_true', help='also write per_image.csv')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        scales = parse_scales(args.scales)
        datasets = [resolve_dataset(d) for d in args.data]
        lr_dirs = _lr_dirs(args.lr_dir, datasets, scales)
        models = load_models(args.model, args.device)
    except (ValueError, FileNotFoundError) as e:
        print(f'nodesr benchmark: error: {e}', file=sys.stderr)
        return 1
    sr_kwargs = {k: v for k, v in (('tile', args.tile), ('tile_pad', args.tile_pad)) if v is not None}
    per_image = [] if args.per_image else None
    rows = evaluate(models, datasets, scales, args.protocol, lr_dirs, args.self_ensemble, sr_kwargs, per_image,
                    progress=not args.quiet)
    command = 'nodesr benchmark ' + ' '.join(shlex.quote(a) for a in argv)
    paths = write_results(rows, args.out, command, None if lr_dirs else args.protocol, per_image)
    print(markdown(rows, protocol=None if lr_dirs else args.protocol))
    print('wrote ' + ', '.join(paths))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
