"""Helpers of ``scripts/gpu_check.sh``: the tiny training it runs, the environment it records, its report.

    python -m benchmarks.gpu_check env --out ENV.json
    python -m benchmarks.gpu_check tiny-train DIR --name NAME --num-gpu N [--prefetch cuda]
    python -m benchmarks.gpu_check check-train DIR --name NAME
    python -m benchmarks.gpu_check report --work WORK --out OUTDIR [--mode gpu|dry-run]

``report`` reads what the script's parts left in WORK (``parts.tsv``: one line per part with its exit
status and seconds; each part's log; pytest's JUnit XML files; ``env.json``; the JSON of
``benchmarks/gpu_speed.py``) and writes ``gpu_check.md`` and ``gpu_check.json`` to OUTDIR. It imports
neither torch nor BasicSR, so the script can rewrite the report after every part cheaply.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATUS = {0: 'ok', 124: 'timeout', 137: 'timeout (killed)', 99: 'failed (simulated)'}
TITLES = {
    'env': 'environment: GPU, driver, torch, BasicSR',
    'device_tests': '(a) tests/test_device.py on the device (NODESR_TEST_DEVICE)',
    'train_1gpu': '(b) nodesr train, tiny YAML, one process',
    'train_torchrun': '(b) nodesr train under torchrun --nproc_per_node 1 --launcher pytorch',
    'train_speed': '(c) paper-size training speed and memory (benchmarks/gpu_speed.py train)',
    'infer_speed': '(d) inference speed and memory (benchmarks/gpu_speed.py infer)',
    'suite': '(a) the rest of the quick test files (CPU tensors, on this machine\'s Python and torch)',
}


# ---- env -------------------------------------------------------------------------------------------------


def write_env(path):
    """Record the machine: GPU (nvidia-smi and torch), Python, torch, CUDA, cudnn, BasicSR, torchdiffeq."""
    env = {'time_utc': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()), 'python': sys.version.split()[0],
           'executable': sys.executable}
    try:
        env['nvidia_smi'] = subprocess.run(
            ['nvidia-smi', '--query-gpu=name,memory.total,driver_version,clocks.max.sm', '--format=csv,noheader'],
            capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        env['nvidia_smi'] = f'unavailable ({type(e).__name__})'
    import torch
    env.update(torch=torch.__version__, cuda_available=torch.cuda.is_available(), cuda=torch.version.cuda,
               cpu_count=os.cpu_count())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                   gpu_memory_gib=round(props.total_memory / 1024**3, 1), capability=f'{props.major}.{props.minor}',
                   cudnn=torch.backends.cudnn.version(), nccl='.'.join(map(str, torch.cuda.nccl.version())))
    import torchdiffeq

    import basicsr  # noqa: I001
    import nodesr_arch  # first: its compatibility fixes make BasicSR importable on today's torchvision
    env.update(basicsr=basicsr.__version__, torchdiffeq=torchdiffeq.__version__, nodesr_arch=nodesr_arch.__version__,
               nodesr_arch_path=os.path.dirname(nodesr_arch.__file__))
    with open(path, 'w') as f:
        json.dump(env, f, indent=1)
    print(json.dumps(env, indent=1))


# ---- tiny training ---------------------------------------------------------------------------------------


def write_tiny_train(root, name, num_gpu, prefetch=None, total_iter=4):
    """Write a few images and the option YAML of a tiny NODE-VDSR training under ``root``.

    Args:
        root (str): Folder to run ``nodesr train`` in (its ``experiments/`` and ``tb_logger/`` go there).
        name (str): Experiment name; the YAML is ``root/NAME.yml``.
        num_gpu (int): BasicSR's ``num_gpu`` (0: CPU).
        prefetch (str | None): ``'cuda'``: BasicSR's CUDAPrefetcher with pinned memory.
        total_iter (int): Training iterations (validation and checkpoints every 2).

    Returns:
        str: The YAML path.
    """
    import cv2
    import yaml
    from skimage import data

    pictures = [data.astronaut(), data.coffee(), data.chelsea()]
    for folder, sizes in (('hr', [(40, 40), (44, 40), (40, 48), (42, 42)]), ('val', [(24, 28), (27, 25)])):
        os.makedirs(os.path.join(root, 'data', folder), exist_ok=True)
        for i, (h, w) in enumerate(sizes):
            img = cv2.resize(pictures[i % 3], (w, h), interpolation=cv2.INTER_AREA)[..., ::-1]
            cv2.imwrite(os.path.join(root, 'data', folder, f'{folder}{i}.png'), img)
    val = {'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'data/val', 'io_backend': {'type': 'disk'},
           'protocol': 'metasr'}
    train = {'name': 'toy', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'data/hr',
             'io_backend': {'type': 'disk'}, 'scale_range': [1.1, 4.0], 'scale_step': 0.1, 'gt_size': 16,
             'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
             'dataset_enlarge_ratio': 1, 'prefetch_mode': prefetch}
    if prefetch == 'cuda':
        train['pin_memory'] = True
    opt = {
        'name': name, 'model_type': 'NODESRModel', 'num_gpu': num_gpu, 'manual_seed': 0,
        'datasets': {'train': train, 'val_1': dict(val, name='val_x2', scale=2.0),
                     'val_2': dict(val, name='val_x3.5', scale=3.5)},
        'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 3, 'ode': {'method': 'rk4', 'step_size': 1.0}},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0.5, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': 2, 'save_img': False, 'trajectory': {'num': 3},
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }
    path = os.path.join(root, f'{name}.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    print(path)
    return path


def check_train(root, name):
    """Exit status 0 if the tiny training saved its final model and training state, else 1."""
    exp = os.path.join(root, 'experiments', name)
    wanted = [os.path.join(exp, 'models', 'net_g_latest.pth'), os.path.join(exp, 'training_states', '4.state')]
    missing = [p for p in wanted if not os.path.isfile(p)]
    for p in missing:
        print(f'missing: {p}')
    if not missing:
        print(f'saved: {", ".join(os.path.relpath(p, root) for p in wanted)}')
    return 1 if missing else 0


# ---- report ----------------------------------------------------------------------------------------------


def read_parts(work):
    """The parts run so far, from ``parts.tsv`` (name, exit status, seconds, time limit)."""
    parts = []
    path = os.path.join(work, 'parts.tsv')
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                fields = line.rstrip('\n').split('\t')
                if len(fields) < 4:
                    continue
                name, rc, seconds, limit = fields[:4]
                rc = int(rc)
                status = STATUS.get(rc, f'failed (exit {rc})') if rc >= 0 else 'skipped'
                parts.append({'part': name, 'title': TITLES.get(name, name), 'status': status, 'rc': rc,
                              'seconds': float(seconds), 'limit_s': int(float(limit)),
                              'command': read_text(os.path.join(work, f'{name}.cmd')).strip()})
    return parts


def read_text(path, tail=None):
    if not os.path.isfile(path):
        return ''
    with open(path, errors='replace') as f:
        text = f.read()
    if tail:
        text = '\n'.join(text.splitlines()[-tail:])
    return text


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def junit_summary(path):
    """Counts and failed test names from a pytest JUnit XML file, or None."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == 'testsuite' else list(root.iter('testsuite'))
    summary = {'tests': 0, 'failures': 0, 'errors': 0, 'skipped': 0, 'time_s': 0.0, 'failed': [], 'skipped_tests': []}
    for s in suites:
        for key in ('tests', 'failures', 'errors', 'skipped'):
            summary[key] += int(s.get(key, 0))
        summary['time_s'] += float(s.get('time', 0))
        for case in s.iter('testcase'):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            bad = case.find('failure') if case.find('failure') is not None else case.find('error')
            if bad is not None:
                summary['failed'].append({'test': name, 'message': (bad.get('message') or '')[:300]})
            elif case.find('skipped') is not None:
                reason = case.find('skipped').get('message') or ''
                summary['skipped_tests'].append({'test': name, 'reason': reason[:200]})
    summary['passed'] = summary['tests'] - summary['failures'] - summary['errors'] - summary['skipped']
    summary['time_s'] = round(summary['time_s'], 1)
    return summary


