"""The package on the device under test (the ``device`` fixture of conftest.py: the CPU, and CUDA under
the ``gpu`` marker).

Archs, the integrator (rk4, checkpoint, adjoint), a NODESRModel training step, tiling and the Python
API run on that device and are compared with the same computation on the CPU. On the CPU the comparison
is trivial but every path runs; on a GPU (``pytest -m gpu tests/test_device.py``) it checks CUDA against
the CPU, with TF32 switched off for the comparison. The CUDA-only paths run where
the device is CUDA: memory statistics, pinned memory with BasicSR's ``CUDAPrefetcher``, cudnn flags
and an NCCL process group (gloo and ``CPUPrefetcher`` on the CPU).
"""
import copy

import numpy as np
import pytest
import torch
from test_model import make_opt

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.archs import build_network
from helpers import one_thread_fixture, randomized, save_tiny_model, write_images
from nodesr_arch.api import load_model, resolve_device
from nodesr_arch.archs.ode import ODEIntegrator
from nodesr_arch.archs.rdn_arch import NODERDN, RDNt
from nodesr_arch.archs.vdsr_arch import NODEVDSR, VDSRt
from nodesr_arch.models.nodesr_model import NODESRModel

one_thread = one_thread_fixture()

RRDB = {'type': 'RRDBNet', 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'scale': 1}
ARCHS = {
    'NODEVDSR': lambda: NODEVDSR(num_feat=8, num_layer=4, ode={'method': 'rk4', 'step_size': 1.0}),
    'NODERDN': lambda: NODERDN(num_feat=6, num_block=2, num_conv=2, num_grow=4, ode={'method': 'rk4'}),
    'NODESR_RRDBNet': lambda: build_network({'type': 'NODESR', 'backbone': dict(RRDB), 'ode': {'num_steps': 2}}),
    'VDSRt': lambda: VDSRt(num_feat=8, num_layer=4),
    'RDNt': lambda: RDNt(num_feat=6, num_block=2, num_conv=2, num_grow=4),
}
GRAD_MODES = {'direct': {}, 'checkpoint': {'checkpoint': True}, 'adjoint': {'adjoint': True}}


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def close(a, b, tol=1e-4):
    """``a`` (any device) equals ``b`` to ``tol`` relative to b's largest magnitude."""
    a, b = a.detach().cpu(), b.detach().cpu()
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


def grads(net, x, scale):
    net.zero_grad()
    net(x, scale).square().mean().backward()
    return [p.grad.detach().clone() for p in net.parameters()]


def on(device, net):
    """A copy of ``net`` on ``device`` (the CPU original stays the reference)."""
    return copy.deepcopy(net).to(device)


def cuda_only(device):
    if device.type != 'cuda':
        pytest.skip('CUDA-only path (the device under test is the CPU)')


# ---- architectures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', sorted(ARCHS))
def test_arch_forward_on_device_matches_cpu(name, device, ieee_fp32):
    net = randomized(ARCHS[name](), std=0.05).eval()
    x, scale = rand(2, 3, 13, 11), torch.tensor([2.0, 3.3])
    with torch.no_grad():
        ref = net(x, scale)
        dev_net = on(device, net)
        out = dev_net(x.to(device), scale.to(device))
        single = dev_net(x[:1].to(device), 2.0)  # a Python float scale too
    assert out.device == device and out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(ref, x)  # the nets are not the identity
    assert close(out, ref)
    assert close(single, ref[:1])


# ---- integrator ------------------------------------------------------------------------------------------


class TimesT(torch.nn.Module):
    """``f(I, t) = 0.2 t I``: ``I(1) = I(t0) exp(0.1 (1 - t0^2))``."""

    def forward(self, inp):
        return 0.2 * inp[:, -1:] * inp[:, :-1]


@pytest.mark.parametrize('method, steps, tol', [('rk4', 16, 5e-8), ('euler', 16, 6e-2), ('dopri5', None, 1e-6)])
def test_integrator_closed_form_on_device(method, steps, tol, device):
    x = rand(2, 3, 5, 6).double().to(device)
    opts = {'num_steps': steps} if steps else {'rtol': 1e-7, 'atol': 1e-9}
    out = ODEIntegrator(TimesT(), method=method, **opts)(x, torch.tensor([3.0, 2.2], device=device))
    t0 = torch.tensor([3.0, 2.2], dtype=torch.float64, device=device).view(-1, 1, 1, 1)
    exact = x * torch.exp(0.1 * (1 - t0**2))
    assert out.device == device and out.dtype == torch.float64
    assert ((out - exact).abs() / exact.abs()).max().item() < tol


