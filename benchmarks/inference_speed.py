"""Benchmark 5: inference speed settings, before/after ratios in one run.

Times one NODE-SR forward (rk4, step_size 1.0, x2: 4 evaluations of f) under each setting, all in this
process and interleaved round by round, so the ratios are comparable even on a loaded machine.

    python -m benchmarks.inference_speed [--arch paper|small] [--size 256] [--repeat 3]
"""
import argparse
import contextlib
import os
import time

import torch

import nodesr_arch  # noqa: F401
from basicsr.archs import build_network
from benchmarks.common import machine

ARCHS = {
    'paper': {'type': 'NODEVDSR'},
    'small': {'type': 'NODEVDSR', 'num_feat': 32, 'num_layer': 8},
}


def settings(net, x):
    """Name -> (network, input, context factory, threads)."""
    ncores = os.cpu_count() or 1
    cl_net = build_network(dict(ARCH_OPT)).eval()
    cl_net.load_state_dict(net.state_dict())
    cl_net = cl_net.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    return {
        'no_grad, NCHW, 1 thread': (net, x, torch.no_grad, 1),
        f'no_grad, NCHW, {ncores} threads (before)': (net, x, torch.no_grad, ncores),
        f'inference_mode, NCHW, {ncores} threads': (net, x, torch.inference_mode, ncores),
        f'no_grad, channels_last input only, {ncores} threads': (net, x_cl, torch.no_grad, ncores),
        f'no_grad, channels_last model+input, {ncores} threads': (cl_net, x_cl, torch.no_grad, ncores),
        f'inference_mode, channels_last model+input, {ncores} threads': (cl_net, x_cl, torch.inference_mode, ncores),
    }


def main():
    global ARCH_OPT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', choices=list(ARCHS), default='paper')
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    ARCH_OPT = ARCHS[args.arch]
    print(machine())
    torch.manual_seed(0)
    net = build_network(dict(ARCH_OPT)).eval()
    torch.nn.init.normal_(net.func[-1].weight, std=1e-3)
    x = torch.rand(1, 3, args.size, args.size)
    cases = settings(net, x)
    times = {name: [] for name in cases}
    ref = None
    for round_ in range(args.repeat + 1):  # round 0 is warm-up
        for name, (n, inp, ctx, threads) in cases.items():
            torch.set_num_threads(threads)
            with ctx() if ctx is not None else contextlib.nullcontext():
                start = time.perf_counter()
                out = n(inp, 2.0)
                elapsed = time.perf_counter() - start
            if ref is None:
                ref = out.clone()
            elif round_ == 0:
                assert torch.allclose(out, ref, atol=1e-4), f'{name} changes the output'
            if round_:
                times[name].append(elapsed)
    torch.set_num_threads(os.cpu_count() or 1)
    base_name = [n for n in cases if n.endswith('(before)')][0]
    base = sorted(times[base_name])[len(times[base_name]) // 2]
    print(f'\nNODE-VDSR ({args.arch}), {args.size}x{args.size}, x2, rk4 (4 NFE); median of {args.repeat}\n')
    print('| setting | time (s) | speed-up vs before |')
    print('|---|---|---|')
    for name, ts in times.items():
        med = sorted(ts)[len(ts) // 2]
        print(f'| {name} | {med:.3f} | {base / med:.2f}x |')


if __name__ == '__main__':
    main()
