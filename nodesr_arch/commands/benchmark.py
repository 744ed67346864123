"""``nodesr benchmark``: PSNR/SSIM tables over datasets, scales and models.

    nodesr benchmark --model bicubic [CKPT.pth | OPT.yml | NAME=SPEC ...] --data DIR [NAME=DIR ...]
                     --scales 2 3 4 | 1.1:4.0:0.1 --protocol metasr|modcrop --out OUTDIR
                     [--lr-dir TEMPLATE ...] [--self-ensemble] [--device cpu|cuda|auto] [--amp bf16|fp16]
                     [--solver trained rk4:1 rk4:2 dopri5:1e-3:1e-4 ...] [--jobs N] [--threads N] [--resume]
                     [--cell psnr|psnr-ssim] [--max-columns N] [--no-plot]
    nodesr benchmark --merge DIR [DIR ...] --out OUTDIR

Writes ``OUTDIR/results.csv`` (dataset, scale, model, psnr, ssim), ``OUTDIR/results.md`` (one table per
dataset in the paper's layout: scales as columns, methods as rows, best PSNR in bold; plus the gain over
bicubic) and ``OUTDIR/psnr_vs_scale.png``. LR inputs come from the HR images under the protocol
(docs/design.md section 3.3), or from LR files with ``--lr-dir`` (e.g. SelfExSR pairs, or ``nodesr prepare lr``
output). Models are plug-ins: anything with ``super_resolve(lr, scale, out_size, self_ensemble=...)``;
``bicubic`` is built in, every other entry is loaded by ``nodesr_arch.api.load_model`` (checkpoint, option
YAML or bundled model name). ``--solver`` evaluates each NODE model once per solver setting (rows
``NAME [rk4, 2 steps]``; see :mod:`nodesr_arch.commands.solver_settings`), one-shot models once. A fixed-scale
model (BasicSR's EDSR x2) at another scale runs at its own scale and its output is resized with bicubic:
its rows there are named ``EDSR x2 + bicubic`` in the CSV files, tables and plot, and the terminal warns.

Speed: each HR image is read once per dataset, each LR and its bicubic enlargement ``I(s)`` are made once
per (image, scale) and shared by all models, networks run under ``torch.inference_mode``. ``--jobs N``
splits the scales over N processes (balanced by the number of ODE steps they need), each with
``--threads`` / N torch threads, and merges their results; ``--merge`` combines runs made by hand
(e.g. ``--scales`` subsets on several machines). ``results.csv`` is rewritten after every (dataset,
scale), and ``--resume`` skips what it already holds.
"""
import argparse
import os
import shlex
import subprocess
import sys
import warnings

import numpy as np
import torch
from tqdm import tqdm

from nodesr_arch.archs.contract import contract
from nodesr_arch.commands import solver_settings
from nodesr_arch.commands.benchmark_report import (FIELDS, IMAGE_FIELDS, markdown, merge_rows, read_csv,  # noqa: F401
                                                   read_source, scale_key, unique, write_results)
from nodesr_arch.data.continuous_scale_dataset import ContinuousScalePairedDataset
from nodesr_arch.data.scale_space import PROTOCOLS, enlarge, make_pair, parse_scales
from nodesr_arch.file_io import list_images, read_image, resolve_dataset
from nodesr_arch.inference import FixedScaleWarning, fixed_scale_label, fixed_scale_message
from nodesr_arch.metrics import image_metrics
from nodesr_arch.runtime import RUNTIMES
from nodesr_arch.scales import num_steps, output_size


class Bicubic:
    """The bicubic baseline as a model: MATLAB bicubic enlargement to the output size."""

    name = 'bicubic'
    input_size = 'output'  # given I(s) already at the output size, it has nothing left to do

    def super_resolve(self, lr, scale, out_size=None, self_ensemble=False, **kwargs):
        """Enlarge ``lr`` (H, W, 3 float) by ``scale`` to ``out_size`` (default ``floor(h * s)``)."""
        if out_size is None:
            out_size = output_size(lr.shape[:2], scale)
        if tuple(lr.shape[:2]) == tuple(out_size):
            return lr
        return enlarge(lr, scale, out_size)


def takes_output_size(model):
    """True if ``model`` wants ``I(s)`` (the bicubic enlargement at output size) rather than the LR."""
    if isinstance(model, Bicubic):
        return True
    net = getattr(model, 'net', None)  # any object with super_resolve is a model; its network, if it has one
    return net is not None and contract(net).input_size == 'output'


