"""nodesr_arch.runtime / onnx_field: the field f in onnxruntime equals PyTorch's, is cached, and is refused clearly.

The equality and cache tests export two fields (about 10 s each on a loaded 2-core CPU), once per module,
into a temporary cache; they are skipped without the ``[onnx]`` extra. The refusals run without it.
"""
import os
import sys

import cv2
import numpy as np
import pytest
import torch

import nodesr_arch  # noqa: F401
from basicsr.archs import build_network
from nodesr_arch import onnx_field, runtime
from nodesr_arch.api import Upscaler, load_model
from nodesr_arch.commands.infer import main as infer_main
from nodesr_arch.inference import run_network

TOL = 1e-5


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    """A fresh export cache for this module (never the user's); skips without the ``[onnx]`` extra."""
    for name in ('onnxruntime', 'onnx', 'onnxscript'):
        pytest.importorskip(name, reason='the [onnx] extra is not installed')
    folder = tmp_path_factory.mktemp('cache')
    saved = os.environ.get('XDG_CACHE_HOME')
    os.environ['XDG_CACHE_HOME'] = str(folder)
    yield folder / 'nodesr_arch'
    if saved is None:
        os.environ.pop('XDG_CACHE_HOME')
    else:
        os.environ['XDG_CACHE_HOME'] = saved


def paper_size(arch):
    """A paper-size network (64 features, 20 layers) with random weights, its last conv not zero; NODE-VDSR
    with one midpoint step (2 evaluations of f: the test's cost, not its reach)."""
    torch.manual_seed(0)
    net = build_network({'type': arch} if arch == 'VDSRt' else {'type': arch, 'ode': {'method': 'midpoint',
                                                                                      'num_steps': 1}})
    torch.nn.init.normal_(net.func[-1].weight, std=0.01)
    return net


@pytest.fixture(scope='module')
def pairs(cache):
    """``{name: (torch Upscaler, onnxruntime Upscaler)}`` for the bundled model and NODE-VDSR / VDSR+t at paper
    size; the two of a pair share the network. The two paper-size networks get the same ``f`` (same seed, same
    layers), so they share one exported graph: the cache is keyed by ``f``, not by the network around it."""
    out = {'bundled': (load_model(runtime='torch'), load_model(runtime='onnxruntime'))}
    for arch in ('NODEVDSR', 'VDSRt'):
        net = paper_size(arch)
        out[arch] = (Upscaler(net, name=arch, runtime='torch'), Upscaler(net, name=arch, runtime='onnxruntime'))
    return out


