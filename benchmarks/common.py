"""Shared helpers of the benchmark scripts: machine description, timing and peak-memory measurement."""
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch


def machine():
    """One line describing this machine and the torch build."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads, python {platform.python_version()}')


def timeit(fn, repeat=3, warmup=1):
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def peak_rss_mb():
    """Peak resident memory of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_isolated(module_args, env=None):
    """Run ``python <module_args>`` (e.g. ``['-m', 'benchmarks.tiling', ...]``) from the repository root in a
    fresh process (own peak RSS); return the JSON its last stdout line holds."""
    out = subprocess.run([sys.executable] + module_args, check=True, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def tiny_train_options(name='tiny', total_iter=4, **sections):
    """The option dict of a tiny NODE-VDSR training (4 features, 3 layers, rk4), the one of the tests,
    ``scripts/kill_soak.py`` and the GPU tests: run from a folder holding ``data/hr`` (training images:
    2 of 16x16 a batch, scales 1.1 to 4.0) and ``data/val`` (validated at x2 and x3.5, Meta-SR protocol,
    every 2 iterations, with trajectories; checkpoints every 2).

    Args:
        name (str): The experiment name.
        total_iter (int): Training iterations.
        sections: Per top-level key, a dict merged into that section (``val={'val_freq': 100}``: one level
            deep, as ``dict.update``), or any other value that replaces it (``num_gpu=1``).

    Returns:
        dict: The options, as an option YAML holds them (``yaml.safe_dump`` writes it).
    """
    val = {'name': None, 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'data/val',
           'io_backend': {'type': 'disk'}, 'protocol': 'metasr'}
    opt = {
        'name': name, 'model_type': 'NODESRModel', 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {
                'name': 'toy', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'data/hr',
                'io_backend': {'type': 'disk'}, 'scale_range': [1.1, 4.0], 'scale_step': 0.1, 'gt_size': 16,
                'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                'dataset_enlarge_ratio': 1},
            'val_1': dict(val, name='val_x2', scale=2.0),
            'val_2': dict(val, name='val_x3.5', scale=3.5),
        },
        'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 3, 'ode': {'method': 'rk4', 'step_size': 1.0}},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [3, 5], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': 2, 'save_img': False, 'trajectory': {'num': 3},
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(opt.get(key), dict):
            opt[key].update(value)
        else:
            opt[key] = value
    return opt
