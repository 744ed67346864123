"""Benchmark 8: what the paper's trainings cost on a GPU, estimated on the CPU (docs/reproducing.md).

For each paper configuration (the ``network_g`` of ``options/train/train_<model>_DIV2K.yml``, the paper's
batch and patch) one training step runs on the CPU at batch 1 of ``--patch`` pixels, x2 (one rk4 step,
4 evaluations of f; the one-shot ``+t`` models: one). Counted there:

- FLOPs of forward + backward (``torch.utils.flop_counter``), per evaluation of f;
- activation memory kept for backward: the bytes of the distinct tensors autograd saves (weights
  excluded), per evaluation, in fp32 and under bf16 autocast.

Both are proportional to batch x pixels (3x3 convolutions with zero padding), so they are scaled to the
paper's batch and patch. A step takes ``4 N`` evaluations, ``N = ceil(max(t0) - 1)`` over the batch
(``step_size: 1.0``, ``t0`` uniform on {1.1, ..., 4.0}): its mean gives the FLOPs per iteration, its
maximum (N = 3, 12 evaluations) the memory. Memory = activations + weights, gradients and Adam's two
moments (16 bytes a parameter); with ``checkpoint: true`` one evaluation's activations are alive at a
time, plus the 12 saved states. GPU-hours = FLOPs x 600k iterations / (utilisation x peak), for the
peak dense rates of one H100 SXM (989 TFLOPS bf16, 495 TFLOPS TF32) at 25 % and 50 % utilisation.
This is an estimate, not a measurement (allocator caching and cuDNN workspaces come on top of the
memory; the utilisation is an assumption): the H100 run of docs/gpu.md measured the memory within 7 % of
it and ran at 11 % to 16 % of the peak, so its hours are 2 to 4 times these.

The rivals (``--rivals``: Meta-RDN, LIIF-EDSR, LIIF-RDN and the classic RDN x2/x3/x4 of Table 2, each with its
own recipe: LR patch, batch, 1M iterations) take the LR image and predict every output pixel (Meta-SR, RDN) or
``sample_q`` of them (LIIF). Their cost is fitted, not scaled by one factor: a step of Meta-RDN or RDN costs
``P^2 (a + b s^2)`` (LR-resolution work plus per-output-pixel work, P the LR patch), measured at two scales
(its mean over Meta-SR's scales gives the FLOPs, x4 the memory); a step of LIIF ``a P^2 + b Q`` (the encoder
plus ``Q`` queries), measured at two query counts. Saved activations are all tensors autograd keeps, less
those shaped like a parameter (weights and their bf16 copies).

    python -m benchmarks.paper_cost [--patch 24] [--rivals]
"""
import argparse
import json
import os
import weakref

import torch
from torch.utils.flop_counter import FlopCounterMode

import nodesr_arch  # noqa: F401
from basicsr.archs import build_network
from benchmarks.common import machine
from nodesr_arch.option_files import read_yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = {'NODEVDSR': (16, 200), 'VDSRt': (16, 200), 'NODERDN': (8, 130), 'RDNt': (8, 130)}
ITERATIONS = 600_000
PEAK_TFLOPS = {'bf16': 989.0, 'tf32': 495.0}  # H100 SXM, dense
SCALES = [round(1.1 + 0.1 * i, 1) for i in range(30)]