def load_models(specs, device='cpu', amp=None, runtime=None):
    """``[(name, model)]`` from ``--model`` entries: 'bicubic', or ``[NAME=]SPEC`` for ``api.load_model``
    (on ``device``, with mixed precision ``amp``: 'bf16', 'fp16' or None, and ``runtime``: see
    :mod:`nodesr_arch.runtime`)."""
    models = []
    for spec in specs:
        name, sep, target = spec.partition('=')
        if not sep or os.path.exists(spec):
            name, target = '', spec
        if target == 'bicubic':
            model = Bicubic()
        else:
            from nodesr_arch.api import load_model  # lazy: bicubic runs without the network stack
            model = load_model(target, device=device, amp=amp, **({} if runtime is None else {'runtime': runtime}))
        name = name or getattr(model, 'name', None) or os.path.splitext(os.path.basename(target))[0]
        while name in [n for n, _ in models]:
            name += "'"
        models.append((name, model))
    return models


def row_name(name, model, scale):
    """The results row of ``model`` at ``scale``: ``name``, or ``'NAME xF + bicubic'`` for a fixed-scale
    xF model (``model.fixed_scale``, see :class:`nodesr_arch.api.Upscaler`) at another scale."""
    return fixed_scale_label(name, getattr(model, 'fixed_scale', None), scale)


def fixed_scale_warnings(models, scales):
    """One line per fixed-scale model that runs at scales other than its own (empty when none)."""
    lines = []
    for name, model in models:
        others = [s for s in scales if row_name(name, model, s) != name]
        if others:
            lines.append(fixed_scale_message(name, model.fixed_scale, others))
    return lines


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


def _pairs(hr_images, hr_dir, scale, protocol, lr_dir):
    """Yield ``(gt_path, lr, gt, out_size, grey)`` for one dataset at one scale.

    From the cached HR images under ``protocol``, or from the LR files of ``lr_dir`` (read with the
    dataset, which reconciles LR and HR sizes).
    """
    if lr_dir is None:
        for path, img, grey, levels in hr_images:
            lr, gt, out = make_pair(img, scale, protocol, True, levels)
            yield path, lr, gt, out, grey
        return
    ds = ContinuousScalePairedDataset(dict(phase='test', dataroot_gt=hr_dir, io_backend=dict(type='disk'),
                                           scale=scale, dataroot_lq=lr_dir, lq_size='lr'))
    for k in range(len(ds)):
        sample = ds[k]
        gt = sample['gt'].numpy().transpose(1, 2, 0)
        yield sample['gt_path'], sample['lq'].numpy().transpose(1, 2, 0), gt, gt.shape[:2], sample['grey']


def _hr_images(hr):
    """A dataset's HR images as ``(path or name, img, grey, levels)``: read from a folder, or as given."""
    if isinstance(hr, str):
        return [(p, *read_image(p, as_float=True)) for p in list_images(hr)]
    return list(hr)


