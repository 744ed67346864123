"""``nodesr export`` and the unrolled solve it exports: equal to torchdiffeq's, exportable with dynamic
H x W, and (with onnxruntime) the ONNX graph equal to PyTorch within 1e-4."""
import importlib.util

import pytest
import torch

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.archs import build_network
from helpers import one_thread_fixture, randomized, save_tiny_model
from nodesr_arch.unrolled import TABLEAUS, UnrolledNODE

one_thread = one_thread_fixture()
HAVE_ORT = all(importlib.util.find_spec(m) for m in ('onnx', 'onnxscript', 'onnxruntime'))
needs_ort = pytest.mark.skipif(not HAVE_ORT, reason='onnx, onnxscript or onnxruntime not installed ([onnx] extra)')


def tiny(arch='NODEVDSR', **ode):
    torch.manual_seed(0)
    opt = {'type': arch, 'num_feat': 8, 'ode': {'method': 'rk4', **ode}}
    opt.update({'num_layer': 3} if arch == 'NODEVDSR' else {'num_block': 2, 'num_conv': 2, 'num_grow': 4})
    return randomized(build_network(opt), std=0.05).eval()


@pytest.mark.parametrize('scale', [1.0, 2.0, 3.3, 4.0, 6.0])
def test_unrolled_equals_torchdiffeq_at_a_fixed_scale(scale):
    net = tiny(step_size=1.0)
    x = torch.rand(2, 3, 20, 17)
    with torch.no_grad():
        assert torch.allclose(UnrolledNODE(net, scale)(x), net(x, scale), atol=1e-6)


@pytest.mark.parametrize('method', sorted(TABLEAUS))
def test_unrolled_equals_torchdiffeq_with_the_scale_as_input(method):
    net = tiny(num_steps=2).set_ode(method=method)
    x, scale = torch.rand(2, 3, 16, 18), torch.tensor([1.7, 3.9])
    with torch.no_grad():
        assert torch.allclose(UnrolledNODE(net)(x, scale), net(x, scale), atol=1e-6)


def test_unrolled_refuses_what_it_cannot_fix():
    net = tiny()
    with pytest.raises(ValueError, match='dopri5.*cannot be unrolled'):
        UnrolledNODE(net, 2.0, method='dopri5')
    with pytest.raises(ValueError, match='give num_steps'):
        UnrolledNODE(net)  # step_size 1.0: the step count would depend on the scale input
    with pytest.raises(ValueError, match='>= 1'):
        UnrolledNODE(net, 0.5)
    with pytest.raises(ValueError, match='not a NODE-SR network'):
        UnrolledNODE(build_network({'type': 'VDSRt', 'num_feat': 4, 'num_layer': 2}), 2.0)
    with pytest.raises(ValueError, match='second input'):
        UnrolledNODE(net, num_steps=1)(torch.rand(1, 3, 8, 8))


def test_torch_export_has_no_data_dependent_guard():
    """The scale as an input and H x W dynamic: the graph holds no decision on their values."""
    module = UnrolledNODE(tiny(), num_steps=2)
    dims = {2: torch.export.Dim('h', min=2), 3: torch.export.Dim('w', min=2)}
    program = torch.export.export(module, (torch.rand(1, 3, 16, 16), torch.tensor([2.0])), dynamic_shapes=(dims, None))
    x, scale = torch.rand(1, 3, 11, 23), torch.tensor([3.5])
    with torch.no_grad():
        assert torch.allclose(program.module()(x, scale), module(x, scale), atol=1e-6)


@needs_ort
def test_nodesr_export_fixed_scale_matches_pytorch(tmp_path, capsys):
    import onnx

    from nodesr_arch.commands import export
    model = save_tiny_model(str(tmp_path / 'm'))
    out = str(tmp_path / 'x3.onnx')
    assert export.main(['-o', out, '--model', model, '--scale', '3']) == 0
    printed = capsys.readouterr().out
    assert 'rk4 x 2 steps' in printed and 'max abs difference' in printed
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta['nodesr.scale'] == '3' and meta['nodesr.num_steps'] == '2' and meta['nodesr.model'] == 'tiny_NODEVDSR'
    assert export.main(['-o', out, '--model', model, '--scale', '3']) == 1  # exists, no --force
    vdsrt = save_tiny_model(str(tmp_path / 'm'), arch='VDSRt')
    assert export.main(['-o', str(tmp_path / 't.onnx'), '--model', vdsrt, '--scale', '2']) == 1


@needs_ort
def test_scale_input_graph_matches_pytorch_at_other_sizes_and_scales(tmp_path):
    from nodesr_arch.commands.export import TOLERANCE, check_onnx, export_onnx
    net = tiny('NODERDN')
    path = str(tmp_path / 'rdn.onnx')
    module = export_onnx(net, path, num_steps=2)
    diff = check_onnx(path, net, module, sizes=((1, 21, 30), (3, 40, 19)))
    assert diff <= TOLERANCE