def expected_steps(batch, step_size=1.0):
    """Mean and maximum of ``ceil(max(t0) - 1)`` over batches of ``batch`` scales drawn from {1.1..4.0}."""
    steps = sorted({max(1, -(-round((s - 1) * 10) // round(step_size * 10))) for s in SCALES})
    mean = 0.0
    for n in steps:  # P(N >= n) = 1 - P(every t0 needs fewer than n steps)
        below = sum(1 for s in SCALES if (s - 1) <= (n - 1) * step_size + 1e-9) / len(SCALES)
        mean += 1 - below ** batch if n > 1 else 1
    return mean, max(steps)


def saved_bytes(net, x, scale):
    """Bytes of the distinct activations (image-sized tensors) autograd saves in one forward, and the output.

    Weights and autocast's bf16 copies of them do not grow with the image and are left out.
    """
    kept = []

    def pack(t):
        if t.dim() == 4 and t.shape[-2:] == x.shape[-2:]:
            kept.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x, scale)
    # counted at the end of the forward, so that what a discarded part of the graph saved (and freed,
    # its memory possibly reused since) is left out
    alive = [t for t in (r() for r in kept) if t is not None]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in alive}
    return sum(storages.values()), out


def network_options(model):
    """``network_g`` of ``options/train/train_MODEL_DIV2K.yml``."""
    return dict(read_yaml(os.path.join(REPO, 'options', 'train', f'train_{model}_DIV2K.yml'))['network_g'])


def measure(model, patch, amp, checkpoint=False):
    """Per evaluation of f at batch 1 x ``patch``^2: FLOPs (forward + backward) and saved bytes."""
    opt = network_options(model)
    is_ode = 'ode' in opt
    if is_ode:
        opt['ode'] = {'method': 'rk4', 'num_steps': 1, 'checkpoint': checkpoint}
    torch.manual_seed(0)
    net = build_network(opt)
    evals = 4 if is_ode else 1
    x = torch.rand(1, 3, patch, patch)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            nbytes, out = saved_bytes(net, x, 2.0)
        out.float().abs().mean().backward()
    params = sum(p.numel() for p in net.parameters())
    return dict(flops=counter.get_total_flops() / evals, saved=nbytes / evals, params=params, is_ode=is_ode)


def estimate(model, patch):
    """The row of one paper configuration: evaluations, TFLOP per iteration, GB, H100-hours."""
    batch, size = PAPER[model]
    k = batch * size * size / (patch * patch)
    fp32, bf16 = measure(model, patch, False), measure(model, patch, True)
    nfe_mean, nfe_max = (4 * n for n in expected_steps(batch)) if fp32['is_ode'] else (1, 1)
    fixed = fp32['params'] * 16
    state = 3 * 4 * batch * size * size  # one fp32 state (or stage value) of the batch
    row = dict(model=model, batch=batch, patch=size, params=fp32['params'], nfe_mean=nfe_mean, nfe_max=nfe_max)
    modes = {'direct': fp32['flops']}
    if fp32['is_ode']:  # checkpointing recomputes each evaluation's forward in backward
        modes['checkpoint'] = measure(model, patch, False, checkpoint=True)['flops']
    for mode, flops in modes.items():
        row[f'tflop_{mode}'] = flops * k * nfe_mean / 1e12
        for name, peak in PEAK_TFLOPS.items():
            for util in (0.25, 0.5):
                row[f'h_{mode}_{name}_{int(util * 100)}'] = row[f'tflop_{mode}'] * ITERATIONS / (util * peak) / 3600
    for name, m in (('fp32', fp32), ('bf16', bf16)):
        row[f'gb_direct_{name}'] = (m['saved'] * k * nfe_max + fixed) / 1e9
        if fp32['is_ode']:  # each evaluation keeps its input state and its value of f
            row[f'gb_checkpoint_{name}'] = (m['saved'] * k + 2 * state * nfe_max + fixed) / 1e9
    return row


# ------------------------------------------------------------------ the rivals (LR-input networks)
#: batch, LR patch, GT pixels per sample (None: all) and iterations of each rival's recipe
RIVALS = {'MetaRDN': (16, 50, None, 1_000_000), 'LIIF_EDSR': (16, 48, 2304, 1_000_000),
          'LIIF_RDN': (16, 48, 2304, 1_000_000), 'RDN_x2': (16, 32, None, 1_000_000),
          'RDN_x3': (16, 32, None, 1_000_000), 'RDN_x4': (16, 32, None, 1_000_000)}


def lr_step(net, patch, scale, queries=None, amp=False):
    """FLOPs (forward + backward) and saved activation bytes of one step of an LR-input network at batch 1.

    Args:
        net (nn.Module): The network (``takes_scale``: ``net(x, scale, pixels=...)``; else ``net(x)``).
        patch (int): LR side.
        scale (float): The scale (ignored by fixed-scale networks).
        queries (int | None): Output pixels predicted (LIIF's ``sample_q``); None: all.
        amp (bool): Under bf16 autocast.
    """
    x = torch.rand(1, 3, patch, patch)
    shapes = {tuple(p.shape) for p in net.parameters()}
    kept = []

    def pack(t):
        if tuple(t.shape) not in shapes:
            kept.append(weakref.ref(t))
        return t

    kwargs = {}
    if queries is not None:
        out_side = int(patch * scale)
        kwargs = dict(out_size=(out_side, out_side), pixels=torch.randperm(out_side * out_side)[:queries])
    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
                out = net(x, scale, **kwargs) if getattr(net, 'takes_scale', False) else net(x)
        alive = [t for t in (r() for r in kept) if t is not None]
        nbytes = sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in alive}.values())
        out.float().abs().mean().backward()
    return counter.get_total_flops(), nbytes


