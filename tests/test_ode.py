"""The ODE integrator (nodesr_arch/archs/ode.py) and tiling (archs/tiling.py) on known fields and tiny nets."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import one_thread_fixture, randomized
from nodesr_arch.archs.node_util import NODEBase
from nodesr_arch.archs.ode import ODEIntegrator, scale_at, u_at
from nodesr_arch.archs.rdn_arch import NODERDN, RDNt
from nodesr_arch.archs.tiling import conv_receptive_radius, tile_bounds
from nodesr_arch.archs.vdsr_arch import NODEVDSR, VDSR, VDSRt
from nodesr_arch.scales import check_scales as check_scale


class TimesT(nn.Module):
    """``f(I, t) = 0.2 t I`` has ``I(t1) = I(t0) exp(0.1 (t1^2 - t0^2))``. Reads the t channel."""

    def forward(self, inp):
        return 0.2 * inp[:, -1:] * inp[:, :-1]


def exact(x, t0, t1=1.0):
    return x * math.exp(0.1 * (t1**2 - t0**2))


def rel_error(x, t0, **ode):
    return ((solve(x, t0, **ode) - exact(x, t0)).abs() / exact(x, t0).abs()).max().item()


def tiny_vdsr(**ode):
    return randomized(NODEVDSR(num_feat=8, num_layer=4, ode=ode))


one_thread = one_thread_fixture()


@pytest.fixture
def x64():
    return torch.rand(2, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def solve(x, t0, **ode):
    return ODEIntegrator(TimesT(), **ode)(x, t0)


# relative errors at x3 with 16 steps (h = 0.125) are about 5e-2, 1e-3 and 4e-8: bounds at ~1.3x
@pytest.mark.parametrize('method, tol', [('euler', 6e-2), ('midpoint', 1.5e-3), ('rk4', 5e-8)])
def test_fixed_grid_methods_land_within_their_error(x64, method, tol):
    assert rel_error(x64, 3.0, method=method, num_steps=16) < tol


@pytest.mark.parametrize('method, order', [('euler', 1), ('midpoint', 2), ('rk4', 4)])
def test_error_shrinks_at_the_method_order(x64, method, order):
    errs = [rel_error(x64, 3.0, method=method, num_steps=n) for n in (16, 32)]
    assert math.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.3)


def test_dopri5_meets_its_tolerance(x64):
    integ = ODEIntegrator(TimesT(), method='dopri5', rtol=1e-7, atol=1e-9)
    err = (integ(x64, 2.7) - exact(x64, 2.7)).abs().max().item()
    assert err < 1e-6
    assert integ.nfe > 6  # it really adapted (more than one dopri5 step)


def test_step_size_rule_counts_steps():
    x = torch.rand(2, 3, 4, 4)
    integ = ODEIntegrator(TimesT(), method='rk4', step_size=1.0)
    for scale, steps in ((2.0, 1), (3.0, 2), (4.0, 3), (2.5, 2), (1.1, 1), ([2.0, 4.0], 3)):
        integ(x, torch.tensor(scale) if isinstance(scale, list) else scale)
        assert integ.nfe == 4 * steps, scale  # rk4: 4 evaluations per step
    integ = ODEIntegrator(TimesT(), method='euler', step_size=0.1)
    integ(x, 1.3)
    assert integ.nfe == 3


def test_mixed_scales_with_num_steps_equal_per_sample_solves():
    net = tiny_vdsr(method='rk4', num_steps=3)
    x = torch.rand(3, 3, 12, 10, generator=torch.Generator().manual_seed(2))
    scales = torch.tensor([1.5, 3.7, 2.2], dtype=torch.float64)
    batch = net(x, scales)
    for i in range(3):
        alone = net(x[i:i + 1], float(scales[i]))
        assert torch.allclose(batch[i:i + 1], alone, atol=1e-5, rtol=0)


def test_mixed_scales_closed_form(x64):
    out = solve(x64, torch.tensor([2.0, 3.5]), method='rk4', num_steps=32)
    assert torch.allclose(out[0], exact(x64[0], 2.0), atol=1e-7)
    assert torch.allclose(out[1], exact(x64[1], 3.5), atol=1e-7)


def test_scale_one_returns_the_input():
    net = tiny_vdsr()
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(net(x, 1.0), x)
    assert net.ode.nfe == 0
    out = net(x, torch.tensor([1.0, 2.0]))  # a sample at scale 1 in a mixed batch stays unchanged
    assert torch.equal(out[0], x[0])
    assert not torch.allclose(out[1], x[1])


@pytest.mark.parametrize('bad', [0.5, 0.999, float('nan'), float('inf'), -float('inf'), 'abc', '2', True, None,
                                 [], [2.0, float('nan')], torch.tensor([2.0, 0.5])])
def test_bad_scales_raise_value_error_naming_the_scale(bad):
    with pytest.raises(ValueError, match='scale'):
        check_scale(bad, 2)
    with pytest.raises(ValueError, match='scale'):
        tiny_vdsr()(torch.rand(2, 3, 4, 4), bad)


def test_scale_count_must_match_batch():
    with pytest.raises(ValueError, match='batch of 3'):
        check_scale([2.0, 3.0], 3)


@pytest.mark.parametrize('ode, match', [({'method': 'rk5'}, 'method'), ({'num_steps': 0}, 'num_steps'),
                                        ({'num_steps': 2.5}, 'num_steps'), ({'step_size': 0}, 'step_size'),
                                        ({'step_size': 1.0, 'num_steps': 2}, 'not both'),
                                        ({'steps': 3}, 'unknown key'), ({'rtol': -1}, 'rtol')])
def test_bad_ode_options_raise(ode, match):
    with pytest.raises(ValueError, match=match):
        NODEVDSR(num_feat=4, num_layer=2, ode=ode)


def test_set_ode_switches_step_rule_and_keeps_weights():
    net = tiny_vdsr(step_size=1.0)
    x = torch.rand(1, 3, 6, 6)
    before = net(x, 3.0)
    net.set_ode(num_steps=2)
    assert net.ode.num_steps == 2 and net.ode.step_size is None
    assert torch.equal(net(x, 3.0), before)  # step_size 1.0 at x3 is also 2 steps
    net.set_ode(method='euler', step_size=0.5)
    net(x, 3.0)
    assert net.ode.nfe == 4


def grads(net, x, scale):
    net.zero_grad()
    net(x, scale).square().mean().backward()
    return [p.grad.clone() for p in net.parameters()]


def saved_bytes(fn):
    """Bytes of the distinct tensors autograd saves for backward while ``fn`` runs (its real memory
    cost between forward and backward)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out


