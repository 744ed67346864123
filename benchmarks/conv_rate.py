"""Benchmark 10a: why PyTorch's CPU convolutions are slower than onnxruntime's on the bundled model's ``f``.

Times one evaluation of ``f`` (the bundled NODEVDSR_S: 8 conv 3x3 layers, 32 features; ``--arch paper``: 20
layers, 64 features) under PyTorch's settings and against onnxruntime, then the first, a middle and the last
convolution alone in both, and a bare fp32 GEMM; every case once per round, rounds interleaved (ABAB), so the
load of a shared machine falls on all alike. Prints the median ms and GMAC/s of each.

    python -m benchmarks.conv_rate [--arch small|paper] [--size 256] [--threads 2] [--repeat 5]
"""
import argparse
import copy
import io
import time
import warnings

import numpy as np
import torch
from torch import nn

import nodesr_arch  # noqa: F401
from basicsr.archs import build_network
from benchmarks.common import machine
from nodesr_arch.loading import load_network


def onnx_session(module, x, threads):
    """An onnxruntime session of ``module`` exported at ``x``'s shape."""
    import onnxruntime

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(copy.deepcopy(module), (x,), buf, input_names=['x'], output_names=['y'], dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(buf.getvalue(), options, providers=['CPUExecutionProvider'])


def macs(module, pixels):
    return pixels * sum(m.in_channels * m.out_channels * 9 for m in module.modules() if isinstance(m, nn.Conv2d))


def fused(convs):
    """``f`` with each conv and its ReLU as one oneDNN primitive (what inductor's freezing emits on CPU)."""
    def run(h):
        for i, m in enumerate(convs):
            h = torch.ops.mkldnn._convolution_pointwise(h, m.weight, m.bias, [1, 1], [1, 1], [1, 1], 1,
                                                        'relu' if i < len(convs) - 1 else 'none', [], '')
        return h
    return run


def padded_first_layer(f_cl):
    """``f`` whose first conv takes 8 input channels (4 zero ones), and the padder of its input."""
    f8 = copy.deepcopy(f_cl)
    c0 = f8[0]
    conv = nn.Conv2d(8, c0.out_channels, 3, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :c0.in_channels] = c0.weight
        conv.bias.copy_(c0.bias)
    f8[0] = conv.to(memory_format=torch.channels_last)
    return f8, lambda x: torch.cat([x, torch.zeros_like(x)], 1).contiguous(memory_format=torch.channels_last)


def cases(f, x, threads):
    """Name -> (callable, MACs)."""
    pixels = x.shape[-1] * x.shape[-2]
    work = macs(f, pixels)
    f_cl = copy.deepcopy(f).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    convs = [m for m in f_cl if isinstance(m, nn.Conv2d)]
    f8, pad = padded_first_layer(f_cl)
    x8 = pad(x)
    with torch.no_grad():
        jit = torch.jit.optimize_for_inference(torch.jit.script(copy.deepcopy(f).eval()))
    session = onnx_session(f, x, threads)
    xn = x.numpy()

    def no_onednn():
        with torch.backends.mkldnn.flags(enabled=False):
            return f_cl(x_cl)

    def convs_only():
        h = x_cl
        for m in convs:
            h = m(h)
        return h

    out = {
        'f: torch NCHW': (lambda: f(x), work),
        'f: torch channels_last (the API)': (lambda: f_cl(x_cl), work),
        'f: torch channels_last, oneDNN off': (no_onednn, work),
        'f: torch channels_last, first conv 8 channels': (lambda: f8(x8), work),
        'f: torch.jit.optimize_for_inference': (lambda: jit(x), work),
        'f: torch conv+ReLU fused (mkldnn pointwise)': (lambda: fused(convs)(x_cl), work),
        'f: torch channels_last, ReLUs left out': (convs_only, work),
        'f: onnxruntime': (lambda: session.run(None, {'x': xn}), work),
    }
    h = x
    for i, m in enumerate(f):
        if isinstance(m, nn.Conv2d) and i in (0, 2, len(f) - 1):
            m_cl, h_cl, s, hn = copy.deepcopy(m).to(memory_format=torch.channels_last), \
                h.contiguous(memory_format=torch.channels_last), onnx_session(m, h, threads), h.numpy()
            label = f'layer {i // 2 + 1}: conv {m.in_channels}->{m.out_channels}'
            out[f'{label}, torch channels_last'] = (lambda m_cl=m_cl, h_cl=h_cl: m_cl(h_cl), macs(m, pixels))
            out[f'{label}, onnxruntime'] = (lambda s=s, hn=hn: s.run(None, {'x': hn}), macs(m, pixels))
        with torch.no_grad():
            h = m(h)
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    out['bare fp32 GEMM 1024^3'] = (lambda: a @ b, 1024 ** 3)
    with torch.inference_mode():
        ref = f(x)
        for name in ('f: torch.jit.optimize_for_inference', 'f: torch conv+ReLU fused (mkldnn pointwise)',
                     'f: torch channels_last, first conv 8 channels'):
            diff = float((torch.as_tensor(np.asarray(out[name][0]())) - ref).abs().max())
            assert diff < 1e-4, (name, diff)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', choices=['small', 'paper'], default='small')
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    torch.manual_seed(0)
    f = (load_network(None)[1] if args.arch == 'small' else build_network({'type': 'NODEVDSR'})).func.eval()
    x = torch.rand(1, f[0].in_channels, args.size, args.size)
    todo = cases(f, x, args.threads)
    times = {name: [] for name in todo}
    with torch.inference_mode():
        for round_ in range(args.repeat + 1):  # round 0: warm-up
            for name, (fn, _) in todo.items():
                start = time.perf_counter()
                fn()
                if round_:
                    times[name].append(time.perf_counter() - start)
    print(f'\nf of NODE-VDSR ({args.arch}), {args.size}x{args.size}, {args.threads} threads; median of '
          f'{args.repeat} interleaved rounds\n')
    print('| case | ms | GMAC/s |')
    print('|---|---|---|')
    for name, (_, work) in todo.items():
        med = sorted(times[name])[len(times[name]) // 2]
        print(f'| {name} | {med * 1e3:.1f} | {work / med / 1e9:.1f} |')


if __name__ == '__main__':
    main()