def estimate_rival(model, patch):
    """The row of one rival's recipe: parameters, TFLOP per iteration, GB, H100-hours (see the module doc)."""
    batch, size, queries, iterations = RIVALS[model]
    opt = network_options(model)
    torch.manual_seed(0)
    net = build_network(opt)
    row = dict(model=model, batch=batch, patch=size, params=sum(p.numel() for p in net.parameters()))
    p2 = (size / patch) ** 2
    for amp in (False, True):
        if queries is not None:  # a p^2 + b Q: b from 64 and 128 queries (at x4), a from the rest
            (f1, m1), (f2, m2) = (lr_step(net, patch, 4.0, q, amp) for q in (64, 128))
            per_q = ((f2 - f1) / 64, (m2 - m1) / 64)
            flops, mem = ((v - 64 * b) * p2 + b * queries for v, b in zip((f1, m1), per_q))
            row['scale_note'] = f'{queries} GT pixels per sample'
        elif getattr(net, 'takes_scale', False):  # p^2 (a + b s^2): b from x2 and x3
            (f2, m2), (f3, m3) = (lr_step(net, patch, s, None, amp) for s in (2.0, 3.0))
            mean_s2 = sum(s * s for s in SCALES) / len(SCALES)
            per_s2 = ((f3 - f2) / 5, (m3 - m2) / 5)
            flops = (f2 + per_s2[0] * (mean_s2 - 4)) * p2  # the mean over Meta-SR's scales
            mem = (m2 + per_s2[1] * (16 - 4)) * p2  # at x4
            row['scale_note'] = 'mean over x1.1-x4.0 (memory at x4)'
        else:  # a fixed-scale network: everything in proportion to the LR pixels
            flops, mem = (v * p2 for v in lr_step(net, patch, 2.0, None, amp))
            row['scale_note'] = f"x{opt['upscale']}"
        row[f"gb_{'bf16' if amp else 'fp32'}"] = (mem * batch + row['params'] * 16) / 1e9
        if not amp:
            row['tflop'] = flops * batch / 1e12
    for name, peak in PEAK_TFLOPS.items():
        for util in (0.25, 0.5):
            row[f'h_{name}_{int(util * 100)}'] = row['tflop'] * iterations / (util * peak) / 3600
    row['iterations'] = iterations
    return row


def print_rivals(rows, patch):
    print(f'\nrivals: measured at batch 1 x {patch}^2 LR pixels on the CPU, fitted and scaled to each recipe\n')
    print('| model | batch x LR patch | parameters | per iteration | TFLOP per iteration '
          '| peak memory fp32 / bf16 (GB) '
          '| iterations | H100-hours bf16 (50 % - 25 %) | H100-hours TF32 (50 % - 25 %) |')
    print('|---' * 9 + '|')
    for r in rows:
        print(f"| {r['model']} | {r['batch']} x {r['patch']}^2 | {r['params'] / 1e6:.2f} M | {r['scale_note']} "
              f"| {r['tflop']:.2f} | {r['gb_fp32']:.1f} / {r['gb_bf16']:.1f} | {r['iterations']:,} "
              f"| {r['h_bf16_50']:.1f} - {r['h_bf16_25']:.1f} | {r['h_tf32_50']:.1f} - {r['h_tf32_25']:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--patch', type=int, default=24, help='side of the CPU measurement patch (default 24)')
    parser.add_argument('--models', nargs='+', default=list(PAPER), choices=list(PAPER))
    parser.add_argument('--rivals', action='store_true',
                        help="estimate the rivals' recipes instead (Meta-RDN, LIIF, classic RDN; LR patch --patch / 2)")
    args = parser.parse_args()
    print(machine())
    if args.rivals:
        rows = [estimate_rival(m, max(4, args.patch // 2)) for m in RIVALS]
        print_rivals(rows, max(4, args.patch // 2))
        print('\n' + json.dumps(rows))
        return
    rows = [estimate(m, args.patch) for m in args.models]
    print(f'\nmeasured at batch 1 x {args.patch}^2 on the CPU, scaled to the paper\'s batch and patch\n')
    print('| model | batch x patch | parameters | evaluations of f per iteration (mean / max) '
          '| peak memory, direct: fp32 / bf16 (GB) | with checkpoint: fp32 / bf16 (GB) |')
    print('|---' * 6 + '|')
    for r in rows:
        checkpoint = (f"{r['gb_checkpoint_fp32']:.1f} / {r['gb_checkpoint_bf16']:.1f}"
                      if 'gb_checkpoint_fp32' in r else '-')
        print(f"| {r['model']} | {r['batch']} x {r['patch']}^2 | {r['params'] / 1e6:.2f} M "
              f"| {r['nfe_mean']:.2f} / {r['nfe_max']:g} | {r['gb_direct_fp32']:.1f} / {r['gb_direct_bf16']:.1f} "
              f"| {checkpoint} |")
    print(f'\n{ITERATIONS} iterations, one H100 SXM at 50 % / 25 % of its dense peak\n')
    print('| model | gradients | TFLOP per iteration | H100-hours, bf16 | H100-hours, TF32 |')
    print('|---' * 5 + '|')
    for r in rows:
        for mode in ('direct', 'checkpoint'):
            if f'tflop_{mode}' in r:
                print(f"| {r['model']} | {mode} | {r[f'tflop_{mode}']:.1f} "
                      f"| {r[f'h_{mode}_bf16_50']:.0f} - {r[f'h_{mode}_bf16_25']:.0f} "
                      f"| {r[f'h_{mode}_tf32_50']:.0f} - {r[f'h_{mode}_tf32_25']:.0f} |")
    print('\n' + json.dumps(rows))


if __name__ == '__main__':
    main()
