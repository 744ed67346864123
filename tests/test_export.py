"""``nodesr export`` and the unrolled solve it exports: equal to torchdiffeq's, exportable with dynamic
H x W, and (with onnxruntime) the ONNX graph equal to PyTorch within 1e-4."""
import copy
import importlib.util

import pytest
import torch

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.archs import build_network
from helpers import one_thread_fixture, randomized, save_tiny_model
from nodesr_arch.archs.solvers import ONE_STEP_METHODS
from nodesr_arch.unrolled import MAX_STEPS, UnrolledNODE

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


@pytest.mark.parametrize('method', sorted(ONE_STEP_METHODS))
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


@pytest.mark.parametrize('time, step_size', [('linear', 1.0), ('sqrt', 0.6)])
def test_scale_input_takes_the_steps_nodesr_infer_takes_at_each_scale(time, step_size):
    """No fixed count: each sample takes the network's step_size count at its scale, as alone through the
    network (what nodesr infer runs); the graph unrolls the count at max_scale, and larger scales take that."""
    net = tiny(step_size=step_size, time=time)
    module = UnrolledNODE(net, max_scale=4)
    assert (module.step_size, module.num_steps) == (step_size, net.ode.steps_for(torch.tensor([4.0])))
    x, scale = torch.rand(4, 3, 16, 18), torch.tensor([1.0, 1.7, 2.0, 3.9])
    with torch.no_grad():
        got = module(x, scale)
        for i in range(4):
            assert torch.allclose(got[i:i + 1], net(x[i:i + 1], scale[i:i + 1]), atol=1e-6)
        capped = copy.deepcopy(net).set_ode(num_steps=module.num_steps)
        assert torch.allclose(module(x[:1], torch.tensor([6.0])), capped(x[:1], 6.0), atol=1e-6)
        assert (module(x[:1], torch.tensor([2.0])) - capped(x[:1], 2.0)).abs().max() > 1e-5  # not the capped count


def test_the_step_count_is_bounded():
    net = tiny(step_size=1.0)
    with pytest.raises(ValueError, match=r'^999999 solver steps \(the count at scale 1e\+06\) is more than an '
                       f'unrolled graph holds \\(at most {MAX_STEPS}'):
        UnrolledNODE(net, 1e6)
    with pytest.raises(ValueError, match=f'at most {MAX_STEPS}'):
        UnrolledNODE(net, num_steps=MAX_STEPS + 1)
    with pytest.raises(ValueError, match='the count at scale 500'):
        UnrolledNODE(net, max_scale=500)
    assert UnrolledNODE(net, num_steps=MAX_STEPS).num_steps == MAX_STEPS


def test_nodesr_export_refuses_a_million_steps_in_one_line(tmp_path, capsys):
    from nodesr_arch.commands import export
    model = save_tiny_model(str(tmp_path / 'm'))
    out = tmp_path / 'big.onnx'
    assert export.main(['-o', str(out), '--model', model, '--scale', '1e6', '--no-check']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'more than an unrolled graph holds' in err[0] and not out.exists()


def test_nodesr_export_without_onnx_names_it_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from nodesr_arch.commands import export
    model = save_tiny_model(str(tmp_path / 'm'))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'onnx' else real(name, *a))
    out = tmp_path / 'out' / 'x2.onnx'
    assert export.main(['-o', str(out), '--model', model, '--scale', '2']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'onnx is not installed' in err[0] and not (tmp_path / 'out').exists()


@pytest.mark.parametrize('ode', [{'num_steps': 2}, {'step_size': 1.0}])
def test_torch_export_has_no_data_dependent_guard(ode):
    """The scale as an input and H x W dynamic: the graph holds no decision on their values."""
    module = UnrolledNODE(tiny(**ode), max_scale=4)
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


@needs_ort
def test_scale_input_graph_takes_the_step_rule_of_nodesr_infer(tmp_path, capsys):
    import onnx

    from nodesr_arch.commands import export
    model = save_tiny_model(str(tmp_path / 'm'))  # ode: step_size 1, rk4
    out = str(tmp_path / 's.onnx')
    assert export.main(['-o', out, '--model', model, '--scale-input']) == 0  # checks it against PyTorch, per sample
    printed = capsys.readouterr().out
    assert 'steps ceil((s - 1) / 1) at scale s, as nodesr infer; at most 3 (x4' in printed
    assert 'max abs difference' in printed
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta['nodesr.scale'] == 'input' and meta['nodesr.num_steps'].startswith('ceil((s - 1) / 1)')
