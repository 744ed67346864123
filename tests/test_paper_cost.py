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
