"""What one training step of NODE-VDSR-S costs under three ways of drawing scales (docs/results.md).

- ``per sample``: each of the batch's samples draws its own ``t0`` from {1.1, ..., 4.0} and the solver
  (rk4, ``step_size: 1.0``) takes the step count of the batch's largest scale (the bundled recipe);
- ``per batch``: the whole batch shares one ``t0`` (``scale_per_batch: true``), so it takes its own count;
- ``one step``: one rk4 step whatever the scale (``num_steps: 1``, the one-step recipe).

For each, the expected evaluations of ``f`` per step (exact, from the scale grid) and the measured wall
time of forward + backward + Adam on random 40x40 batches of 12, the three interleaved round by round so
that a drifting machine load hits them alike (medians over ``--rounds``).

    OMP_NUM_THREADS=1 python -m benchmarks.scale_sampling [--rounds 20] [--batch 12] [--patch 40]
"""
import argparse
import random
import statistics
import time

import torch

import nodesr_arch  # noqa: F401
from basicsr.archs import build_network
from benchmarks.common import machine
from nodesr_arch.data.scale_space import scale_grid
from nodesr_arch.scales import num_steps

NET = {'type': 'NODEVDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_layer': 8}
MODES = {'per sample': {'method': 'rk4', 'step_size': 1.0}, 'per batch': {'method': 'rk4', 'step_size': 1.0},
         'one step': {'method': 'rk4', 'num_steps': 1}}


def expected_evaluations(mode, grid, batch):
    """Expected evaluations of ``f`` in one forward solve, ``t0`` uniform on ``grid``."""
    steps = [num_steps(t - 1, 1.0) for t in grid]  # rk4, step_size 1.0
    if mode == 'one step':
        return 4.0
    if mode == 'per batch':
        return 4 * sum(steps) / len(steps)
    # per sample: the batch's largest step count; P(max <= k) = P(one sample <= k) ** batch
    counts = sorted(set(steps))
    cdf = {k: (sum(s <= k for s in steps) / len(steps))**batch for k in counts}
    return 4 * sum(k * (cdf[k] - cdf.get(prev, 0.0)) for prev, k in zip([None] + counts, counts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--batch', type=int, default=12)
    parser.add_argument('--patch', type=int, default=40)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    grid = scale_grid([1.1, 4.0], 0.1)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    nets = {mode: build_network(dict(NET, ode=ode)) for mode, ode in MODES.items()}
    optims = {mode: torch.optim.Adam(net.parameters(), lr=1e-4) for mode, net in nets.items()}
    times = {mode: [] for mode in MODES}
    nfe = {mode: [] for mode in MODES}
    gt = torch.rand(args.batch, 3, args.patch, args.patch)
    x = gt + 0.05 * torch.randn_like(gt)
    for r in range(args.rounds + 1):  # round 0 warms up
        per_sample = [rng.choice(grid) for _ in range(args.batch)]
        shared = [rng.choice(grid)] * args.batch
        for mode, net in nets.items():
            scales = torch.tensor(per_sample if mode != 'per batch' else shared, dtype=torch.float64)
            start = time.perf_counter()
            loss = (net(x, scales) - gt).abs().mean()
            optims[mode].zero_grad()
            loss.backward()
            optims[mode].step()
            if r:
                times[mode].append(time.perf_counter() - start)
                nfe[mode].append(net.ode.nfe)
    print(f'# {machine()}; batch {args.batch} x {args.patch}x{args.patch}, {args.rounds} rounds, t0 in 1.1:4.0:0.1')
    print('| scales drawn | solver | evaluations of f per step (expected) | (measured mean) | '
          'step time, median (ms) | relative |')
    print('|---|---|---|---|---|---|')
    base = statistics.median(times['per sample'])
    for mode, ode in MODES.items():
        solver = ', '.join(f'{k} {v}' for k, v in ode.items())
        t = statistics.median(times[mode])
        print(f'| {mode} | {solver} | {expected_evaluations(mode, grid, args.batch):.2f} | '
              f'{statistics.mean(nfe[mode]):.2f} | {1000 * t:.0f} | {t / base:.2f}x |')


if __name__ == '__main__':
    main()
