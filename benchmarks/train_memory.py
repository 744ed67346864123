"""Benchmark 3: training memory and step time of the three gradient modes.

Paper-size NODE-VDSR, 96x96 patches, batch 4, one rk4 step (4 evaluations of f), L1 loss, Adam.
Each mode runs in a fresh process so its peak resident memory is its own; memory is the peak RSS
growth over the process's state before the first step. Target: checkpoint peak memory <= 40 % of
direct at <= 1.5x the step time.

Memory is measured twice per mode. "RSS" runs with glibc's default allocator, as a user's training
does: freed activation blocks stay in the heap and count in the peak, so it depends on the order of
allocations. "live" runs again with ``MALLOC_MMAP_THRESHOLD_=65536``: every block over 64 KB is mapped
on allocation and returned to the system when freed, so the peak RSS growth is the peak of live tensor
memory. Its step time (one step after one warm-up) is printed too, against direct's default run: it
says what returning every block to the system costs in page faults.

    python -m benchmarks.train_memory [--steps 3]
"""
import argparse
import json

from benchmarks.common import machine, peak_rss_mb, run_isolated, timeit

MODES = {'direct': {}, 'checkpoint': {'checkpoint': True}, 'adjoint': {'adjoint': True}}


def one_mode(mode, steps, patch, batch):
    import torch

    import nodesr_arch  # noqa: F401
    from basicsr.archs import build_network
    torch.manual_seed(0)
    net = build_network({'type': 'NODEVDSR', 'ode': {'method': 'rk4', 'num_steps': 1, **MODES[mode]}})
    torch.nn.init.normal_(net.func[-1].weight, std=1e-3)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x = torch.rand(batch, 3, patch, patch)
    gt = torch.rand(batch, 3, patch, patch)
    scale = torch.tensor([1.5, 2.5, 3.5, 4.0][:batch] + [2.0] * max(0, batch - 4))
    for p in net.parameters():  # Adam state and grads exist before the baseline is read
        p.grad = torch.zeros_like(p)
    opt.step()
    base = peak_rss_mb()

    def step():
        opt.zero_grad(set_to_none=False)
        torch.nn.functional.l1_loss(net(x, scale), gt).backward()
        opt.step()

    seconds = timeit(step, repeat=steps, warmup=1)
    return {'mode': mode, 'peak_mb': peak_rss_mb() - base, 'step_s': seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--patch', type=int, default=96)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--mode', choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(one_mode(args.mode, args.steps, args.patch, args.batch)))
        return
    print(machine())
    print(f'NODE-VDSR (paper size), {args.batch}x{args.patch}x{args.patch}, rk4 num_steps 1 (4 NFE)\n')
    rows = []
    for mode in MODES:
        cmd = ['-m', 'benchmarks.train_memory', '--mode', mode, '--patch', str(args.patch), '--batch', str(args.batch)]
        row = run_isolated(cmd + ['--steps', str(args.steps)])
        live = run_isolated(cmd + ['--steps', '1'], env={'MALLOC_MMAP_THRESHOLD_': '65536'})
        row['live_mb'], row['live_step_s'] = live['peak_mb'], live['step_s']
        rows.append(row)
    direct = rows[0]
    print('| mode | peak RSS (MB) | vs direct | peak live (MB) | vs direct | step time (s) | vs direct '
          '| step time, live run (s) | vs direct |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['mode']} | {r['peak_mb']:.0f} | {r['peak_mb'] / direct['peak_mb']:.0%} | "
              f"{r['live_mb']:.0f} | {r['live_mb'] / direct['live_mb']:.0%} | "
              f"{r['step_s']:.3f} | {r['step_s'] / direct['step_s']:.2f}x | "
              f"{r['live_step_s']:.3f} | {r['live_step_s'] / direct['step_s']:.2f}x |")


if __name__ == '__main__':
    main()