def test_checkpoint_same_gradients_less_saved_memory():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    scale = torch.tensor([2.5, 3.0])
    direct = tiny_vdsr(num_steps=2)
    ckpt = tiny_vdsr(num_steps=2, checkpoint=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads(direct, x, scale), grads(ckpt, x, scale)))
    mem_direct, _ = saved_bytes(lambda: direct(x, scale))
    mem_ckpt, _ = saved_bytes(lambda: ckpt(x, scale))
    assert mem_ckpt < mem_direct / 3, (mem_ckpt, mem_direct)


def max_rel_diff(grads_a, grads_b):
    return max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(grads_a, grads_b))


def test_adjoint_gradients_close_to_direct():
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    scale = torch.tensor([2.0, 3.0])
    direct = grads(tiny_vdsr(num_steps=8), x, scale)
    adjoint = grads(tiny_vdsr(num_steps=8, adjoint=True), x, scale)
    assert max_rel_diff(direct, adjoint) < 1e-2


def smooth_net(**ode):
    func = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 3, 3, padding=1))
    return randomized(NODEBase(func, ode=ode), std=0.3).double()


def test_adjoint_converges_to_direct_at_rk4_order():
    """With a smooth ``f`` the two gradients differ by O(h^4) (ReLU kinks blur this for VDSR)."""
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    scale = torch.tensor([2.0, 3.0])
    diffs = [max_rel_diff(grads(smooth_net(num_steps=n), x, scale),
                          grads(smooth_net(num_steps=n, adjoint=True), x, scale)) for n in (8, 16)]
    assert diffs[1] < 1e-3 and diffs[0] / diffs[1] > 10, diffs


