"""The GPU training run of scripts/gpu_train.sh: training-step speed (eager, torch.compile, CUDA graphs), then
NODE-VDSR and its twin VDSR+t trained for equal wall time on T91 + BSD200 and evaluated on Set5 / Set14.

Three parts, each its own process (the shell script limits each in time; ``benchmarks.gpu_train_report`` then
writes the report):

    python -m benchmarks.gpu_train speed --out DIR/speed.json [--budget 100]
    python -m benchmarks.gpu_train train -opt options/train/train_NODEVDSR_T291_gpu.yml --out DIR --seconds 165
    python -m benchmarks.gpu_train bundled --out DIR

``speed``: one training step of NODESRModel (``feed_data`` + ``optimize_parameters``: bf16 autocast, L1, Adam, as
in training) on random batches already on the device, at the paper's batches: NODE-VDSR and VDSR+t as the
``*_T291_gpu.yml`` files train them (16 of 200x200, one rk4 step), NODE-RDN as ``train_NODERDN_DIV2K.yml``
(8 of 130x130, ``checkpoint: true``) with one rk4 step. Paths: eager, ``train: compile: true`` (inductor) and
``train: compile: {mode: reduce-overhead}`` (inductor with CUDA graphs). Each case: the first two steps from the
same weights and batches as the eager case (loss, gradient and weight differences: exactness), warm-up steps, then
timed steps; it/s and peak memory. Guarded and budgeted as ``benchmarks.gpu_speed`` (a failing or slow case is
recorded and the next runs; the JSON is rewritten after every case).

``train``: the option file's model through the real ``ContinuousScalePairedDataset``, BasicSR's DataLoader and
CUDA prefetcher, for ``--seconds`` of training (not a number of iterations), then its EMA network evaluated on
every ``val_*`` set of the file (Meta-SR protocol, PSNR/SSIM on Y, ``crop_border: scale``). Writes
``NAME.pth`` (the EMA weights, fp32, keys ``params_ema`` and ``params``: the same tensors), ``NAME.log`` and
``NAME.json`` (iterations, it/s with real data, the seconds spent waiting for data, peak memory, the metrics).

``bundled``: the bundled models (NODEVDSR_S, VDSRt_S) evaluated on the same sets by the same code
(``bundled.json``): the reference for the trained ones.

``--dry-run`` (every part): the same code on the CPU with tiny networks, batches and time (tests/test_gpu_train.py).
"""
import argparse
import hashlib
import logging
import os
import sys
import time

import torch

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
from basicsr.models import build_model
from basicsr.utils import get_root_logger, set_random_seed
from benchmarks.gpu_speed import TINY_NETS, device_info, free, peak_memory, reset_peak, run_cases, sync
from benchmarks.gpu_train_report import write_json
from nodesr_arch.models.checkpoint import atomic_torch_save
from nodesr_arch.models.option_check import check_options
from nodesr_arch.option_files import read_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = {'NODE-VDSR': 'options/train/train_NODEVDSR_T291_gpu.yml', 'VDSR+t': 'options/train/train_VDSRt_T291_gpu.yml'}
BUNDLED = ('NODEVDSR_S', 'VDSRt_S')  # the reference: the bundled models, evaluated in the same run
LABELS = {'NODEVDSR': 'NODE-VDSR', 'VDSRt': 'VDSR+t', 'NODERDN': 'NODE-RDN'}  # speed cases' names of the archs
RDN_OPTIONS = 'options/train/train_NODERDN_DIV2K.yml'
DATA_PREFIX = '.gpudata'  # the option files' data folder (scripts/pack_train_data.py), replaced by --data
PATHS = {'eager': False, 'compile': True, 'cudagraphs': {'mode': 'reduce-overhead'}}
DRY = {'batch': 2, 'patch': 32, 'seconds': 2.0, 'max_iters': 3, 'val_images': 2}


# ---- options ---------------------------------------------------------------------------------------------


def _relocate(node, data):
    """Data paths of the option files (``.gpudata/...``) moved under ``data``, in place."""
    for d in node.values():
        for key in ('dataroot_gt', 'dataroot_lq'):
            roots = d.get(key)
            if roots is None:
                continue
            moved = [os.path.join(data, r[len(DATA_PREFIX) + 1:]) if r.startswith(DATA_PREFIX + '/') else r
                     for r in (roots if isinstance(roots, list) else [roots])]
            d[key] = moved if isinstance(roots, list) else moved[0]


