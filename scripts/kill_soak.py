"""kill -9 soak test of training: N kills during a small NODE-VDSR training, each followed by
``nodesr train --auto_resume``; then the same training uninterrupted, for comparison.

Kills cycle through three moments: a random time, inside a checkpoint save and inside a validation (the
training model marks both with a flag file while it is in them; the soak kills as soon as it sees the flag,
and says whether the flag was still there, i.e. whether the kill really landed inside).

Prints, per kill, the iteration the run had resumed from, the last iteration logged before the kill, the
iteration the next run resumed from (iterations lost: at most the checkpoint interval), the temporary files
the kill left, and the batches the next run replayed and skipped: every trained batch is recorded with its
data position (epoch, batch) and a hash of its pixels and scales, and the first batch after a resume from
iteration c must be batch c of the uninterrupted run's data stream. At the end: the batches of the resumed
runs that differ from the uninterrupted run's at the same iteration, whether the final weights equal the
uninterrupted run's (``torch.equal``, every tensor), and the temporary and lock files left (all must be 0).

    python -m scripts.kill_soak [--kills 21] [--freq 4] [--workers 2] [--seed 0] [--keep DIR]
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

from benchmarks.common import tiny_train_options

ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
MOMENTS = ('random', 'save', 'validation')

HOOK = '''
import hashlib, os, sys
import torch
import nodesr_arch.train
from basicsr.utils.registry import MODEL_REGISTRY
from nodesr_arch.models.nodesr_model import NODESRModel

FLAGS = os.environ['SOAK_FLAGS']


def flagged(name, func):
    path = os.path.join(FLAGS, name)
    open(path, 'w').close()
    func()
    os.remove(path)


@MODEL_REGISTRY.register()
class SoakNODESRModel(NODESRModel):
    """Records every trained batch (iter epoch batch hash) in $SOAK_BATCHES; flags its saves and validations."""

    def optimize_parameters(self, current_iter):
        digest = hashlib.sha256(b''.join(t.detach().cpu().contiguous().numpy().tobytes() for t in
                                         (self.lq, self.gt, torch.as_tensor(self.scale)))).hexdigest()[:16]
        epoch, batch = self.data_position or (-1, 0)
        with open(os.environ['SOAK_BATCHES'], 'a') as f:
            f.write(f'{current_iter} {epoch} {batch - 1} {digest}\\n')
        super().optimize_parameters(current_iter)

    def save(self, epoch, current_iter):
        flagged('save', lambda: super(SoakNODESRModel, self).save(epoch, current_iter))

    def validation(self, *args, **kwargs):
        flagged('validation', lambda: super(SoakNODESRModel, self).validation(*args, **kwargs))


if __name__ == '__main__':
    sys.exit(nodesr_arch.train.main())
'''


def soak_options(freq, workers):
    """The tiny training of the tests (``tiny_train_options``) under the recording model: checkpoint every
    ``freq`` iterations, validation every ``freq + 1``, 10 batches an epoch, EMA, no end in sight."""
    opt = tiny_train_options('soak', total_iter=10 ** 6, model_type='SoakNODESRModel',
                             train={'ema_decay': 0.9, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10 ** 6],
                                                                    'gamma': 0.5}},
                             val={'val_freq': freq + 1, 'trajectory': False},
                             logger={'save_checkpoint_freq': freq, 'use_tb_logger': False})
    opt['datasets']['train'].update(num_worker_per_gpu=workers, dataset_enlarge_ratio=5)
    return opt


def write_project(root, freq, workers):
    """Training images (``data/hr``), a validation image (``data/val``), the recording model and the option file
    of :func:`soak_options`."""
    for sub, pics in (('hr', (skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket())),
                      ('val', (skdata.astronaut(), ))):
        os.makedirs(os.path.join(root, 'data', sub))
        for i, pic in enumerate(pics):
            cv2.imwrite(os.path.join(root, 'data', sub, f'img{i}.png'), cv2.resize(pic, (48, 48))[..., ::-1])
    with open(os.path.join(root, 'hook.py'), 'w') as f:
        f.write(HOOK)
    return write_options(root, 'soak.yml', soak_options(freq, workers))


def write_options(root, name, opt):
    path = os.path.join(root, name)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def leftovers(root):
    """Temporary save files (``.*.partial.*``, older ``*.tmp``) and lock files under ``root/experiments``."""
    from nodesr_arch.file_io import is_partial
    found = []
    for folder, _, files in os.walk(os.path.join(root, 'experiments')):
        found += [os.path.join(folder, n) for n in files
                  if n.endswith(('.tmp', '.lock')) or is_partial(n) is not None]
    return found


def logged_iters(text):
    return [int(m) for m in re.findall(r'iter:\s+(\d+), lr:', text)]


def read_batches(path):
    """{iter: (epoch, batch, hash)} of a run's record (a killed run's last line may be cut)."""
    out = {}
    if os.path.isfile(path):
        for line in open(path):
            parts = line.split()
            if len(parts) == 4:
                out[int(parts[0])] = (int(parts[1]), int(parts[2]), parts[3])
    return out


def wait_for_training(proc, log_path):
    """The iteration this run started from, once it has trained one more (None if it ended first)."""
    start_iter = None
    while proc.poll() is None:
        with open(log_path) as f:
            text = f.read()
        m = re.search(r'Resuming training from epoch: \d+, iter: (\d+)\.', text)
        if start_iter is None and (m or 'Start training from epoch' in text):
            start_iter = int(m.group(1)) if m else 0
        if start_iter is not None and any(i > start_iter for i in logged_iters(text)):
            return start_iter
        time.sleep(0.05)
    return None


def kill_at(proc, moment, flags, rng, timeout=30.0):
    """SIGKILL at ``moment``; returns (seconds waited, whether the kill landed inside the flagged moment)."""
    t0 = time.time()
    if moment == 'random':
        time.sleep(rng.uniform(0.0, 3.0))
    else:
        flag = os.path.join(flags, moment)
        while not os.path.exists(flag) and time.time() - t0 < timeout:
            time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    inside = moment != 'random' and os.path.exists(os.path.join(flags, moment))
    return time.time() - t0, inside


def weights_equal(a, b):
    import torch
    sa, sb = (torch.load(p, map_location='cpu', weights_only=True) for p in (a, b))
    return sa.keys() == sb.keys() and all(
        sa[k].keys() == sb[k].keys() and all(torch.equal(sa[k][n], sb[k][n]) for n in sa[k]) for k in sa)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kills', type=int, default=21)
    parser.add_argument('--freq', type=int, default=4, help='save_checkpoint_freq')
    parser.add_argument('--workers', type=int, default=2, help='num_worker_per_gpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--keep', help='run in this folder and keep it (default: a temporary folder)')
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = args.keep or tempfile.mkdtemp(prefix='kill_soak_')
    os.makedirs(root, exist_ok=True)
    opt_path = write_project(root, args.freq, args.workers)
    flags = os.path.join(root, 'flags')
    os.makedirs(flags)
    cmd = [sys.executable, 'hook.py', '-opt', opt_path, '--auto_resume']
    env = dict(ENV, SOAK_FLAGS=flags)
    print(f'kill -9 soak: {args.kills} kills at {"/".join(MOMENTS)} moments in turn, checkpoint every {args.freq} '
          f'iterations, validation every {args.freq + 1}, {args.workers} data workers, in {root}')
    print('kill | moment     | inside | resumed from | last logged | next resumed from | lost | temp files | '
          'replayed | skipped')
    rows, runs = [], []
    for k in range(args.kills):
        for name in os.listdir(flags):  # a killed run's flag
            os.remove(os.path.join(flags, name))
        log_path, batches = (os.path.join(root, f'run{k}.{ext}') for ext in ('log', 'batches'))
        with open(log_path, 'w') as log:
            proc = subprocess.Popen(cmd, cwd=root, env=dict(env, SOAK_BATCHES=batches), stdout=log,
                                    stderr=subprocess.STDOUT)
        start_iter = wait_for_training(proc, log_path)
        if start_iter is None:
            sys.exit(f'run {k} ended (exit {proc.returncode}) before training: see {log_path}')
        runs.append(dict(start=start_iter, batches=batches))
        if k > 0:
            rows[-1].update(resumed=start_iter, lost=rows[-1]['last'] - start_iter)
        moment = MOMENTS[k % len(MOMENTS)]
        _, inside = kill_at(proc, moment, flags, rng)
        with open(log_path) as f:
            last = max(logged_iters(f.read()) or [start_iter])
        temp = len([p for p in leftovers(root) if not p.endswith('.lock')])  # a dead run's lock is expected
        rows.append(dict(moment=moment, inside=inside, prev=start_iter, last=last, temp=temp))
    # the last kill's resume runs to `freq` iterations past the last one logged
    total = rows[-1]['last'] + args.freq
    final_batches = os.path.join(root, 'final.batches')
    final = subprocess.run(cmd + ['--force_yml', f'train:total_iter={total}'], cwd=root,
                           env=dict(env, SOAK_BATCHES=final_batches), capture_output=True, text=True)
    with open(os.path.join(root, 'final.log'), 'w') as f:
        f.write(final.stdout + final.stderr)
    m = re.search(r'Resuming training from epoch: \d+, iter: (\d+)\.', final.stdout + final.stderr)
    runs.append(dict(start=int(m.group(1)) if m else -1, batches=final_batches))
    rows[-1].update(resumed=runs[-1]['start'], lost=rows[-1]['last'] - runs[-1]['start'])
    left = leftovers(root)
    # the same training, uninterrupted
    opt = soak_options(args.freq, args.workers)
    opt['name'], opt['train']['total_iter'] = 'soak_reference', total
    ref_opt = write_options(root, 'reference.yml', opt)
    ref_batches = os.path.join(root, 'reference.batches')
    ref = subprocess.run([sys.executable, 'hook.py', '-opt', ref_opt], cwd=root,
                         env=dict(env, SOAK_BATCHES=ref_batches), capture_output=True, text=True)
    reference = read_batches(ref_batches)
    per_epoch = int(re.search(r'Require iter number per epoch: (\d+)', ref.stdout + ref.stderr).group(1))
    stream = {(e, b): i - 1 for i, (e, b, _) in reference.items()}  # data position -> place in the stream
    differing = 0
    for k, (row, run) in enumerate(zip(rows, runs[1:])):
        trained = read_batches(run['batches'])
        first = trained.get(run['start'] + 1)
        place = stream.get(first[:2]) if first else None
        if place is None:
            row.update(replayed='?', skipped='?')
        else:
            row.update(replayed=max(0, run['start'] - place), skipped=max(0, place - run['start']))
        differing += sum(1 for i, b in trained.items() if reference.get(i) != b)
        print(f"{k + 1:4d} | {row['moment']:10s} | {'yes' if row['inside'] else 'no':6s} | {row['prev']:12d} | "
              f"{row['last']:11d} | {row['resumed']:17d} | {row['lost']:4d} | {row['temp']:10d} | "
              f"{row['replayed']:>8} | {row['skipped']:>7}")
    equal = ref.returncode == 0 and weights_equal(
        *(os.path.join(root, 'experiments', n, 'models', 'net_g_latest.pth') for n in ('soak', 'soak_reference')))
    lost = [r['lost'] for r in rows]
    replayed = [r['replayed'] for r in rows if r['replayed'] != '?']
    skipped = [r['skipped'] for r in rows if r['skipped'] != '?']
    for moment in MOMENTS[1:]:
        tried = [r for r in rows if r['moment'] == moment]
        print(f'kills aimed at {moment}: {len(tried)}, landed inside: {sum(r["inside"] for r in tried)}')
    print(f'kills: {len(rows)}, iterations lost per kill: min {min(lost)}, max {max(lost)}, mean '
          f'{sum(lost) / len(lost):.2f} (checkpoint interval {args.freq}); {per_epoch} batches an epoch, '
          f'{total} iterations; kills that left temp files: {sum(1 for r in rows if r["temp"])}, final run exit '
          f'{final.returncode}, files left after it: {len(left)}')
    print(f'batches replayed per resume: max {max(replayed, default="?")}, total {sum(replayed)}; skipped: max '
          f'{max(skipped, default="?")}, total {sum(skipped)}; resumes without a readable first batch: '
          f'{len(rows) - len(replayed)}; trained batches that differ from the uninterrupted run\'s: {differing}; '
          f'final weights equal the uninterrupted run\'s: {equal}')
    ok = (final.returncode == 0 and not left and max(lost) <= args.freq and len(replayed) == len(rows)
          and not any(replayed) and not any(skipped) and differing == 0 and equal)
    print('PASS' if ok else 'FAIL')
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