def evaluate(models, datasets, scales, protocol='metasr', lr_dirs=None, self_ensemble=False, sr_kwargs=None,
             per_image=None, progress=True, skip=None, on_result=None, position=0, on_image=None):
    """Mean PSNR/SSIM of each model on each dataset and scale.

    Args:
        models (list[tuple[str, object]]): ``(name, model)`` with ``model.super_resolve``.
        datasets (list[tuple]): ``(name, hr, root)``: ``resolve_dataset``'s ``(name, hr_dir, root)``, or
            ``hr`` a list of already-decoded images ``(name, img, grey, levels)`` as :func:`read_image`
            gives them (``nodesr demo``'s pictures; not with ``lr_dirs``).
        scales (list[float]): Scales.
        protocol (str): 'metasr' or 'modcrop' (ignored where LR files are read).
        lr_dirs (dict | None): ``{(dataset index, scale): LR folder}``.
        self_ensemble (bool): Pass ``self_ensemble=True`` to the models. Default: False.
        sr_kwargs (dict | None): More keyword arguments for ``super_resolve`` (e.g. tile).
        per_image (list | None): If a list, per-image rows are appended to it.
        progress (bool): Show a tqdm bar. Default: True.
        skip (set | None): ``(dataset name, scale_key(scale))`` groups to leave out (already done).
        on_result (callable | None): Called with the new rows after each (dataset, scale).
        position (int): tqdm bar position (parallel jobs).
        on_image (callable | None): Called as ``on_image(row, sr, grey)`` for each SR image: its per-image
            row (keys ``IMAGE_FIELDS``), the image (H, W, 3 float, unclipped) and whether it is grey.

    Returns:
        list[dict]: Rows with keys ``FIELDS``. A fixed-scale model's rows at other scales are named by
        :func:`row_name` (``'EDSR x2 + bicubic'``), in place of its :class:`FixedScaleWarning`.
    """
    lr_dirs, sr_kwargs, skip = lr_dirs or {}, sr_kwargs or {}, set(skip or ())
    todo = {i: [s for s in scales if (name, scale_key(s)) not in skip] for i, (name, _, _) in enumerate(datasets)}
    for i, (name, hr, _) in enumerate(datasets):
        if not isinstance(hr, str) and any((i, s) in lr_dirs for s in todo[i]):
            raise ValueError(f'dataset {name}: LR folders need an HR folder, not decoded images')
    counts = {i: len(list_images(hr) if isinstance(hr, str) else hr) for i, (_, hr, _) in enumerate(datasets)}
    bar = tqdm(total=sum(counts[i] * len(todo[i]) for i in todo) * len(models), disable=not progress, unit='img',
               position=position, dynamic_ncols=True)
    wants_up = [takes_output_size(m) for _, m in models]
    rows = []
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter('ignore', FixedScaleWarning)
        for i, (name, hr_dir, _) in enumerate(datasets):
            hr_images = None
            if any((i, s) not in lr_dirs for s in todo[i]):  # read each HR image once per dataset
                hr_images = _hr_images(hr_dir)
            for s in todo[i]:
                bar.set_description(f'{name} x{s:g}')
                names = [row_name(n, m, s) for n, m in models]
                scores = {n: [] for n in names}
                for path, lr, gt, out, grey in _pairs(hr_images, hr_dir, s, protocol, lr_dirs.get((i, s))):
                    up = enlarge(lr, s, out) if any(wants_up) else None
                    for model_name, (_, model), want in zip(names, models, wants_up):
                        sr = model.super_resolve(up if want else lr, s, out, self_ensemble=self_ensemble,
                                                 **sr_kwargs)
                        score = tuple(image_metrics(np.asarray(sr), gt, s, grey=grey).values())
                        scores[model_name].append(score)
                        row = dict(dataset=name, scale=s, model=model_name, image=os.path.basename(path),
                                   psnr=score[0], ssim=score[1])
                        if per_image is not None:
                            per_image.append(row)
                        if on_image is not None:
                            on_image(row, np.asarray(sr), grey)
                        bar.update(1)
                new = []
                for model_name in names:
                    psnr, ssim = np.mean(scores[model_name], axis=0)
                    new.append(dict(dataset=name, scale=s, model=model_name, psnr=float(psnr), ssim=float(ssim)))
                rows += new
                if on_result is not None:
                    on_result(new)
            hr_images = None
    bar.close()
    return rows


def split_scales(scales, jobs):
    """Split ``scales`` into ``jobs`` lists of about equal work (longest first onto the least loaded).

    The work of a scale is taken as ``1 + ceil(s - 1)``: one-shot models cost one evaluation, NODE
    models one rk4 step per unit of scale (``step_size: 1.0``).
    """
    def work(s):
        return 1 + (num_steps(s - 1, 1.0) if s > 1 else 0)

    loads, parts = [0.0] * jobs, [[] for _ in range(jobs)]
    for s in sorted(scales, key=lambda s: -work(s)):
        k = loads.index(min(loads))
        parts[k].append(s)
        loads[k] += work(s)
    order = {scale_key(s): n for n, s in enumerate(scales)}
    return [sorted(p, key=lambda s: order[scale_key(s)]) for p in parts if p]


def _job_argv(args, scales, out, threads, position):
    """Command-line arguments of one ``--jobs`` worker."""
    argv = ['--model', *args.model, '--data', *args.data, '--scales', *[repr(float(s)) for s in scales],
            '--protocol', args.protocol, '--out', out, '--device', args.device, '--threads', str(threads),
            '--position', str(position), '--no-plot', '--worker']
    if args.lr_dir:
        argv += ['--lr-dir', *args.lr_dir]
    if args.solver:
        argv += ['--solver', *args.solver]
    for flag, value in (('--tile', args.tile), ('--tile-pad', args.tile_pad), ('--amp', args.amp),
                        ('--runtime', args.runtime)):
        if value is not None:
            argv += [flag, str(value)]
    for flag, on in (('--self-ensemble', args.self_ensemble), ('--per-image', args.per_image),
                     ('--quiet', args.quiet), ('--resume', args.resume)):
        if on:
            argv.append(flag)
    return argv