def training_options(path, out, data=DATA_PREFIX, dry_run=False, device=None):
    """An option file read and completed as BasicSR's ``parse_options`` completes it, for one process.

    Args:
        path (str): Option file (relative to the repository root or absolute).
        out (str): Folder for the experiment's files.
        data (str): The packed data folder (replaces the files' ``.gpudata``).
        dry_run (bool): Tiny network, batch and workers (the CPU check of this script).
        device (str | None): 'cuda' or 'cpu'; default: cuda when there is one.

    Returns:
        dict: The options.
    """
    opt = read_yaml(os.path.join(ROOT, path))
    cuda = (device or ('cuda' if torch.cuda.is_available() else 'cpu')) == 'cuda'
    opt.update(dist=False, rank=0, world_size=1, is_train=True, num_gpu=1 if cuda else 0, auto_resume=False)
    _relocate(opt['datasets'], data)
    for phase, d in opt['datasets'].items():
        d['phase'] = phase.split('_')[0]
    train = opt['datasets']['train']
    if not cuda:
        train.update(prefetch_mode=None, pin_memory=False)
    if dry_run:
        net = opt['network_g']
        kept = {k: v for k, v in net.items() if k in ('type', 'num_in_ch', 'num_out_ch', 'ode')}
        opt['network_g'] = {**kept, **TINY_NETS['NODE-VDSR']}
        train.update(batch_size_per_gpu=DRY['batch'], gt_size=DRY['patch'], num_worker_per_gpu=1,
                     persistent_workers=False, dataset_enlarge_ratio=2)
    root = os.path.join(os.path.abspath(out), 'experiments', opt['name'])
    opt['path'] = {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None, 'experiments_root': root,
                   'models': os.path.join(root, 'models'), 'training_states': os.path.join(root, 'training_states'),
                   'log': root, 'visualization': os.path.join(root, 'visualization'), 'results_root': root}
    check_options(opt, is_train=True, check_paths=False)
    return opt


def speed_options(model, path, dry_run, device):
    """Options of one speed case: the training options of ``model`` with the path's ``train: compile``."""
    base = 'NODE-VDSR' if model == 'NODE-RDN' else model
    opt = training_options(OPTIONS[base], os.path.join(ROOT, 'experiments', 'gpu_train_speed'), dry_run=dry_run,
                           device=device)
    opt['train'].update(ema_decay=0, compile=PATHS[path])
    train = opt['datasets']['train']
    if model == 'NODE-RDN':
        rdn = read_yaml(os.path.join(ROOT, RDN_OPTIONS))
        net = rdn['network_g']
        net['ode'] = {k: v for k, v in net['ode'].items() if k != 'step_size'}
        net['ode']['num_steps'] = 1
        train.update(batch_size_per_gpu=rdn['datasets']['train']['batch_size_per_gpu'],
                     gt_size=rdn['datasets']['train']['gt_size'])
        if dry_run:
            net = {**{k: v for k, v in net.items() if k in ('type', 'num_in_ch', 'num_out_ch', 'ode')},
                   **TINY_NETS['NODE-RDN']}
        opt['network_g'] = net
    if dry_run:
        train.update(batch_size_per_gpu=DRY['batch'], gt_size=24)
    return opt


# ---- speed -----------------------------------------------------------------------------------------------


def random_batches(opt, device, count=2, seed=0):
    """``count`` random training batches of the options' size, scales from the training grid, on ``device``."""
    train = opt['datasets']['train']
    b, p = train['batch_size_per_gpu'], train['gt_size']
    lo, hi = train['scale_range']
    grid = torch.arange(round((hi - lo) / train['scale_step']) + 1, dtype=torch.float64) * train['scale_step'] + lo
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        scale = grid[torch.randint(len(grid), (b,), generator=gen)]
        batches.append({'lq': torch.rand(b, 3, p, p, generator=gen).to(device),
                        'gt': torch.rand(b, 3, p, p, generator=gen).to(device), 'scale': scale.to(device)})
    return batches


def _step(model, data, it, cudagraphs):
    if cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()  # a new step: earlier graph outputs may be overwritten
    model.feed_data(data)
    model.optimize_parameters(it)
    return model.log_dict['l_pix']