def train_log_summary(log):
    """Validation PSNRs, iteration times, world size and NCCL version from a ``nodesr train`` log."""
    psnr = [(m.group(1), float(m.group(2))) for m in re.finditer(r'Validation (\S+)\s+# psnr: ([0-9.]+)', log)]
    times = [float(t) for t in re.findall(r'time \(data\): ([0-9.]+)', log)]
    world = re.search(r'World size \(gpu number\): (\d+)', log)
    nccl = re.search(r'NCCL version ([0-9.]+\S*)', log)
    return {'validation_psnr': psnr, 'iter_time_s': times, 'world_size': int(world.group(1)) if world else None,
            'nccl_version': nccl.group(1) if nccl else None,
            'cuda_prefetcher': 'Use cuda prefetch dataloader' in log,
            'finished': 'End of training' in log}


def collect(work, mode):
    """Everything the report shows, as one dict."""
    report = {'mode': mode, 'generated_utc': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()),
              'env': read_json(os.path.join(work, 'env.json')), 'parts': read_parts(work)}
    report['tests'] = {name: junit_summary(os.path.join(work, f'{name}.xml')) for name in ('device_tests', 'suite')}
    report['train_runs'] = {name: train_log_summary(read_text(os.path.join(work, f'{name}.log')))
                            for name in ('train_1gpu', 'train_torchrun')
                            if os.path.isfile(os.path.join(work, f'{name}.log'))}
    report['train_speed'] = read_json(os.path.join(work, 'train_speed.json'))
    report['infer_speed'] = read_json(os.path.join(work, 'infer_speed.json'))
    report['total_s'] = round(sum(p['seconds'] for p in report['parts']), 1)
    return report


