"""GPU speed and memory of NODE-SR training and inference at the paper's sizes, on synthetic data.

Training (``train``): the paper's NODE-VDSR (batch 16 of 200x200) and NODE-RDN (batch 8 of 130x130),
network and batch read from ``options/train/train_NODE{VDSR,RDN}_DIV2K.yml``; each case a few dozen
training steps (zero_grad, forward through the ODE, L1 loss, backward, Adam step, as NODESRModel does;
no data loading, the batch is random on the GPU) with every sample's scale drawn from the YAML's grid
{1.1, 1.2, ..., 4.0} as in training. Cases: fp32 with TF32 convolutions/matmuls ("tf32") against bf16
autocast ("bf16"); the YAML's ``step_size: 1.0`` (x4 takes 3 rk4 steps) against ``num_steps: 1``; for
NODE-RDN ``checkpoint`` on and off. Figures: iterations/s, evaluations of f per iteration, peak
allocated and reserved GPU memory, and the GPU-hours of the YAML's ``total_iter`` (600k) at that speed.

Inference (``infer``): the bundled model (``nodesr_arch/weights``) and the paper-size models (random
weights: the speed does not depend on them) through the Python API (``Upscaler.super_resolve``: bicubic
enlargement on the GPU, channels_last, inference_mode) at 512x512 and 2048x2048 output, x2 and x4, tf32
and bf16 autocast: images/s and peak memory.

Every case is guarded (an out-of-memory or other error is recorded and the next case runs) and the
whole run is budgeted by time: a case that would not fit in what is left is recorded as skipped. The
JSON is rewritten after every case, so a killed run still leaves what it measured.

    python -m benchmarks.gpu_speed train --out train_speed.json [--budget 150] [--max-iters 30]
    python -m benchmarks.gpu_speed infer --out infer_speed.json [--budget 90]
    python -m benchmarks.gpu_speed train --dry-run --out x.json   # tiny nets on the CPU: checks the script

Each JSON holds the machine (GPU, torch, CUDA, cudnn, BasicSR, torchdiffeq, nodesr_arch versions) and one
row per case; the Markdown table of the rows is printed at the end. ``scripts/gpu_check.sh`` runs both
kinds after ``pytest -m gpu``.
"""
import argparse
import contextlib
import gc
import json
import os
import platform
import random
import sys
import time

import torch

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.archs import build_network
from nodesr_arch.option_files import read_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAPER = {'NODE-VDSR': 'train_NODEVDSR_DIV2K.yml', 'NODE-RDN': 'train_NODERDN_DIV2K.yml'}
TINY_NETS = {'NODE-VDSR': {'num_feat': 8, 'num_layer': 3},
             'NODE-RDN': {'num_feat': 8, 'num_block': 2, 'num_conv': 2, 'num_grow': 4}}
SOLVERS = {'step_size 1.0': {'step_size': 1.0}, 'num_steps 1': {'num_steps': 1}}
GIB = 1024**3


# ---- configuration ---------------------------------------------------------------------------------------


def paper_config(model, tiny=False):
    """The training configuration of a paper model, read from its option YAML.

    Args:
        model (str): 'NODE-VDSR' or 'NODE-RDN'.
        tiny (bool): Replace the network by a few-channel one and the batch by 2 of 24x24 (CPU checks).

    Returns:
        dict: ``network_g``, ``batch``, ``patch``, ``scales`` (the training grid), ``total_iter``, ``yaml``.
    """
    path = os.path.join(ROOT, 'options', 'train', PAPER[model])
    opt = read_yaml(path)
    train = opt['datasets']['train']
    lo, hi = train['scale_range']
    step = train['scale_step']
    scales = [round(lo + i * step, 6) for i in range(int(round((hi - lo) / step)) + 1)]
    net = dict(opt['network_g'])
    cfg = {'network_g': net, 'batch': int(train['batch_size_per_gpu']), 'patch': int(train['gt_size']),
           'scales': scales, 'total_iter': int(opt['train']['total_iter']), 'yaml': os.path.relpath(path, ROOT)}
    if tiny:
        net = {k: v for k, v in net.items() if k in ('type', 'num_in_ch', 'num_out_ch', 'ode')}
        cfg.update(network_g={**net, **TINY_NETS[model]}, batch=2, patch=24)
    return cfg