@pytest.mark.parametrize('mode', sorted(GRAD_MODES))
def test_gradients_on_device_equal_cpu(mode, device, ieee_fp32):
    net = randomized(NODEVDSR(num_feat=6, num_layer=3, ode={'method': 'rk4', 'num_steps': 2, **GRAD_MODES[mode]}))
    x, scale = rand(2, 3, 12, 10, seed=1), torch.tensor([1.5, 3.7])
    ref = grads(net, x, scale)
    dev = grads(on(device, net), x.to(device), scale.to(device))
    assert all(g.device == device for g in dev)
    assert any(g.abs().max() > 1e-4 for g in ref)  # not a comparison between zeros
    for a, b in zip(dev, ref):
        assert close(a, b), mode


def test_checkpoint_lowers_peak_cuda_memory(device):
    cuda_only(device)
    x, scale = rand(2, 3, 96, 96, seed=2).to(device), torch.tensor([3.5, 4.0], device=device)
    peaks = {}
    for mode in ('direct', 'checkpoint'):
        net = NODEVDSR(num_feat=16, num_layer=6, ode={'method': 'rk4', 'step_size': 1.0, **GRAD_MODES[mode]})
        net = randomized(net).to(device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        net(x, scale).square().mean().backward()
        torch.cuda.synchronize(device)
        peaks[mode] = torch.cuda.max_memory_allocated(device) - start
        del net
    assert peaks['checkpoint'] < peaks['direct'] / 3, peaks


# ---- model -----------------------------------------------------------------------------------------------


def model_opt(root, device, ema_decay=0.5):
    """Options as BasicSR's parse_options leaves them: a tiny NODE-VDSR on ``device``."""
    return make_opt(root, train={'ema_decay': ema_decay}, num_gpu=1 if device.type == 'cuda' else 0)


def train_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(2, 3, 20, 20, generator=gen), 'gt': torch.rand(2, 3, 20, 20, generator=gen),
            'scale': torch.tensor([2.0, 3.4], dtype=torch.float64)}


def test_model_training_step_on_device_equals_cpu(tmp_path, device, ieee_fp32):
    cpu = NODESRModel(model_opt(tmp_path / 'cpu', torch.device('cpu')))
    dev = NODESRModel(model_opt(tmp_path / 'dev', device))
    randomized(cpu.net_g)
    dev.net_g.load_state_dict(cpu.net_g.state_dict())
    dev.net_g_ema.load_state_dict(cpu.net_g_ema.state_dict())
    assert dev.device.type == device.type and next(dev.net_g.parameters()).device == device
    before = [p.detach().clone() for p in dev.net_g.parameters()]
    for model in (cpu, dev):
        model.feed_data(train_batch())
        model.optimize_parameters(1)
    assert dev.lq.device == device and dev.output.device == device
    assert dev.get_current_log()['l_pix'] == pytest.approx(cpu.get_current_log()['l_pix'], rel=1e-5)
    for a, b in zip(dev.net_g.parameters(), cpu.net_g.parameters()):
        assert close(a.grad, b.grad)
    assert any(not torch.equal(a, b) for a, b in zip(before, dev.net_g.parameters()))
    assert next(dev.net_g_ema.parameters()).device == device
    for model in (cpu, dev):  # validation path: the EMA network under no_grad
        model.feed_data({'lq': train_batch(1)['lq'], 'scale': torch.tensor([2.5, 2.5])})
        model.test()
    assert dev.output.device == device and close(dev.output, cpu.output)


def test_prefetcher_and_pinned_memory_feed_a_training_step(tmp_path, device):
    """BasicSR's data path: pinned batches through CUDAPrefetcher on a GPU, CPUPrefetcher on the CPU."""
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
    write_images(str(tmp_path / 'hr'), [(40, 40), (44, 40), (40, 48), (42, 42)])
    cuda = device.type == 'cuda'
    ds_opt = {'name': 'toy', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': str(tmp_path / 'hr'),
              'io_backend': {'type': 'disk'}, 'phase': 'train', 'scale_range': [1.1, 4.0], 'scale_step': 0.1,
              'gt_size': 16, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'pin_memory': cuda,
              'prefetch_mode': 'cuda' if cuda else None}
    opt = model_opt(tmp_path, device, ema_decay=0)
    loader = build_dataloader(build_dataset(ds_opt), ds_opt, num_gpu=opt['num_gpu'], dist=False, seed=0)
    prefetcher = CUDAPrefetcher(loader, opt) if cuda else CPUPrefetcher(loader)
    batch = prefetcher.next()
    if cuda:
        assert batch['lq'].device.type == 'cuda' and batch['gt'].device.type == 'cuda'
    model = NODESRModel(opt)
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert model.lq.device == device and np.isfinite(model.get_current_log()['l_pix'])