def _image(h=40, w=36, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


@pytest.mark.parametrize('name', ['bundled', 'NODEVDSR', 'VDSRt'])
def test_onnxruntime_equals_torch_whole_tiled_and_self_ensemble(pairs, name):
    ref, fast = pairs[name]
    assert (ref.runtime, fast.runtime) == ('torch', 'onnxruntime')
    img = _image(16, 14) if name != 'bundled' else _image(32, 28)
    for kwargs in ({}, {'tile': 16}, {'tile': 12, 'tile_pad': 8}, {'self_ensemble': True}):
        a, b = ref.super_resolve(img, 2.0, **kwargs), fast.super_resolve(img, 2.0, **kwargs)
        assert np.abs(a - b).max() <= TOL, (name, kwargs)
    u8 = (img * 255).round().astype(np.uint8)
    a, b = ref.upscale(u8, 2.0).astype(int), fast.upscale(u8, 2.0).astype(int)
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01  # 8 bits: a level on a few pixels at most


def test_onnxruntime_equals_torch_trajectories_mixed_scales_and_solvers(pairs):
    ref, fast = pairs['bundled']
    img = _image(24, 20)
    a, traj_a = ref.super_resolve(img, 3.3, trajectory=3)
    b, traj_b = fast.super_resolve(img, 3.3, trajectory=3)
    assert np.abs(a - b).max() <= TOL
    assert all(np.abs(sa - sb).max() <= TOL for (_, sa), (_, sb) in zip(traj_a, traj_b))
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    scales = torch.tensor([2.0, 3.5])  # one solve, a scale per sample
    with torch.inference_mode():
        a, b = (run_network(up._runner, x, scales, out_size=(42, 35)) for up in (ref, fast))
    assert (a - b).abs().max() <= TOL
    try:
        for ode in ({'method': 'euler', 'num_steps': 3}, {'method': 'midpoint', 'step_size': 0.5}):
            ref.set_ode(**ode)
            fast.set_ode(**ode)
            a, b = ref.super_resolve(img, 2.5), fast.super_resolve(img, 2.5)
            assert np.abs(a - b).max() <= TOL and ref.nfe == fast.nfe > 0, ode
    finally:
        for up in (ref, fast):
            up.set_ode(method='rk4', step_size=1.0)


def test_second_load_does_not_export_and_new_weights_give_a_new_file(pairs, cache, monkeypatch):
    exported = sorted(os.listdir(cache))
    assert len([n for n in exported if n.endswith('.onnx')]) == 2 and not [n for n in exported if '.partial' in n]

    def no_export(*args, **kwargs):
        raise AssertionError('exported again')

    monkeypatch.setattr(onnx_field, 'export_field', no_export)
    again = load_model(runtime='onnxruntime')
    img = _image(16, 14)
    assert np.abs(again.super_resolve(img, 2.0) - pairs['bundled'][0].super_resolve(img, 2.0)).max() <= TOL
    auto = load_model(runtime='auto')  # measures once per thread count, kept beside the graph
    assert auto.runtime in ('torch', 'onnxruntime') and auto.runtime_reason.startswith('auto: ')
    assert load_model(runtime='auto').runtime_reason == auto.runtime_reason  # the same cached measurement

    monkeypatch.undo()
    calls = []

    def fake_export(func, in_channels, path, size_multiple=1):
        calls.append(path)
        open(path, 'wb').close()

    monkeypatch.setattr(onnx_field, 'export_field', fake_export)
    net = load_model(runtime='torch').net
    with torch.no_grad():
        net.func[0].weight[0, 0, 0, 0] += 1e-3
    path, fresh = onnx_field.cached_field(net.func, 4)
    assert fresh and calls == [path] and os.path.basename(path) not in exported
    assert onnx_field.cached_field(net.func, 4) == (path, False) and len(calls) == 1


def test_runtime_is_refused_clearly_where_it_cannot_run():
    with pytest.raises(ValueError, match='runtime must be one of torch, onnxruntime, auto'):
        load_model(runtime='tensorrt')
    with pytest.raises(ValueError, match='runtime onnxruntime: it runs fp32 only'):
        load_model(runtime='onnxruntime', amp='bf16')
    edsr = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_block': 1,
                          'upscale': 2})
    with pytest.raises(ValueError, match='EDSR has no NODE-SR field f to export'):
        Upscaler(edsr, runtime='onnxruntime')
    up = Upscaler(edsr, runtime='auto')
    assert up.runtime == 'torch' and 'no NODE-SR field' in up.runtime_reason


@pytest.fixture
def without_onnxruntime(monkeypatch):
    """onnxruntime as if not installed (an import of it raises ImportError)."""
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)


def test_missing_onnxruntime_is_one_clear_error_and_auto_falls_back(without_onnxruntime, tmp_path, capsys):
    with pytest.raises(ImportError, match=r'runtime onnxruntime needs onnxruntime, which is not installed: '
                                          r'pip install "nodesr_arch\[onnx\]"'):
        load_model(runtime='onnxruntime')
    up = load_model(runtime='auto')
    assert up.runtime == 'torch' and 'onnxruntime is not installed' in up.runtime_reason

    src = tmp_path / 'in.png'
    cv2.imwrite(str(src), (_image(12, 10) * 255).astype(np.uint8))
    out = tmp_path / 'out'
    assert infer_main(['-i', str(src), '-o', str(out), '--scale', '2', '--runtime', 'onnxruntime', '-q']) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ['nodesr infer: error: runtime onnxruntime needs onnxruntime, which is not installed: '
                     'pip install "nodesr_arch[onnx]"'] and not out.exists()
    assert infer_main(['-i', str(src), '-o', str(out), '--scale', '2', '--runtime', 'auto']) == 0
    assert 'nodesr infer: runtime torch (auto: onnxruntime is not installed' in capsys.readouterr().err


def test_default_runtime_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(runtime.RUNTIME_ENV, 'torch')
    assert runtime.default_runtime() == 'torch'
    monkeypatch.setenv(runtime.RUNTIME_ENV, 'fast')
    with pytest.raises(ValueError, match='NODESR_RUNTIME must be one of'):
        load_model()