def fmt(v, spec='.2f'):
    return '-' if v is None else format(v, spec)


def markdown(report, work):
    """The report as Markdown."""
    env = report['env'] or {}
    card = env.get('gpu') or 'no GPU (CPU)'
    lines = [f"# GPU check: {card}", '',
             f"Mode: {report['mode']}. Generated {report['generated_utc']} UTC by `scripts/gpu_check.sh`; "
             f"parts took {report['total_s']} s in all.", '']
    if env:
        lines += [f"- GPU: {card}" + (f", {env.get('gpu_memory_gib')} GiB, compute capability {env.get('capability')}"
                                      if env.get('gpu') else ''),
                  f"- nvidia-smi: {env.get('nvidia_smi', '-')}",
                  f"- Python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('cuda')}, cudnn "
                  f"{env.get('cudnn', '-')}, NCCL {env.get('nccl', '-')}), BasicSR {env.get('basicsr')}, torchdiffeq "
                  f"{env.get('torchdiffeq')}, nodesr_arch {env.get('nodesr_arch')}; {env.get('cpu_count')} CPU "
                  'cores', '']
    lines += ['## Parts', '', '| part | what | status | seconds (limit) |', '|---|---|---|---|']
    for p in report['parts']:
        lines.append(f"| {p['part']} | {p['title']} | {p['status']} | {p['seconds']:.0f} ({p['limit_s']}) |")
    lines += ['', '## (a) Tests', '']
    for name, label in (('device_tests', 'tests/test_device.py on the device'), ('suite', 'quick test files')):
        s = report['tests'].get(name)
        if s is None:
            lines.append(f'- {label}: no result')
            continue
        lines.append(f"- {label}: {s['passed']} passed, {s['failures']} failed, {s['errors']} errors, "
                     f"{s['skipped']} skipped ({s['time_s']} s)")
        lines += [f"  - FAILED {f['test']}: {f['message']}" for f in s['failed']]
    lines += ['', '## (b) nodesr train (tiny YAML)', '']
    for name, t in report['train_runs'].items():
        psnr = ', '.join(f'{n} {v:.2f} dB' for n, v in t['validation_psnr']) or 'none'
        its = t['iter_time_s']
        lines.append(f"- {name}: finished {t['finished']}; world size {t['world_size']}; "
                     f"NCCL {t['nccl_version'] or '-'}; "
                     f"CUDA prefetcher {t['cuda_prefetcher']}; validation {psnr}; logged iteration times "
                     f"{', '.join(f'{v:.3f}' for v in its) or '-'} s")
    ts = report['train_speed']
    if ts:
        lines += ['', '## (c) Training speed and memory (synthetic batches)', '',
                  'Each case: warm-up steps, then timed steps (zero_grad, forward through the ODE, L1, backward, '
                  'Adam) on a random batch on the GPU, every sample\'s scale drawn from {1.1, ..., 4.0} as in '
                  'training; data loading not included. tf32: float32 with TF32 convolutions and matmuls; bf16: '
                  'bf16 autocast. Peak memory of the timed steps; the warm-up steps\' peak (cudnn.benchmark '
                  'autotuning included) apart, where recorded. GPU-hours: the YAML\'s total_iter (600k) / (it/s) '
                  '/ 3600.', '',
                  train_table(ts)]
    inf = report['infer_speed']
    if inf:
        lines += ['', '## (d) Inference speed and memory', '',
                  'One LR image enlarged to the output size through `Upscaler.super_resolve` (bicubic on the GPU, '
                  'channels_last, inference_mode), median of up to 3 timed runs after one warm-up (0 timed runs: '
                  'the warm-up run alone outlasted the case\'s time budget and is the figure); paper-size models '
                  'with random weights.', '', infer_table(inf)]
    bad = [p for p in report['parts'] if p['status'] != 'ok']
    if bad:
        lines += ['', '## Failures (last lines of each log)', '']
        for p in bad:
            log = read_text(os.path.join(work, f"{p['part']}.log"), tail=25)
            lines += [f"### {p['part']}: {p['status']}", '', '```', log, '```', '']
    return '\n'.join(lines) + '\n'


