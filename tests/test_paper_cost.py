"""benchmarks/paper_cost.py (the GPU estimates of docs/reproducing.md): its step counts and the linear
scaling of saved activations it relies on."""
import pytest
import torch

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.archs import build_network
from helpers import load_script, one_thread_fixture

one_thread = one_thread_fixture()
cost = load_script('benchmarks/paper_cost.py')


def test_expected_steps():
    assert cost.expected_steps(1) == (pytest.approx(2.0), 3)  # 10 scales each need 1, 2 and 3 steps
    mean, top = cost.expected_steps(16)
    assert top == 3 and mean == pytest.approx(3 - (1 / 3)**16 - (2 / 3)**16)


def test_saved_activations_scale_with_pixels_and_leave_weights_out():
    torch.manual_seed(0)
    net = build_network({'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3, 'ode': {'num_steps': 1}})
    small, _ = cost.saved_bytes(net, torch.rand(1, 3, 12, 12), 2.0)
    large, _ = cost.saved_bytes(net, torch.rand(2, 3, 24, 12), 2.0)
    assert small > 0 and large == 4 * small
    with torch.autocast('cpu', dtype=torch.bfloat16):
        half, _ = cost.saved_bytes(net, torch.rand(1, 3, 12, 12), 2.0)
    assert half < 0.6 * small  # conv inputs kept in bf16; the weights' bf16 copies are not counted


def test_rival_costs_fit_their_models():
    """The rivals' fits: LIIF's step is linear in the queries, Meta-SR's in LR pixels at a fixed scale and
    in ``s^2`` at fixed LR pixels (with 1 LR pixel of difference at most between the two measurements)."""
    torch.manual_seed(0)
    enc = {'type': 'EDSRBody', 'num_feat': 4, 'num_block': 1}
    liif = build_network({'type': 'LIIF', 'encoder': enc, 'hidden_list': [8]})
    f = [cost.lr_step(liif, 8, 4.0, q)[0] for q in (64, 128, 192)]
    assert f[2] - f[1] == pytest.approx(f[1] - f[0], rel=1e-6) and f[1] > f[0]
    meta = build_network({'type': 'MetaSR', 'encoder': enc, 'hidden': 8})
    assert cost.lr_step(meta, 16, 2.0)[0] == pytest.approx(4 * cost.lr_step(meta, 8, 2.0)[0], rel=1e-6)
    f2, f3, f4 = (cost.lr_step(meta, 8, s)[0] for s in (2.0, 3.0, 4.0))
    assert (f4 - f3) / 7 == pytest.approx((f3 - f2) / 5, rel=1e-6)