def test_adjoint_backward_after_another_forward_uses_its_own_scales():
    x = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(5))
    net = tiny_vdsr(num_steps=2, adjoint=True)
    expected = grads(net, x, 3.0)
    net.zero_grad()
    loss = net(x, 3.0).square().mean()
    net(x, 1.5)  # another batch between forward and backward (e.g. a validation call)
    loss.backward()
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(net.parameters(), expected))


def test_adjoint_dopri5_matches_direct():
    ode = dict(method='dopri5', rtol=1e-5, atol=1e-7)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    direct, adjoint = smooth_net(**ode).float(), smooth_net(adjoint=True, **ode).float()
    assert max_rel_diff(grads(direct, x, 2.5), grads(adjoint, x, 2.5)) < 1e-3
    assert adjoint.ode.nfe > direct.ode.nfe  # the gradient really came from a backward solve


def test_trajectory_states_follow_the_closed_form(x64):
    integ = ODEIntegrator(TimesT(), method='rk4', num_steps=16)
    t_eval = [3.0, 2.5, 1.7, 1.0]
    states = integ(x64, 3.0, t_eval=t_eval)
    assert states.shape == (4, ) + x64.shape
    assert torch.equal(states[0], x64)
    for state, t in zip(states, t_eval):
        assert torch.allclose(state, exact(x64, 3.0, t), atol=1e-5)


def test_trajectory_on_the_grid_matches_the_plain_solve():
    net = tiny_vdsr(step_size=1.0)
    x = torch.rand(1, 3, 8, 8)
    states = net(x, 3.0, t_eval=[2.0, 1.0])
    assert torch.allclose(states[-1], net(x, 3.0), atol=1e-6)
    assert net.ode.nfe == 8  # grid 3 -> 2 -> 1: two rk4 steps, no extra ones


def test_trajectory_rejects_bad_requests():
    net = tiny_vdsr()
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match='lie in'):
        net(x, 2.0, t_eval=[3.0])
    with pytest.raises(ValueError, match='t_eval'):
        net(x, 2.0, t_eval=[0.5])
    with pytest.raises(ValueError, match='one scale'):
        net(x, torch.tensor([2.0, 3.0]), t_eval=[1.0])


# ---- tiling -------------------------------------------------------------------------------------------


def test_tile_bounds_cover_evenly():
    assert tile_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert tile_bounds(2050, 512) == [(i * 410, (i + 1) * 410) for i in range(5)]
    assert tile_bounds(48, 16, multiple=8) == [(0, 16), (16, 32), (32, 48)]
    assert all((a % 8, b % 8) == (0, 0) for a, b in tile_bounds(56, 24, multiple=8))


TILED_NETS = {
    'NODEVDSR': lambda: tiny_vdsr(num_steps=2),
    'NODERDN': lambda: randomized(NODERDN(num_feat=6, num_block=2, num_conv=2, num_grow=4)),
    'VDSRt': lambda: randomized(VDSRt(num_feat=6, num_layer=4)),
    'RDNt': lambda: randomized(RDNt(num_feat=6, num_block=2, num_conv=2, num_grow=4)),
}


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('name', sorted(TILED_NETS))
def test_tiling_equals_untiled(name, dtype):
    net = TILED_NETS[name]().to(dtype)
    x = torch.rand(2, 3, 29, 23, dtype=dtype, generator=torch.Generator().manual_seed(6))
    scale = torch.tensor([2.3, 1.6])
    whole = net(x, scale)
    net.set_tiling(8)
    assert net.tile_pad == net.receptive_radius()
    assert (net(x, scale) - whole).abs().max() < (1e-5 if dtype == torch.float32 else 1e-12)
    if dtype == torch.float64:  # one pixel short of the radius differs, so the test can fail
        net.set_tiling(8, net.receptive_radius() - 1)
        assert (net(x, scale) - whole).abs().max() > 1e-9
    net.set_tiling(None)
    assert torch.equal(net(x, scale), whole)