def test_cudnn_flags_give_the_same_result(device, ieee_fp32):
    """cudnn.benchmark (BasicSR's trainer sets it) and deterministic mode leave the output unchanged."""
    net = on(device, randomized(NODEVDSR(num_feat=8, num_layer=4, ode={'method': 'rk4'}), std=0.05).eval())
    x = rand(1, 3, 33, 29, seed=3).to(device)
    with torch.no_grad():
        ref = net(x, 2.6)
        for benchmark, deterministic in ((True, False), (False, True)):
            with torch.backends.cudnn.flags(enabled=True, benchmark=benchmark, deterministic=deterministic,
                                            allow_tf32=False):
                assert close(net(x, 2.6), ref, 1e-5), (benchmark, deterministic)


def test_ddp_in_one_process_group_equals_plain_training(tmp_path, device, ieee_fp32):
    """One-rank process group (NCCL on a GPU, gloo on the CPU): DDP's gradients are the plain ones."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    net = randomized(NODEVDSR(num_feat=6, num_layer=3, ode={'method': 'rk4', 'num_steps': 2, 'checkpoint': True}))
    x, scale = rand(2, 3, 12, 10, seed=4).to(device), torch.tensor([1.5, 3.7], device=device)
    ref = grads(on(device, net), x, scale)
    dist.init_process_group(backend, init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(on(device, net), device_ids=[device.index] if device.type == 'cuda' else None)
        got = grads(ddp, x, scale)
    finally:
        dist.destroy_process_group()
    for a, b in zip(got, ref):
        assert close(a, b, 1e-6)


# ---- tiling ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['NODEVDSR', 'NODERDN', 'VDSRt'])
def test_tiling_on_device_equals_untiled(name, device, ieee_fp32):
    net = on(device, randomized(ARCHS[name](), std=0.05).eval())
    x, scale = rand(2, 3, 29, 23, seed=5).to(device), torch.tensor([2.3, 1.6], device=device)
    with torch.no_grad():
        whole = net(x, scale)
        net.set_tiling(8)
        tiled = net(x, scale)
    assert tiled.device == device and close(tiled, whole, 1e-5)


def test_tiling_gradients_on_device_equal_cpu(device, ieee_fp32):
    net = randomized(NODEVDSR(num_feat=6, num_layer=3, ode={'method': 'rk4', 'num_steps': 2, 'checkpoint': True}))
    net.set_tiling(8)
    x = rand(1, 3, 20, 20, seed=6)
    for a, b in zip(grads(on(device, net), x.to(device), 2.5), grads(net, x, 2.5)):
        assert close(a, b)


def test_tiling_lowers_peak_cuda_memory(device):
    cuda_only(device)
    net = randomized(NODEVDSR(num_feat=32, num_layer=4, ode={'method': 'rk4', 'num_steps': 1})).to(device).eval()
    x = rand(1, 3, 384, 384, seed=7).to(device)
    peaks = {}
    with torch.no_grad():
        for tile in (None, 64):
            net.set_tiling(tile)
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            start = torch.cuda.memory_allocated(device)
            net(x, 2.0)
            torch.cuda.synchronize(device)
            peaks[tile] = torch.cuda.max_memory_allocated(device) - start
    assert peaks[64] < peaks[None] / 2, peaks


# ---- Python API ------------------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp('models')))


def test_api_on_device_equals_cpu(tiny_ckpt, device, ieee_fp32):
    cpu, dev = load_model(tiny_ckpt), load_model(tiny_ckpt, device=device)
    assert next(dev.net.parameters()).device == device
    img = np.random.default_rng(0).integers(0, 256, (13, 17, 3)).astype(np.uint8)
    out = dev.upscale(img, scale=2.5)
    assert out.dtype == np.uint8 and out.shape == (32, 42, 3)
    assert np.abs(out.astype(int) - cpu.upscale(img, scale=2.5).astype(int)).max() <= 1
    x = rand(2, 3, 9, 11, seed=8)
    sr = dev.upscale(x.to(device), scale=1.7)  # a tensor comes back on its own device
    assert sr.device == x.to(device).device and sr.shape == (2, 3, 15, 18)
    assert close(sr, cpu.upscale(x, scale=1.7), 1e-5)
    whole = dev.super_resolve(x, 2.6)
    tiled = dev.super_resolve(x, 2.6, tile=8)
    assert close(tiled, whole, 1e-5) and dev.net.tile is None
    sr, states = dev.super_resolve(x[0], 3.0, trajectory=3)
    assert [t for t, _ in states] == pytest.approx([3.0, 2.0, 1.0]) and states[-1][1].shape == sr.shape


def test_auto_device_picks_cuda_when_there_is_one():
    assert resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