def _status(case):
    """A speed case's status cell: ``ok``, or the status with the start of its error."""
    error = case.get('error') if case['status'] != 'ok' else None
    return case['status'] + (f' ({error[:80]})' if error else '')


def _markdown_table(head, rows):
    """A Markdown table: the ``head`` cells, the separator and one line per row of cells."""
    lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


def train_table(report):
    """Markdown table of a ``gpu_speed train`` report."""
    head = ['model', 'precision', 'solver', 'checkpoint', 'batch', 'status', 'timed its', 'it/s', 'f evals/it',
            'peak alloc (GiB)', 'peak reserved (GiB)', 'warm-up peak alloc (GiB)', 'GPU-hours, 600k it']
    rows = [[r['model'], r['precision'], r['solver'], 'on' if r['checkpoint'] else 'off',
             f"{r.get('batch', '-')}x{r.get('patch', '-')}²", _status(r), r.get('iters', '-'),
             fmt(r.get('it_per_s'), '.3f'), fmt(r.get('nfe_per_iter'), '.1f'), fmt(r.get('peak_alloc_gib')),
             fmt(r.get('peak_reserved_gib')), fmt(r.get('warmup_peak_alloc_gib')), fmt(r.get('gpu_hours'), '.1f')]
            for r in report.get('cases', [])]
    return _markdown_table(head, rows)


def infer_table(report):
    """Markdown table of a ``gpu_speed infer`` report."""
    head = ['model', 'precision', 'output', 'scale', 'status', 'timed runs', 'images/s', 's/image', 'f evals',
            'peak alloc (GiB)']
    rows = [[r['model'], r['precision'], f"{r['size']}²", f"x{r['scale']}", _status(r), r.get('runs', '-'),
             fmt(r.get('images_per_s'), '.3f'), fmt(r.get('s_per_image'), '.4f'), r.get('nfe', '-'),
             fmt(r.get('peak_alloc_gib'))]
            for r in report.get('cases', [])]
    return _markdown_table(head, rows)


def write_report(work, out, mode):
    """Write ``gpu_check.md`` and ``gpu_check.json`` to ``out`` from what ``work`` holds."""
    report = collect(work, mode)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, 'gpu_check.md'), 'w') as f:
        f.write(markdown(report, work))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('env')
    p.add_argument('--out', required=True)
    p = sub.add_parser('tiny-train')
    p.add_argument('root')
    p.add_argument('--name', required=True)
    p.add_argument('--num-gpu', type=int, required=True)
    p.add_argument('--prefetch', choices=['cuda'], default=None)
    p = sub.add_parser('check-train')
    p.add_argument('root')
    p.add_argument('--name', required=True)
    p = sub.add_parser('report')
    p.add_argument('--work', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--mode', default='gpu')
    args = parser.parse_args(argv)
    if args.cmd == 'env':
        write_env(args.out)
    elif args.cmd == 'tiny-train':
        write_tiny_train(args.root, args.name, args.num_gpu, args.prefetch)
    elif args.cmd == 'check-train':
        return check_train(args.root, args.name)
    else:
        write_report(args.work, args.out, args.mode)
    return 0


if __name__ == '__main__':
    sys.exit(main())
