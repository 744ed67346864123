"""kill -9 soak test of training: N random kills during a small NODE-VDSR training, each followed by
``nodesr train --auto_resume``.

Prints, per kill, the last iteration logged before the kill, the iteration the next run resumed from
(the iterations lost, which must not exceed the checkpoint interval) and the temporary files the kill
left; at the end, the temporary and lock files left after a clean finish (must be 0).

    python scripts/kill_soak.py [--kills 20] [--freq 4] [--seed 0] [--keep DIR]
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import cv2
import yaml
from skimage import data as skdata

ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')


def write_project(root, freq):
    """Training images and a tiny NODE-VDSR option file (checkpoint every ``freq`` iterations, no validation)."""
    folder = os.path.join(root, 'hr')
    os.makedirs(folder)
    for i, pic in enumerate((skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket())):
        cv2.imwrite(os.path.join(folder, f'img{i}.png'), cv2.resize(pic, (48, 48))[..., ::-1])
    opt = {
        'name': 'soak', 'model_type': 'NODESRModel', 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': {
            'name': 'toy', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'hr', 'io_backend': {'type': 'disk'},
            'scale_range': [1.1, 4.0], 'scale_step': 0.1, 'gt_size': 16, 'num_worker_per_gpu': 0,
            'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1}},
        'network_g': {'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 3, 'ode': {'method': 'rk4', 'step_size': 1.0}},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10 ** 6], 'gamma': 0.5}, 'total_iter': 10 ** 6,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': freq, 'use_tb_logger': False},
    }
    path = os.path.join(root, 'soak.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def leftovers(root):
    """Temporary save files and lock files anywhere under ``root/experiments``."""
    found = []
    for folder, _, files in os.walk(os.path.join(root, 'experiments')):
        found += [os.path.join(folder, n) for n in files if n.endswith(('.tmp', '.lock'))]
    return found


def logged_iters(text):
    return [int(m) for m in re.findall(r'iter:\s+(\d+), lr:', text)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kills', type=int, default=20)
    parser.add_argument('--freq', type=int, default=4, help='save_checkpoint_freq')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--keep', help='run in this folder and keep it (default: a temporary folder)')
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = args.keep or tempfile.mkdtemp(prefix='kill_soak_')
    os.makedirs(root, exist_ok=True)
    opt_path = write_project(root, args.freq)
    cmd = [sys.executable, '-m', 'nodesr_arch.commands.cli', 'train', '-opt', opt_path, '--auto_resume']
    print(f'kill -9 soak: {args.kills} kills, checkpoint every {args.freq} iterations, in {root}')
    print('kill | resumed from | last logged | killed at (s after first iteration) | lost | '
          'temp files left by the kill')
    rows, resumed = [], 0
    for k in range(args.kills + 1):
        log_path = os.path.join(root, f'run{k}.log')
        with open(log_path, 'w') as log:
            proc = subprocess.Popen(cmd, cwd=root, env=ENV, stdout=log, stderr=subprocess.STDOUT)
        start_iter = None
        while proc.poll() is None:  # wait for the first trained iteration of this run
            with open(log_path) as f:
                text = f.read()
            m = re.search(r'Resuming training from epoch: \d+, iter: (\d+)\.', text)
            if start_iter is None and (m or 'Start training from epoch' in text):
                start_iter = int(m.group(1)) if m else 0
            if start_iter is not None and any(i > start_iter for i in logged_iters(text)):
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            sys.exit(f'run {k} ended (exit {proc.returncode}) before training: see {log_path}')
        if k > 0:
            lost = rows[-1]['last'] - start_iter
            rows[-1].update(resumed=start_iter, lost=lost)
            r = rows[-1]
            print(f"{k:4d} | {r['prev']:12d} | {r['last']:11d} | {r['delay']:35.2f} | {lost:4d} | {r['temp']}")
            resumed += 1
        if k == args.kills:
            break
        delay = rng.uniform(0.0, 3.0)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with open(log_path) as f:
            last = max(logged_iters(f.read()) or [start_iter])
        temp = len([p for p in leftovers(root) if p.endswith('.tmp')])
        rows.append(dict(prev=start_iter, last=last, delay=delay, temp=temp))
    # the last run: let it finish 2 iterations past where it is, then count what is left
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    final = subprocess.run(cmd + ['--force_yml', f'train:total_iter={rows[-1]["last"] + args.freq}'], cwd=root,
                           env=ENV, capture_output=True, text=True)
    left = leftovers(root)
    lost = [r['lost'] for r in rows]
    print(f'kills: {len(rows)}, resumes: {resumed}, iterations lost per kill: min {min(lost)}, max {max(lost)}, '
          f'mean {sum(lost) / len(lost):.2f} (checkpoint interval {args.freq}), kills that left temp files: '
          f'{sum(1 for r in rows if r["temp"])}, final run exit {final.returncode}, files left after it: {len(left)}')
    ok = final.returncode == 0 and not left and max(lost) <= args.freq and resumed == len(rows)
    print('PASS' if ok else 'FAIL')
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