def test_receptive_radii():
    assert NODEVDSR(num_feat=4, num_layer=20).receptive_radius() == 20
    assert NODERDN(num_feat=4, num_block=3, num_conv=2, num_grow=4).receptive_radius() == 3 * 2 + 4
    assert VDSR(num_feat=4, num_layer=5).receptive_radius() == 5
    with pytest.raises(ValueError, match='strided'):
        conv_receptive_radius(nn.Conv2d(3, 3, 3, stride=2))


def test_tiling_bounds_activation_memory():
    net = tiny_vdsr(num_steps=1)
    largest = []

    def hook(module, inp, out):
        largest.append(out.numel())

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        net(x, 2.0)
        whole = max(largest)
        largest.clear()
        net.set_tiling(16)
        net(x, 2.0)
    assert whole == 8 * 64 * 64
    assert max(largest) <= 8 * (16 + 2 * net.tile_pad)**2 < whole / 4


def test_tiling_gradients_and_checkpoint_equal_untiled():
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(7))
    ref = grads(tiny_vdsr(num_steps=2), x, 2.5)
    tiled = grads(tiny_vdsr(num_steps=2, checkpoint=True).set_tiling(8), x, 2.5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ref, tiled))


def test_tiling_options_are_checked():
    net = tiny_vdsr()
    for bad in (0, -3, 2.5, '8'):
        with pytest.raises(ValueError, match='tile'):
            net.set_tiling(bad)
    with pytest.raises(ValueError, match='tile_pad'):
        net.set_tiling(8, -1)
    unknown = NODEBase(nn.Conv2d(4, 3, 3, padding=1))
    assert unknown.receptive_radius() is None
    with pytest.raises(ValueError, match='receptive radius'):
        unknown.set_tiling(8)
    assert unknown.set_tiling(8, 2).tile == 8
    assert unknown.set_tiling(np.int64(8), np.int32(2)).tile_pad == 2


def test_tiling_survives_set_ode():
    net = tiny_vdsr().set_tiling(8)
    net.set_ode(num_steps=3)
    # the network holds the one tiling state; the new integrator evaluates f on its tiles
    assert net.tile == 8 and net.tile_pad == net.receptive_radius()
    sides = []
    net.func.register_forward_pre_hook(lambda module, args: sides.append(max(args[0].shape[-2:])))
    net(torch.rand(1, 3, 30, 17), 2.5)
    assert len(sides) > 3 and max(sides) <= 8 + 2 * net.tile_pad < 30


def test_classic_vdsr_tiles_too():
    net = randomized(VDSR(num_feat=6, num_layer=4))
    x = torch.rand(1, 3, 30, 17)
    whole = net(x)
    assert (net.set_tiling(8)(x) - whole).abs().max() < 1e-5


class Constant(nn.Module):
    """``f = 1`` everywhere, so one step of any method is exact."""

    def forward(self, inp):
        return torch.ones_like(inp[:, :-1])