def measure_step(case, device, budget_s, dry_run, eager_state, max_iters=40, warmup=3):
    """Time training steps of one speed case (see the module docstring).

    Args:
        case (dict): ``model`` and ``path`` ('eager', 'compile', 'cudagraphs').
        device (torch.device): Where to run.
        budget_s (float): Seconds for the timed steps; at least 3 are timed.
        dry_run (bool): Tiny sizes.
        eager_state (dict): Per model, the eager case's initial weights and first two losses and final weights
            (filled by the eager case, compared by the others).
        max_iters (int): Most timed steps.
        warmup (int): Untimed steps after the two exactness steps (compiling, autotuning).

    Returns:
        dict: The case with ``it_per_s``, ``s_per_it``, ``iters``, ``compile_s`` (the first step's seconds),
        peak memory of the timed steps, ``first_losses``, and against the eager case ``loss_diff``,
        ``max_grad_diff`` (first step; ``max_grad``: the largest eager gradient) and ``max_weight_diff`` after two
        Adam steps (``max_weight_change``: how far eager's moved them; Adam's first steps move every weight by
        about the learning rate whatever its gradient's size, so a gradient near zero whose sign differs gives a
        weight difference of that order: the gradients are the measure of exactness).
    """
    opt = speed_options(case['model'], case['path'], dry_run, device.type)
    set_random_seed(0)
    model = build_model(opt)
    net = model.get_bare_model(model.net_g)
    ref = eager_state.get(case['model'])

    def flat(grad=False):
        return torch.cat([(p.grad if grad else p).detach().float().flatten() for p in net.parameters()])

    if ref is None:
        with torch.no_grad():  # the output conv starts at zero: give it weights, as after some training
            [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.normal_(0, 1e-3)
        init = {k: v.detach().clone() for k, v in net.state_dict().items()}
        init_weights = flat()
    else:
        net.load_state_dict(ref['init'])
    batches = random_batches(opt, device)
    cudagraphs = case['path'] == 'cudagraphs'
    t0 = time.perf_counter()
    losses = [_step(model, batches[0], 1, cudagraphs)]
    sync(device)
    first_s = time.perf_counter() - t0
    grads = flat(grad=True)  # the first step's gradients, before Adam turns tiny differences into lr-sized ones
    losses.append(_step(model, batches[1], 2, cudagraphs))
    weights = flat()
    row = {**case, 'status': 'ok', 'batch': opt['datasets']['train']['batch_size_per_gpu'],
           'patch': opt['datasets']['train']['gt_size'], 'amp': opt['train'].get('amp'),
           'network': {k: v for k, v in opt['network_g'].items()}, 'compile_s': round(first_s, 2),
           'first_losses': losses}
    if ref is None:
        eager_state[case['model']] = {'init': init, 'losses': losses, 'weights': weights, 'grads': grads,
                                      'change': float((weights - init_weights).abs().max())}
    else:  # the difference from eager: losses, first gradients (beside their size), weights after two steps
        row['loss_diff'] = max(abs(a - b) for a, b in zip(losses, ref['losses']))
        row['max_grad_diff'] = float((grads - ref['grads']).abs().max())
        row['max_grad'] = float(ref['grads'].abs().max())
        row['max_weight_diff'] = float((weights - ref['weights']).abs().max())
        row['max_weight_change'] = ref['change']
    for i in range(warmup):
        _step(model, batches[i % 2], 3 + i, cudagraphs)
    sync(device)
    reset_peak(device)
    iters, start = 0, time.perf_counter()
    while iters < max_iters and (iters < 3 or time.perf_counter() - start < budget_s):
        _step(model, batches[iters % 2], 3 + warmup + iters, cudagraphs)
        iters += 1
    sync(device)
    seconds = time.perf_counter() - start
    row.update(iters=iters, seconds=round(seconds, 3), it_per_s=round(iters / seconds, 3),
               s_per_it=round(seconds / iters, 4), nfe_per_iter=model.log_dict.get('nfe'), **peak_memory(device))
    del model
    free(device)
    return row


def speed_cases():
    """Eager first (the reference of the others and the random-batch figures of the trainings), then compile."""
    cases = [{'model': m, 'path': 'eager'} for m in ('NODE-VDSR', 'VDSR+t', 'NODE-RDN')]
    for path in ('compile', 'cudagraphs'):
        cases += [{'model': m, 'path': path} for m in ('NODE-VDSR', 'NODE-RDN')]
    return cases


def speed(args):
    device = torch.device('cpu' if args.dry_run or not torch.cuda.is_available() else 'cuda')
    torch.backends.cudnn.benchmark = True  # as BasicSR's train_pipeline sets it
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    eager_state = {}
    cases = speed_cases()
    if device.type == 'cpu':  # CUDA graphs need a GPU
        cases = [c for c in cases if c['path'] != 'cudagraphs']
    if args.dry_run and not args.with_compile:  # inductor takes tens of seconds on a CPU
        cases = [c for c in cases if c['path'] == 'eager']

    def measure(case, seconds):
        if case['path'] != 'eager' and case['model'] not in eager_state:
            raise RuntimeError(f"no eager reference for {case['model']} (its eager case did not run)")
        return measure_step(case, device, seconds, args.dry_run, eager_state, max_iters=3 if args.dry_run else 40)

    report = run_cases('train_step', cases, measure, device, args.budget, args.out, cap_s=2 if args.dry_run else 4,
                       min_s=1 if args.dry_run else 8, extra={'dry_run': args.dry_run})
    for row in report['cases']:
        print(f"{row['model']:10s} {row['path']:10s} {row.get('status')} it/s {row.get('it_per_s')} peak "
              f"{row.get('peak_alloc_gib')} GiB weight diff {row.get('max_weight_diff')}", flush=True)
    return 0


# ---- training --------------------------------------------------------------------------------------------


def train(args):
    """Train the option file's model for ``args.seconds``, evaluate its EMA network, write weights, log, JSON."""
    os.makedirs(args.out, exist_ok=True)
    device_type = 'cpu' if args.dry_run or not torch.cuda.is_available() else 'cuda'
    opt = training_options(args.opt, args.out, args.data, args.dry_run, device_type)
    name = opt['name']
    logger = get_root_logger(logger_name='basicsr', log_level=logging.INFO,
                             log_file=os.path.join(args.out, f'{name}.log'))
    logger.info(f'gpu_train: {name} from {args.opt}, {args.seconds} s of training, data {args.data}')
    torch.backends.cudnn.benchmark = True
    set_random_seed(opt['manual_seed'])
    dopt = opt['datasets']['train']
    train_set = build_dataset(dopt)
    sampler = EnlargedSampler(train_set, 1, 0, dopt.get('dataset_enlarge_ratio', 1))
    loader = build_dataloader(train_set, dopt, num_gpu=opt['num_gpu'], dist=False, sampler=sampler,
                              seed=opt['manual_seed'])
    model = build_model(opt)
    device = model.device
    prefetcher = CUDAPrefetcher(loader, opt) if dopt.get('prefetch_mode') == 'cuda' else CPUPrefetcher(loader)
    max_iters = DRY['max_iters'] if args.dry_run else opt['train']['total_iter']
    print_freq = 1 if args.dry_run else opt['logger']['print_freq']
    epoch, it, wait_s, steady = 0, 0, 0.0, None
    sampler.set_epoch(epoch)
    reset_peak(device)
    start = time.perf_counter()
    deadline = start + args.seconds
    interrupted = False
    try:  # SIGINT (the shell's time limit) ends the training, not the run: the weights are still saved
        while it < max_iters and time.perf_counter() < deadline:
            t = time.perf_counter()
            data = prefetcher.next()
            if data is None:  # end of an epoch
                epoch += 1
                sampler.set_epoch(epoch)
                prefetcher.reset()
                data = prefetcher.next()
            wait_s += time.perf_counter() - t
            it += 1
            model.update_learning_rate(it, warmup_iter=opt['train'].get('warmup_iter', -1))
            model.feed_data(data)
            model.optimize_parameters(it)
            if it == min(20, max_iters // 2 or 1):  # after cudnn's autotuning and the workers' start
                sync(device)
                steady = (it, time.perf_counter(), wait_s)
            if it % print_freq == 0:
                logger.info(f"iter {it} epoch {epoch} l_pix {model.log_dict['l_pix']:.5f} "
                            f'{it / (time.perf_counter() - start):.2f} it/s, data wait {wait_s:.1f} s')
    except KeyboardInterrupt:
        interrupted = True
        logger.warning(f'gpu_train: interrupted at iteration {it}; saving and evaluating what there is')
    sync(device)
    train_s = time.perf_counter() - start
    arch = opt['network_g']['type']
    record = {'name': name, 'model': LABELS.get(arch, arch), 'options': args.opt, 'dry_run': args.dry_run,
              'device': device_info(device),
              'network_g': opt['network_g'], 'amp': opt['train'].get('amp'), 'ema_decay': opt['train']['ema_decay'],
              'lr': opt['train']['optim_g']['lr'], 'batch': dopt['batch_size_per_gpu'], 'patch': dopt['gt_size'],
              'train_images': len(train_set), 'num_workers': dopt['num_worker_per_gpu'],
              'parameters': sum(p.numel() for p in model.net_g.parameters()), 'seconds_budget': args.seconds,
              'iters': it, 'epochs': epoch + 1, 'train_s': round(train_s, 2), 'it_per_s': round(it / train_s, 3),
              'data_wait_s': round(wait_s, 2), 'data_wait_fraction': round(wait_s / train_s, 4),
              'interrupted': interrupted, 'final_l_pix': model.log_dict['l_pix'],
              'nfe_per_iter': model.log_dict.get('nfe'), **peak_memory(device)}
    if steady is not None and it > steady[0]:
        n, t, w = it - steady[0], train_s + start - steady[1], wait_s - steady[2]
        record.update(steady_it_per_s=round(n / t, 3), steady_data_wait_fraction=round(w / t, 4))
    record['weights'] = save_ema(model, os.path.join(args.out, f'{name}.pth'))
    record['eval'] = {}

    def write():  # before the evaluation too: a run cut short there still leaves its training figures
        write_json(os.path.join(args.out, f'{name}.json'), record)

    write()
    record['eval'], record['eval_s'] = evaluate(model, opt, it, args.dry_run)
    write()
    logger.info(f'gpu_train: {name}: {it} iterations in {train_s:.0f} s; ' + ', '.join(
        f"{k} {v.get('psnr', float('nan')):.2f}" for k, v in record['eval'].items()))
    return 0


def bundled(args):
    """The bundled models (``nodesr_arch/weights``) evaluated on the same sets by the same code (``bundled.json``),
    so that the trained models' figures have their reference from the same run."""
    from nodesr_arch.loading import load_network
    device_type = 'cpu' if args.dry_run or not torch.cuda.is_available() else 'cuda'
    results = {}
    for spec in BUNDLED:
        opt = training_options(OPTIONS['NODE-VDSR'], args.out, args.data, args.dry_run, device_type)
        name, net, net_opt = load_network(spec)
        opt.update(is_train=False, network_g=net_opt)
        opt['path']['results_root'] = os.path.join(os.path.abspath(args.out), 'experiments', f'bundled_{name}')
        model = build_model(opt)
        model.net_g.load_state_dict(net.state_dict())
        evaluation, seconds = evaluate(model, opt, 0, args.dry_run)
        results[name] = {'network_g': net_opt, 'eval': evaluation, 'eval_s': seconds}
        print(f'{name}: ' + ', '.join(f"{k} {v['psnr']}" for k, v in evaluation.items()), flush=True)
    write_json(os.path.join(args.out, 'bundled.json'), {'device': device_info(torch.device(device_type)),
                                                        'models': results})
    return 0


def save_ema(model, path):
    """The EMA network (the network without EMA) as fp32 tensors on the CPU, atomically; its size and sha256."""
    net = model.get_bare_model(getattr(model, 'net_g_ema', model.net_g))
    state = {k: v.detach().float().cpu() for k, v in net.state_dict().items()}
    atomic_torch_save({'params_ema': state, 'params': state}, path)
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {'path': os.path.basename(path), 'bytes': os.path.getsize(path), 'sha256': digest}


def evaluate(model, opt, current_iter, dry_run):
    """Validate on every ``val_*`` set of the options (NODESRModel's validation: the EMA network, on its device)."""
    results, start = {}, time.perf_counter()
    for phase, dopt in opt['datasets'].items():
        if not phase.startswith('val'):
            continue
        dataset = build_dataset(dopt)
        if dry_run:
            dataset = torch.utils.data.Subset(dataset, range(min(DRY['val_images'], len(dataset))))
            dataset.opt = dopt  # NODESRModel reads the set's name and scale there
        loader = build_dataloader(dataset, dopt, num_gpu=opt['num_gpu'], dist=False, seed=opt['manual_seed'])
        model.validation(loader, current_iter, None, save_img=False)
        results[dopt['name']] = {'scale': float(dopt['scale']), 'images': len(dataset),
                                 **{k: round(float(v), 4) for k, v in model.metric_results.items()}}
    return results, round(time.perf_counter() - start, 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('part', choices=['speed', 'train', 'bundled'])
    parser.add_argument('--out', required=True, help='speed: the JSON file; train, bundled: the output folder')
    parser.add_argument('-opt', help='train: the option file')
    parser.add_argument('--seconds', type=float, default=165, help='train: seconds of training')
    parser.add_argument('--budget', type=float, default=100, help='speed: seconds for all cases')
    parser.add_argument('--data', default=DATA_PREFIX, help='train, bundled: the packed data folder (default .gpudata)')
    parser.add_argument('--dry-run', action='store_true', help='tiny sizes on the CPU (checks the script)')
    parser.add_argument('--with-compile', action='store_true', help='speed --dry-run: also the compile case')
    args = parser.parse_args(argv)
    if args.part == 'train' and not args.opt:
        parser.error('train needs -opt')
    try:
        return {'speed': speed, 'train': train, 'bundled': bundled}[args.part](args)
    except (OSError, ValueError) as e:
        print(f'gpu_train {args.part}: error: {type(e).__name__}: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