def train_cases():
    """The training cases in the order they run (the most wanted first, likely OOMs last)."""
    cases = []
    for precision in ('tf32', 'bf16'):
        for solver in SOLVERS:
            cases.append({'model': 'NODE-VDSR', 'precision': precision, 'solver': solver, 'checkpoint': False})
    for checkpoint in (True, False):
        for solver in SOLVERS:
            for precision in ('tf32', 'bf16'):
                cases.append({'model': 'NODE-RDN', 'precision': precision, 'solver': solver,
                              'checkpoint': checkpoint})
    return cases


def infer_cases(tiny=False):
    """The inference cases in the order they run: cheap first, tf32 and bf16 of one setting together."""
    sizes = (32, 64) if tiny else (512, 2048)
    cases = []
    settings = [(model, size, scale) for model in ('bundled NODEVDSR_S', 'NODE-VDSR') for size in sizes
                for scale in (2, 4)]
    settings += [('NODE-RDN', size, scale) for size in sizes for scale in (2, 4)]
    for model, size, scale in settings:
        for precision in ('tf32', 'bf16'):
            cases.append({'model': model, 'precision': precision, 'size': size, 'scale': scale})
    return cases


# ---- device helpers --------------------------------------------------------------------------------------


def device_info(device):
    """What the figures were measured on."""
    import torchdiffeq

    import basicsr
    info = {'device': str(device), 'torch': torch.__version__, 'python': platform.python_version(),
            'cpu_threads': torch.get_num_threads(), 'basicsr': basicsr.__version__,
            'torchdiffeq': torchdiffeq.__version__, 'nodesr_arch': nodesr_arch.__version__,
            'time_utc': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(name=torch.cuda.get_device_name(device), memory_gib=round(props.total_memory / GIB, 1),
                    capability=f'{props.major}.{props.minor}', multiprocessors=props.multi_processor_count,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), gpu_count=torch.cuda.device_count())
    else:
        info['name'] = platform.processor() or platform.machine()
    return info


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == 'cuda':
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device):
    """Peak allocated and reserved GPU memory (GiB) since :func:`reset_peak`; None on the CPU."""
    if device.type != 'cuda':
        return {'peak_alloc_gib': None, 'peak_reserved_gib': None}
    sync(device)
    return {'peak_alloc_gib': round(torch.cuda.max_memory_allocated(device) / GIB, 2),
            'peak_reserved_gib': round(torch.cuda.max_memory_reserved(device) / GIB, 2)}


def precision_context(precision, device):
    """tf32: float32 tensors, TF32 convolutions and matmuls; bf16: the same under bf16 autocast."""
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    if precision == 'bf16':
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def free(device):
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def last_conv(net):
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]


def error_record(e):
    oom = isinstance(e, torch.cuda.OutOfMemoryError) or 'out of memory' in str(e).lower()
    return {'status': 'oom' if oom else 'error', 'error': f'{type(e).__name__}: {str(e).splitlines()[0][:300]}'}


# ---- measurements ----------------------------------------------------------------------------------------