def _run_jobs(args, scales):
    """Run ``args.jobs`` worker processes over subsets of ``scales``; return their output folders."""
    total = args.threads or torch.get_num_threads()
    threads = max(1, total // args.jobs)
    procs, dirs = [], []
    for k, part in enumerate(split_scales(scales, args.jobs)):
        out = os.path.join(args.out, 'jobs', f'job{k}')
        cmd = [sys.executable, '-m', 'nodesr_arch.commands.benchmark'] + _job_argv(args, part, out, threads, k)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        dirs.append(out)
    codes = [p.wait() for p in procs]
    failed = [d for d, c in zip(dirs, codes) if c != 0]
    if failed:
        raise RuntimeError(f'benchmark job(s) failed: {", ".join(failed)} (rerun with --resume to continue)')
    return dirs


def _read_run(folder):
    """Rows and per-image rows of a finished benchmark folder."""
    path = os.path.join(folder, 'results.csv')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no results.csv in {folder}')
    per = os.path.join(folder, 'per_image.csv')
    return read_csv(path), (read_csv(per) if os.path.isfile(per) else [])


def build_parser():
    parser = argparse.ArgumentParser(prog='nodesr benchmark', description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', nargs='+', default=['bicubic'],
                        help="'bicubic', checkpoints, option YAMLs or bundled names; NAME=SPEC to name one")
    parser.add_argument('--data', nargs='+',
                        help='dataset folders: DIR with HR/ inside, an HR folder, a folder of images, or NAME=DIR')
    parser.add_argument('--scales', nargs='+', help='numbers and/or lo:hi:step ranges')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS), default='metasr')
    parser.add_argument('--lr-dir', nargs='+',
                        help='read LR files instead of making them: one folder template for all datasets or one '
                        'per --data; {name}, {s} (2, 2.5) and {scale} (float, e.g. X{scale:.2f}) are filled in')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--self-ensemble', action='store_true', help='x8 flip/transpose average')
    parser.add_argument('--solver', nargs='+', metavar='SETTING',
                        help="evaluate NODE models at these solver settings: 'trained', METHOD:STEPS (rk4:2, "
                        "euler:8), METHOD:hSTEP_SIZE (rk4:h1) or METHOD:RTOL:ATOL (dopri5:1e-3:1e-4); "
                        'one row per model and setting')
    parser.add_argument('--tile', type=int, help='tile size for network evaluations (bounded memory)')
    parser.add_argument('--tile-pad', type=int, help='tile overlap (default: the receptive radius)')
    parser.add_argument('--device', default='cpu', help="cpu, cuda or auto (default: cpu)")
    parser.add_argument('--amp', choices=['bf16', 'fp16'], help='mixed precision for the networks (default: fp32)')
    parser.add_argument('--runtime', choices=RUNTIMES, default=None,
                        help='where the networks run on the CPU: torch, onnxruntime (the [onnx] extra) or auto '
                             '(default: $NODESR_RUNTIME, else auto)')
    parser.add_argument('--per-image', action='store_true', help='also write per_image.csv')
    parser.add_argument('--cell', choices=['psnr', 'psnr-ssim'], default='psnr-ssim',
                        help='table cells: PSNR, or PSNR / SSIM (default)')
    parser.add_argument('--max-columns', type=int, default=12, help='most scale columns per table (default 12)')
    parser.add_argument('--no-plot', action='store_true', help='do not write psnr_vs_scale.png')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s; with --jobs: split)')
    parser.add_argument('--jobs', type=int, default=1, help='worker processes, each on a share of the scales')
    parser.add_argument('--resume', action='store_true', help='keep the results already in OUTDIR/results.csv and '
                        'compute only the missing (dataset, scale) groups')
    parser.add_argument('--merge', nargs='+', metavar='DIR',
                        help='combine the results of earlier runs (their folders) into --out, computing nothing')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.add_argument('--position', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)  # a --jobs worker: its parent warns
    return parser


