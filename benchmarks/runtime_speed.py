"""Benchmark 10: the runtimes of ``f`` (PyTorch, onnxruntime) end to end through the API, ABAB in one process.

For the bundled model (NODEVDSR_S, 32 features, 8 layers) and the paper-size NODE-VDSR (64 features, 20
layers, random weights), a 256x256 image enlarged x2 and a 128x128 one x4 (both 512x512) through
``Upscaler.super_resolve``, one rk4 step (4 evaluations of ``f``; ``--steps``), at each thread count.
Both runtimes run in this process, alternating round by round (ABAB), so a loaded machine slows both alike.
Prints the median time, the rate of ``f``'s multiply-accumulates (GMAC/s), the ratio, what ``auto`` picks,
and this CPU's peak estimate: a bare fp32 matrix product (``torch.mm``, 2048x2048) at the same threads, timed
in the same rounds (so it sees the same load).

    python -m benchmarks.runtime_speed [--repeat 3] [--threads 1 2] [--models bundled paper] [--steps 1]
"""
import argparse
import os
import tempfile
import time

import torch
from torch import nn

import nodesr_arch  # noqa: F401
from basicsr.archs import build_network
from benchmarks.common import machine
from nodesr_arch.api import Upscaler, load_model
from nodesr_arch.loading import load_network

CASES = ((256, 2.0), (128, 4.0))  # (input side, scale): 512x512 outputs
GEMM = 2048


def field_macs(net):
    """Multiply-accumulates of one evaluation of ``f`` per output pixel."""
    return sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
               for m in net.modules() if isinstance(m, nn.Conv2d))


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def models(names, steps):
    """``{name: network}``: the bundled model and/or the paper-size NODE-VDSR (random weights)."""
    out = {}
    if 'bundled' in names:
        out['bundled NODEVDSR_S'] = load_network(None)[1]
    if 'paper' in names:
        torch.manual_seed(0)
        net = build_network({'type': 'NODEVDSR'})
        nn.init.normal_(net.func[-1].weight, std=1e-3)  # a trained-like small residual, not zero
        out['paper NODE-VDSR'] = net
    for net in out.values():
        net.set_ode(method='rk4', num_steps=steps)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3, help='timed rounds per case (after a quarter-size warm-up)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--models', nargs='+', choices=['bundled', 'paper'], default=['bundled', 'paper'])
    parser.add_argument('--steps', type=int, default=1, help='rk4 steps (4 evaluations of f each)')
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as cold:  # the one-off export, timed in an empty cache
        saved = os.environ.get('XDG_CACHE_HOME')
        os.environ['XDG_CACHE_HOME'] = cold
        start = time.perf_counter()
        load_model(runtime='onnxruntime')
        print(f'export of the bundled model\'s f (once per network, then cached): '
              f'{time.perf_counter() - start:.1f} s')
        if saved is None:
            os.environ.pop('XDG_CACHE_HOME')
        else:
            os.environ['XDG_CACHE_HOME'] = saved
    a, b = torch.rand(GEMM, GEMM), torch.rand(GEMM, GEMM)
    rows = []
    for name, net in models(args.models, args.steps).items():
        ups = {rt: Upscaler(net, name=name, runtime=rt) for rt in ('torch', 'onnxruntime')}
        macs = field_macs(net.func)
        for threads in args.threads:
            torch.set_num_threads(threads)
            auto = Upscaler(net, name=name, runtime='auto')
            for side, scale in CASES:
                lr = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
                times = {rt: [] for rt in list(ups) + ['gemm']}
                outs = {}
                for up in ups.values():  # warm-up (sessions, kernels) on a quarter-size input
                    up.super_resolve(lr[..., :side // 4, :side // 4], scale)
                for _ in range(args.repeat):
                    for rt, up in ups.items():
                        start = time.perf_counter()
                        outs[rt] = up.super_resolve(lr, scale)
                        times[rt].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    a @ b
                    times['gemm'].append(time.perf_counter() - start)
                med = {rt: sorted(ts)[len(ts) // 2] for rt, ts in times.items()}
                work = ups['torch'].nfe * macs * outs['torch'].shape[-1] * outs['torch'].shape[-2]
                diff = float((outs['torch'] - outs['onnxruntime']).abs().max())
                rows.append((name, side, scale, threads, med, work, diff, auto.runtime))
                print(f'  {name} {side}->{outs["torch"].shape[-1]} x{scale:g}, {threads} threads: '
                      + ', '.join(f'{rt} {m * 1e3:.0f} ms' for rt, m in med.items()), flush=True)
                med['gemm'] = GEMM ** 3 / med['gemm'] / 1e9
    print(f'\n{args.steps} rk4 step(s) ({4 * args.steps} evaluations of f), 512x512 outputs, median of '
          f'{args.repeat} ABAB rounds; GMAC/s: f\'s multiply-accumulates per second; % GEMM: of a bare fp32 '
          f'{GEMM}^3 GEMM timed in the same rounds at the same threads (this CPU\'s peak estimate)\n')
    print('| model | case | threads | torch ms | onnxruntime ms | torch / onnxruntime | GEMM GMAC/s '
          '| torch GMAC/s (% GEMM) | onnxruntime GMAC/s (% GEMM) | max diff | auto runs |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for name, side, scale, threads, med, work, diff, auto in rows:
        rate = {rt: work / med[rt] / 1e9 for rt in ('torch', 'onnxruntime')}
        cells = [f'{rate[rt]:.1f} ({100 * rate[rt] / med["gemm"]:.0f} %)' for rt in rate]
        print(f'| {name} | {side}->512 x{scale:g} | {threads} | {med["torch"] * 1e3:.0f} | '
              f'{med["onnxruntime"] * 1e3:.0f} | {med["torch"] / med["onnxruntime"]:.2f} | {med["gemm"]:.1f} | '
              f'{cells[0]} | {cells[1]} | {diff:.1e} | {auto} |')


if __name__ == '__main__':
    main()