def test_sqrt_time_is_the_paper_ode_with_a_scaled_field(x64):
    # with g = 1 the sqrt-time solve gives I(1) = I(t0) - sqrt(t0 - 1), the linear one I(t0) - (t0 - 1)
    scales = torch.tensor([1.1, 3.0], dtype=torch.float64)
    for time, drop in (('linear', scales - 1), ('sqrt', (scales - 1).sqrt())):
        out = ODEIntegrator(Constant(), num_steps=1, time=time)(x64, scales)
        assert torch.allclose(out, x64 - drop.view(-1, 1, 1, 1), atol=1e-12)
    # its field is dI/dt = g / (2 sqrt(t - 1)): solving f = 0.2 t I through sqrt time with
    # g = f * 2 sqrt(t - 1) lands on the paper's closed form
    integ = ODEIntegrator(TimesTSqrt(), method='rk4', num_steps=64, time='sqrt')
    assert torch.allclose(integ(x64, 2.5), exact(x64, 2.5), rtol=1e-6)
    t0 = torch.tensor([1.1, 2.0, 4.0], dtype=torch.float64)
    for u in (0.0, 0.3, 1.0):
        t, _ = scale_at(t0, u, 'sqrt')
        assert [u_at(float(a), float(b), 'sqrt') for a, b in zip(t0, t)] == pytest.approx([u] * 3)


class TimesTSqrt(nn.Module):
    """``dI/dtau`` of :class:`TimesT` with ``tau = sqrt(t - 1)``: ``0.2 t I 2 sqrt(t - 1)``."""

    def forward(self, inp):
        t = inp[:, -1:]
        return 0.2 * t * inp[:, :-1] * 2 * (t - 1).clamp_min(0).sqrt()


def test_sqrt_time_steps_unrolled_and_refused_names():
    from nodesr_arch.unrolled import UnrolledNODE
    integ = ODEIntegrator(TimesT(), step_size=1.0, time='sqrt')
    assert [integ.steps_for(torch.tensor([s])) for s in (1.1, 2.0, 4.0, 5.0)] == [1, 1, 2, 2]
    net = tiny_vdsr(method='rk4', num_steps=2, time='sqrt')
    x = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(4))
    scales = torch.tensor([1.1, 3.3])
    assert torch.allclose(UnrolledNODE(net)(x, scales), net(x, scales), atol=1e-5)
    with pytest.raises(ValueError, match='time must be one of'):
        ODEIntegrator(TimesT(), time='log')


def test_every_torchdiffeq_method_is_accepted_and_kinds_come_from_its_classes(x64):
    from torchdiffeq._impl.odeint import SOLVERS
    from torchdiffeq._impl.solvers import FixedGridODESolver

    from nodesr_arch.archs import solvers
    assert set(solvers.methods()) == set(SOLVERS)
    for method, cls in SOLVERS.items():
        ODEIntegrator(TimesT(), method=method)
        assert solvers.is_fixed_grid(method) == issubclass(cls, FixedGridODESolver), method
    assert 'fixed_adams' in solvers.FIXED_GRID_METHODS  # refused by the old hard-coded list
    assert rel_error(x64, 3.0, method='fixed_adams', num_steps=32) < 1e-3


def test_a_solver_torchdiffeq_adds_is_accepted(x64, monkeypatch):
    """tsit5 and the implicit solvers of newer torchdiffeq releases: accepted as soon as torchdiffeq has them,
    adaptive or fixed-grid as their classes say (stood in for here by dopri5's and euler's classes)."""
    from torchdiffeq._impl.odeint import SOLVERS
    monkeypatch.setitem(SOLVERS, 'tsit5', SOLVERS.get('tsit5', SOLVERS['dopri5']))
    monkeypatch.setitem(SOLVERS, 'implicit_euler', SOLVERS.get('implicit_euler', SOLVERS['euler']))
    tsit5 = ODEIntegrator(TimesT(), method='tsit5', rtol=1e-7, atol=1e-9)
    assert (tsit5(x64, 2.7) - exact(x64, 2.7)).abs().max().item() < 1e-6 and tsit5.nfe > 6
    implicit = ODEIntegrator(TimesT(), method='implicit_euler', step_size=0.5)
    implicit(x64, 3.0)
    assert implicit.nfe >= 4  # on the fixed grid: 4 steps of 0.5
