"""Training-data throughput: samples/s of ContinuousScalePairedDataset through a DataLoader, with BasicSR's
shuffle and with exact resume (``ResumableSampler`` + ``SeededSamples``: keys and per-sample seeding), timed
alternately in the same run.

    python -m benchmarks.data_loading [--gt-size 200] [--workers 2] [--batch 16] [--batches 40] [--rounds 4]
        [--data DIR ...]

Uses the real training images (../shared/data/train/{BSD200,T91}/HR, images smaller than gt_size left
out) when present, otherwise generated 480x320 images. Compare the figure with the training step rate
(NODE-VDSR, batch 16 of 200x200: several seconds per step on CPU, ~0.1 s on a GPU).
"""
import argparse
import os
import tempfile
import time
import warnings

import cv2
import numpy as np
import torch

import nodesr_arch  # noqa: F401
from basicsr.data import build_dataset
from benchmarks.common import machine
from nodesr_arch.data.exact_resume import ResumableSampler, SeededSamples

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data', 'train')


def _generated(folder, n=32):
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
        cv2.imwrite(os.path.join(folder, f'g{i:03d}.png'), cv2.resize(small, (480, 320), interpolation=cv2.INTER_CUBIC))
    return [folder]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', nargs='+', help='GT folders (default: shared BSD200 + T91, else generated)')
    parser.add_argument('--gt-size', type=int, default=200)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--batches', type=int, default=40, help='batches timed per loader (after 2 warm-up batches)')
    parser.add_argument('--rounds', type=int, default=4, help='alternations of the two loaders')
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    roots = args.data or [d for d in (os.path.join(SHARED, 'BSD200', 'HR'), os.path.join(SHARED, 'T91', 'HR'))
                          if os.path.isdir(d)] or _generated(tmp.name)
    opt = dict(type='ContinuousScalePairedDataset', name='bench', phase='train', dataroot_gt=roots,
               io_backend=dict(type='disk'), gt_size=args.gt_size, scale_range=[1.1, 4.0], scale_step=0.1,
               use_hflip=True, use_rot=True, skip_small=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        dataset = build_dataset(opt)
    common = dict(batch_size=args.batch, num_workers=args.workers, drop_last=True)
    loaders = {'BasicSR shuffle': torch.utils.data.DataLoader(dataset, shuffle=True, **common),
               'exact resume': torch.utils.data.DataLoader(
                   SeededSamples(dataset), sampler=ResumableSampler(dataset, 1, 0, 1, 0, args.batch), **common)}
    elapsed = dict.fromkeys(loaders, 0.0)
    for _ in range(args.rounds):  # alternately, so both see the same machine load
        for name, loader in loaders.items():
            it = batches(loader)  # new workers each time: none has prefetched while the other was timed
            for _ in range(2):  # worker start-up and first reads
                next(it)
            start = time.perf_counter()
            for _ in range(args.batches // args.rounds):
                next(it)
            elapsed[name] += time.perf_counter() - start
            del it
    print(machine())
    print(f'data: {", ".join(os.path.relpath(r) for r in roots)} ({len(dataset)} images)')
    n = args.batches // args.rounds * args.rounds
    for name, seconds in elapsed.items():
        print(f'{name}: gt_size {args.gt_size}, scale_range 1.1-4.0 step 0.1, batch {args.batch}, {args.workers} '
              f'workers: {n * args.batch / seconds:.1f} samples/s ({seconds / n * 1000:.0f} ms per batch)')
    tmp.cleanup()


def batches(loader):
    while True:
        yield from loader


if __name__ == '__main__':
    main()