def measure_train(case, device, budget_s, max_iters=30, warmup=2, tiny=False):
    """Time training steps of one case.

    Args:
        case (dict): ``model``, ``precision``, ``solver``, ``checkpoint`` (see :func:`train_cases`).
        device (torch.device): Where to run.
        budget_s (float): Seconds for the timed steps (after the warm-up); at least 3 are timed.
        max_iters (int): Most timed steps.
        warmup (int): Untimed steps first (cudnn autotuning, allocator growth).
        tiny (bool): CPU-sized network and batch.

    Returns:
        dict: The case with ``iters``, ``it_per_s``, ``s_per_it``, ``nfe_per_iter``, peak memory of the
        timed steps (``peak_alloc_gib``, ``peak_reserved_gib``) and of the warm-up steps
        (``warmup_peak_alloc_gib``, cudnn autotuning included) and ``gpu_hours`` (the YAML's
        ``total_iter`` at this speed).
    """
    cfg = paper_config(case['model'], tiny)
    ode = {k: v for k, v in cfg['network_g']['ode'].items() if k not in ('step_size', 'num_steps')}
    ode.update(SOLVERS[case['solver']], checkpoint=case['checkpoint'])
    torch.manual_seed(0)
    net = build_network({**cfg['network_g'], 'ode': ode}).to(device).train()
    last_conv(net).weight.data.normal_(0, 1e-3)  # it starts at zero; give it weights, as in training
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    b, p = cfg['batch'], cfg['patch']
    gen = torch.Generator(device=device).manual_seed(0)
    lq = torch.rand(b, 3, p, p, device=device, generator=gen)
    gt = torch.rand(b, 3, p, p, device=device, generator=gen)
    rng = random.Random(0)
    nfes = []

    def step():
        scale = torch.tensor([rng.choice(cfg['scales']) for _ in range(b)], device=device)
        opt.zero_grad(set_to_none=True)
        with precision_context(case['precision'], device):
            loss = torch.nn.functional.l1_loss(net(lq, scale), gt)
        nfes.append(net.ode.nfe)
        loss.backward()
        opt.step()
        return loss

    reset_peak(device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warm_s = time.perf_counter() - t0
    warm_peak = peak_memory(device)['peak_alloc_gib']  # cudnn.benchmark's trials count here
    reset_peak(device)
    nfes.clear()
    iters, start = 0, time.perf_counter()
    while iters < max_iters and (iters < 3 or time.perf_counter() - start < budget_s):
        loss = step()
        iters += 1
    sync(device)
    seconds = time.perf_counter() - start
    it_per_s = iters / seconds
    return {**case, 'status': 'ok', 'batch': b, 'patch': p, 'warmup_iters': warmup, 'warmup_s': round(warm_s, 2),
            'iters': iters, 'seconds': round(seconds, 2), 'it_per_s': round(it_per_s, 3),
            's_per_it': round(1 / it_per_s, 4), 'nfe_per_iter': round(sum(nfes) / len(nfes), 2),
            'loss': float(loss.detach()), 'total_iter': cfg['total_iter'],
            'gpu_hours': round(cfg['total_iter'] / it_per_s / 3600, 1), **peak_memory(device),
            'warmup_peak_alloc_gib': warm_peak}


def inference_model(name, device, tiny=False):
    """An ``Upscaler`` for the bundled model or a paper-size model (random weights)."""
    from nodesr_arch.api import Upscaler, load_model
    if name.startswith('bundled '):
        return load_model(name.split(' ', 1)[1], device=device)
    cfg = paper_config(name, tiny)
    torch.manual_seed(0)
    net = build_network(dict(cfg['network_g']))
    last_conv(net).weight.data.normal_(0, 1e-3)  # it starts at zero; give it weights, as a trained model has
    return Upscaler(net, device=device, name=name, opt=cfg['network_g'])


def measure_infer(case, up, device, budget_s, repeat=3):
    """Time ``up.super_resolve`` of one LR image to ``case['size']`` squared at ``case['scale']``.

    Args:
        case (dict): ``model``, ``precision``, ``size`` (output side), ``scale``.
        up (Upscaler): The model.
        device (torch.device): Where to run.
        budget_s (float): Seconds for the timed runs after one warm-up run. When the warm-up run alone
            took longer than this, it is the measurement (``runs: 0``): its one-time costs are then a
            small part of it.
        repeat (int): Most timed runs.

    Returns:
        dict: The case with ``images_per_s`` (from the median run), ``s_per_image``, ``nfe``, peak memory.
    """
    lr_side = case['size'] // case['scale']
    lr = torch.rand(1, 3, lr_side, lr_side, device=device, generator=torch.Generator(device=device).manual_seed(0))

    def run():
        with precision_context(case['precision'], device):
            out = up.super_resolve(lr, float(case['scale']))
        sync(device)
        return out

    reset_peak(device)
    t0 = time.perf_counter()
    out = run()
    warm_s = time.perf_counter() - t0
    assert out.shape[-2:] == (case['size'], case['size']) and bool(torch.isfinite(out).all())
    times, start = [], time.perf_counter()
    while len(times) < repeat and time.perf_counter() - start + (times[-1] if times else warm_s) < budget_s:
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    med = sorted(times)[len(times) // 2] if times else warm_s
    nfe = up.net.ode.nfe if up.is_ode else 1
    return {**case, 'status': 'ok', 'lr_size': lr_side, 'warmup_s': round(warm_s, 2), 'runs': len(times),
            's_per_image': round(med, 4), 'images_per_s': round(1 / med, 3), 'nfe': nfe, **peak_memory(device)}


# ---- tables ----------------------------------------------------------------------------------------------


def fmt(v, spec='.2f'):
    return '-' if v is None else format(v, spec)


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


# ---- driver ----------------------------------------------------------------------------------------------


def run_cases(kind, cases, measure, device, budget_s, out_path, cap_s, min_s, extra=None):
    """Run ``measure(case, case_budget)`` for each case inside ``budget_s`` seconds, guarded, saving as it goes.

    Args:
        kind (str): 'train' or 'infer'.
        cases (list[dict]): The cases, in order.
        measure (callable): ``measure(case, seconds) -> dict``.
        device (torch.device): Where they run.
        budget_s (float): Seconds for all cases together.
        out_path (str): JSON written after every case.
        cap_s (float): Most timed seconds one case gets.
        min_s (float): A case starts only if at least this much time is left; else it is skipped.
        extra (dict | None): More fields for the JSON.

    Returns:
        dict: What was written.
    """
    deadline = time.perf_counter() + budget_s
    report = {'kind': kind, 'device': device_info(device), 'budget_s': budget_s, **(extra or {}), 'cases': []}
    for i, case in enumerate(cases):
        left = deadline - time.perf_counter()
        if left < min_s:
            row = {**case, 'status': 'skipped', 'error': f'time budget: {left:.0f} s left of {budget_s:.0f}'}
        else:
            case_budget = min(cap_s, max(1.0, left / (len(cases) - i) * 0.6))
            t = time.perf_counter()
            try:
                row = measure(case, case_budget)
            except Exception as e:  # an OOM or a bug in one case must not stop the others
                row = {**case, **error_record(e)}
            row['wall_s'] = round(time.perf_counter() - t, 1)
            free(device)
        report['cases'].append(row)
        print(json.dumps(row), flush=True)
        with open(out_path, 'w') as f:
            json.dump(report, f, indent=1)
    report['wall_s'] = round(budget_s - (deadline - time.perf_counter()), 1)
    with open(out_path, 'w') as f:
        json.dump(report, f, indent=1)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('kind', choices=['train', 'infer'])
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--budget', type=float, default=None, help='seconds for all cases (train 150, infer 90)')
    parser.add_argument('--max-iters', type=int, default=30, help='most timed training steps per case')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--tiny', action='store_true', help='tiny networks and sizes (checks the script on a CPU)')
    parser.add_argument('--dry-run', action='store_true',
                        help='--tiny --device cpu --max-iters 2, budget 5 s: the script\'s logic in seconds')
    args = parser.parse_args(argv)
    if args.dry_run:
        args.tiny, args.device, args.max_iters, args.budget = True, 'cpu', 2, args.budget or 5
    device = torch.device(args.device)
    if args.kind == 'train':
        torch.backends.cudnn.benchmark = True  # as BasicSR's train_pipeline sets it (the API leaves it off)
        budget = args.budget or 150
        cases = train_cases()
        report = run_cases('train', cases, lambda c, s: measure_train(c, device, s, args.max_iters, tiny=args.tiny),
                           device, budget, args.out, cap_s=20, min_s=min(8, budget / 10),
                           extra={'configs': {m: paper_config(m, args.tiny) for m in PAPER}, 'tiny': args.tiny})
        print(train_table(report))
    else:
        budget = args.budget or 90
        models = {}

        def measure(case, seconds):
            if case['model'] not in models:
                models[case['model']] = inference_model(case['model'], device, args.tiny)
            return measure_infer(case, models[case['model']], device, seconds)

        report = run_cases('infer', infer_cases(args.tiny), measure, device, budget, args.out, cap_s=10,
                           min_s=min(3, budget / 20), extra={'tiny': args.tiny})
        print(infer_table(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