def _merge(folders):
    """Rows, per-image rows and the source text of several finished runs combined."""
    runs = [_read_run(d) for d in folders]
    rows = merge_rows([r for r, _ in runs])
    per_image = merge_rows([p for _, p in runs], ('dataset', 'scale', 'model', 'image'))
    sources = unique(filter(None, (read_source(d) for d in folders)))
    return rows, per_image, ('; '.join(sources) if sources else 'merged runs, source not recorded')


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    command = 'nodesr benchmark ' + ' '.join(shlex.quote(a) for a in argv)
    if args.merge:
        try:
            rows, per_image, source = _merge(args.merge)
        except (ValueError, FileNotFoundError) as e:  # refused before anything is written: 2, as nodesr infer
            print(f'nodesr benchmark: error: {e}', file=sys.stderr)
            return 2
        paths = write_results(rows, args.out, command, None, per_image, args.cell, args.max_columns,
                              with_plot=not args.no_plot, source=source)
        print(markdown(rows, cell=args.cell, max_columns=args.max_columns, source=source))
        print('wrote ' + ', '.join(paths))
        return 0
    for opt in ('data', 'scales'):
        if not getattr(args, opt):
            parser.error(f'--{opt} is required (unless --merge)')
    for opt in ('jobs', 'threads', 'max_columns'):
        value = getattr(args, opt)
        if value is not None and value < 1:
            parser.error(f'--{opt.replace("_", "-")} must be >= 1, got {value}')
    try:
        scales = parse_scales(args.scales)
        datasets = [resolve_dataset(d) for d in args.data]
        for _, hr_dir, _ in datasets:
            if not list_images(hr_dir):
                raise ValueError(f'no images found in {hr_dir}')
        lr_dirs = _lr_dirs(args.lr_dir, datasets, scales)
        if args.threads:  # before loading: the runtime is chosen for the threads it will run on
            torch.set_num_threads(args.threads)
        loaded = load_models(args.model, args.device, args.amp, args.runtime)
        models = solver_settings.expand(loaded, args.solver)
        done, done_images = _read_run(args.out) if args.resume and os.path.isfile(
            os.path.join(args.out, 'results.csv')) else ([], [])
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f'nodesr benchmark: error: {e}', file=sys.stderr)
        return 2
    if not args.worker:
        for name, model in loaded:
            if getattr(model, 'runtime_reason', '').startswith('auto') and not args.quiet:  # what auto chose
                print(f'nodesr benchmark: {name}: runtime {model.runtime} ({model.runtime_reason})', file=sys.stderr)
        for line in fixed_scale_warnings(models, scales):
            print(f'nodesr benchmark: warning: {line}', file=sys.stderr)
    protocol = None if lr_dirs else args.protocol
    show = dict(cell=args.cell, max_columns=args.max_columns, self_ensemble=args.self_ensemble)
    if args.jobs > 1:
        try:
            dirs = _run_jobs(args, scales)
        except RuntimeError as e:
            print(f'nodesr benchmark: error: {e}', file=sys.stderr)
            return 1
        rows, per_image, _ = _merge(dirs)
    else:
        have = {(r['dataset'], scale_key(r['scale']), r['model']) for r in done}
        skip = {(d, s) for d, s, _ in have if all((d, s, row_name(n, m, s)) in have for n, m in models)}
        done = [r for r in done if (r['dataset'], scale_key(r['scale'])) in skip
                or r['model'] not in [row_name(n, m, r['scale']) for n, m in models]]
        done_images = [r for r in done_images if (r['dataset'], scale_key(r['scale'])) in skip]
        rows, per_image = list(done), (list(done_images) if args.per_image else None)

        def save(new):
            rows.extend(new)
            write_results(rows, args.out, command, protocol, per_image, with_plot=False, **show)

        sr_kwargs = {k: v for k, v in (('tile', args.tile), ('tile_pad', args.tile_pad)) if v is not None}
        evaluate(models, datasets, scales, args.protocol, lr_dirs, args.self_ensemble, sr_kwargs, per_image,
                 progress=not args.quiet, skip=skip, on_result=save, position=args.position)
        if done:
            rows = merge_rows([rows])
    paths = write_results(rows, args.out, command, protocol, per_image, with_plot=not args.no_plot, **show)
    print(markdown(rows, protocol=protocol, **show))
    print('wrote ' + ', '.join(paths))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
