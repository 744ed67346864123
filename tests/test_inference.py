"""nodesr_arch.inference: run_network (input sizes, scale or not) and the x8 self-ensemble."""
import numpy as np
import pytest
import torch
from torch import nn

import nodesr_arch  # noqa: F401
from nodesr_arch.archs.vdsr_arch import NODEVDSR, VDSR
from nodesr_arch.data.scale_space import enlarge, imresize
from nodesr_arch.inference import _D8, _forward_aug, enlarge_to, run_network, self_ensemble
from nodesr_arch.scales import output_size


class NearestX2(nn.Module):
    """A fixed-scale 'lr' network: nearest-neighbour x2, no scale input."""

    def forward(self, x):
        return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def test_output_size_floor_with_float_guard():
    assert output_size((10, 7), 2.5) == (25, 17)
    assert output_size((3, 3), 10 / 3) == (10, 10)  # 3 * 3.333.. is 9.999...
    assert output_size((17, 23), (2.0, 1.5)) == (34, 34)


@pytest.mark.parametrize('transpose', [False, True])
def test_self_ensemble_is_d8_equivariant(transpose):
    x = torch.rand(2, 3, 7, 11)

    def fn(t):  # deliberately not flip-equivariant
        return t.cumsum(-1) + 0.1 * t.cumsum(-2)

    out = self_ensemble(fn, x)
    assert out.shape == x.shape
    for aug in _D8:
        if aug[0] == transpose:
            assert torch.allclose(self_ensemble(fn, _forward_aug(x, *aug)), _forward_aug(out, *aug), atol=1e-5)
    # an equivariant function is unchanged by the ensemble
    assert torch.allclose(self_ensemble(lambda t: 2 * t + 1, x), 2 * x + 1, atol=1e-6)
    assert not torch.allclose(out, fn(x), atol=1e-3)


def test_untrained_node_net_returns_bicubic_enlargement():
    net = NODEVDSR(num_feat=4, num_layer=3).eval()  # last conv starts at zero: f = 0
    lq = np.random.default_rng(0).random((9, 13, 3)).astype(np.float32)
    x = torch.from_numpy(lq.transpose(2, 0, 1))[None]
    with torch.no_grad():
        out = run_network(net, x, 2.5)
    assert out.shape == (1, 3, 22, 32)
    ref = enlarge(lq, 2.5, (22, 32)).transpose(2, 0, 1)
    assert np.abs(out[0].numpy() - ref).max() < 1e-5


def test_run_network_calls_without_scale_and_takes_output_size_inputs():
    net = VDSR(num_feat=4, num_layer=3).eval()  # takes_scale False
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        out = run_network(net, x, 3.0, out_size=(24, 23))
        same = run_network(net, imresize(x, 3.0)[..., :24, :23], 3.0, out_size=(24, 23))
    assert out.shape == (1, 3, 24, 23)
    assert torch.allclose(out, same)


def test_run_network_lr_network_output_fitted_to_size():
    x = torch.rand(1, 3, 6, 5)
    out = run_network(NearestX2(), x, 2.0)  # input_size defaults to 'lr'
    assert torch.equal(out, NearestX2()(x))
    x3 = run_network(NearestX2(), x, 3.0)  # another scale: its x2 output is resized, not cropped
    assert torch.allclose(x3, imresize(NearestX2()(x), size=(18, 15)))
    x15 = run_network(NearestX2(), x, 1.5)
    assert torch.allclose(x15, imresize(NearestX2()(x), size=(9, 7)))
    odd = torch.rand(1, 3, 5, 5)
    assert torch.equal(run_network(NearestX2(), odd, 2.0, out_size=(9, 10)), NearestX2()(odd)[..., :9, :10])


def test_enlarge_to_aligned_by_scale_and_per_axis_for_sizes():
    x = torch.rand(1, 3, 10, 12)
    aligned = enlarge_to(x, 2.5, (25, 30))
    assert torch.allclose(aligned, imresize(x, 2.5)[..., :25, :30])
    stretched = enlarge_to(x, 3.0, (20, 36))  # x2 rows, x3 columns
    assert torch.allclose(stretched, imresize(x, size=(20, 36)))


def test_run_network_trajectory_and_ensemble_shapes():
    net = NODEVDSR(num_feat=4, num_layer=3).eval()
    torch.nn.init.normal_(net.func[-1].weight, 0, 0.01)
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        states = run_network(net, x, 3.0, t_eval=[3.0, 2.0, 1.0])
        plain = run_network(net, x, 3.0)
        ens = run_network(net, x, 3.0, ensemble=True)
    assert states.shape == (3, 1, 3, 18, 21)
    assert torch.allclose(states[0], enlarge_to(x, 3.0, (18, 21)), atol=1e-6)  # I(s) is the bicubic input
    assert torch.allclose(states[-1], plain, atol=1e-5)  # grid 3, 2, 1 is the solver's own
    assert ens.shape == plain.shape and not torch.equal(ens, plain)
