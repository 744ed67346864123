"""nodesr_arch.api: loading models (bundled, checkpoint, YAML, experiment folder) and enlarging images."""
import glob
import os
import shutil
import threading

import numpy as np
import pytest
import torch
import yaml

from helpers import save_tiny_model
from nodesr_arch import api, loading
from nodesr_arch.api import load_model, plan_size
from nodesr_arch.inference import enlarge_to


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp('models')
    return {'node': save_tiny_model(str(folder)), 'oneshot': save_tiny_model(str(folder), arch='VDSRt')}


@pytest.fixture(scope='module')
def up(models):
    return load_model(models['node'])


def _rng():
    return np.random.default_rng(0)


def test_load_from_checkpoint_yaml_and_experiment_folder(models, tmp_path, monkeypatch):
    ckpt = models['node']
    ref = load_model(ckpt)
    assert ref.name == 'tiny_NODEVDSR' and ref.is_ode
    x = torch.rand(1, 3, 6, 6)
    expected = ref.super_resolve(x, 2.0)

    # an option YAML with path.pretrain_network_g (relative to the YAML's folder)
    opt = yaml.safe_load(open(ckpt[:-4] + '.yml'))
    opt['path'] = {'pretrain_network_g': os.path.basename(ckpt)}
    yml = os.path.join(os.path.dirname(ckpt), 'train_tiny.yml')
    with open(yml, 'w') as f:
        yaml.safe_dump(opt, f)
    assert torch.allclose(load_model(yml).super_resolve(x, 2.0), expected)

    # BasicSR's experiment layout, DDP 'module.' prefixes and params_ema preferred over params
    exp = tmp_path / 'experiments' / 'exp1'
    (exp / 'models').mkdir(parents=True)
    state = torch.load(ckpt, weights_only=True)['params']
    junk = {k: torch.zeros_like(v) for k, v in state.items()}
    torch.save({'params': junk, 'params_ema': {'module.' + k: v for k, v in state.items()}},
               exp / 'models' / 'net_g_latest.pth')
    shutil.copy(ckpt[:-4] + '.yml', exp / 'train_exp1.yml')
    assert torch.allclose(load_model(str(exp / 'models' / 'net_g_latest.pth')).super_resolve(x, 2.0), expected)

    # a training YAML without pretrain_network_g finds experiments/NAME/models/net_g_latest.pth
    monkeypatch.chdir(tmp_path)
    opt = {'name': 'exp1', 'network_g': opt['network_g'], 'path': {'pretrain_network_g': None}}
    (tmp_path / 'exp1.yml').write_text(yaml.safe_dump(opt))
    assert torch.allclose(load_model('exp1.yml').super_resolve(x, 2.0), expected)


def test_bundled_model_is_the_default(models, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, 'WEIGHTS_DIR', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='no bundled model'):
        load_model()
    save_tiny_model(str(tmp_path), name=api.DEFAULT_MODEL)
    assert api.bundled_models() == [api.DEFAULT_MODEL]
    assert load_model().name == api.DEFAULT_MODEL
    assert load_model(api.DEFAULT_MODEL).name == api.DEFAULT_MODEL


def test_load_errors_name_the_problem(models, tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        load_model(str(tmp_path / 'missing.pth'))
    lonely = tmp_path / 'lonely.pth'
    shutil.copy(models['node'], lonely)
    with pytest.raises(FileNotFoundError, match='no option YAML'):
        load_model(str(lonely))
    (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
    shutil.copy(models['node'][:-4] + '.yml', tmp_path / 'bad.yml')
    with pytest.raises(ValueError, match='cannot read checkpoint'):
        load_model(str(tmp_path / 'bad.pth'))
    shutil.copy(models['oneshot'], tmp_path / 'mismatch.pth')
    shutil.copy(models['node'][:-4] + '.yml', tmp_path / 'mismatch.yml')
    with pytest.raises(ValueError, match='do not fit'):
        load_model(str(tmp_path / 'mismatch.pth'))
    with pytest.raises(ValueError, match='not usable'):
        load_model(models['node'], device='no_such_device')


@pytest.mark.parametrize('content,match', [
    (b'not a checkpoint', 'not a valid PyTorch checkpoint'),
    (b'', 'empty or truncated'),
    ('truncated', 'not a valid PyTorch checkpoint'),
    ('pickled model', r'Python objects \(torch.nn.modules.linear.Linear\) besides tensors'),
])
def test_bad_checkpoints_say_why_without_unsafe_advice(models, tmp_path, content, match):
    """torch's message advises weights_only=False (runs any code in the file): it is not passed on."""
    path = tmp_path / 'bad.pth'
    if content == 'truncated':
        content = open(models['node'], 'rb').read()[:300]
    if content == 'pickled model':
        torch.save(torch.nn.Linear(2, 2), path)
    else:
        path.write_bytes(content)
    shutil.copy(models['node'][:-4] + '.yml', tmp_path / 'bad.yml')
    with pytest.raises(ValueError, match=match) as e:
        load_model(str(path))
    assert 'weights_only' not in str(e.value) and str(e.value).startswith(f'{path}: cannot read checkpoint: ')


@pytest.mark.parametrize('text,match', [
    ('network_g:\n  type: NODEVDSR\n    num_feat: 4\n', r'not valid YAML \(mapping values .*line 3 column 13\)'),
    ('- a list\n', 'expected a mapping'),
    ('network_g: {type: Nope}\n', "network_g type 'Nope' is not an architecture BasicSR knows"),
    ('network_g: {num_feat: 4}\n', 'network_g has no type'),
    ('network_g: {type: NODEVDSR, bogus: 1}\n', "cannot build network_g .*unexpected keyword argument 'bogus'"),
    ('network_g: {type: NODEVDSR}\npath: 5\n', 'path must be a mapping'),
    ('network_g: {type: NODEVDSR}\npath: {pretrain_network_g: [a]}\n', 'pretrain_network_g must be a file path'),
], ids=['syntax', 'list', 'unknown arch', 'no type', 'bad argument', 'path', 'pretrain'])
def test_bad_option_yaml_says_why(models, tmp_path, capsys, text, match):
    yml = tmp_path / 'opt.yml'
    if text.startswith('network_g: {') and 'path:' not in text:
        text += f'path: {{pretrain_network_g: {models["node"]}}}\n'
    yml.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_model(str(yml))
    assert capsys.readouterr().out == ''  # BasicSR's registry prints for unknown names: not reached
    (tmp_path / 'bin.yml').write_bytes(b'\xff\xfe\x00garbage')
    with pytest.raises(ValueError, match='not UTF-8'):
        load_model(str(tmp_path / 'bin.yml'))


@pytest.mark.parametrize('shape,dtype', [((13, 17), np.uint8), ((13, 17, 3), np.uint8), ((13, 17, 4), np.uint8),
                                         ((13, 17, 3), np.uint16), ((13, 17, 2), np.uint16),
                                         ((13, 17, 3), np.float32)])
def test_upscale_numpy_keeps_dtype_and_mode(up, shape, dtype):
    rng = _rng()
    img = rng.random(shape).astype(dtype) if dtype == np.float32 else \
        rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    out = up.upscale(img, scale=2.5)
    assert out.dtype == dtype
    assert out.shape == (32, 42) + shape[2:]


def test_alpha_is_enlarged_bicubically_and_grey_runs_as_three_channels(up):
    rng = _rng()
    rgba = rng.integers(0, 256, (12, 10, 4)).astype(np.uint8)
    out = up.upscale(rgba, scale=3)
    alpha = enlarge_to(torch.from_numpy(rgba[..., 3].astype(np.float32) / 255)[None, None], 3, (36, 30))
    assert np.array_equal(out[..., 3], np.round(alpha[0, 0].clamp(0, 1).numpy() * 255).astype(np.uint8))
    assert np.array_equal(out[..., :3], up.upscale(np.ascontiguousarray(rgba[..., :3]), scale=3))

    grey = rng.integers(0, 256, (12, 10)).astype(np.uint8)
    sr3 = up.super_resolve(np.repeat(grey[..., None], 3, 2).astype(np.float32) / 255, 3)
    expected = np.round(np.clip(sr3.mean(2), 0, 1) * 255).astype(np.uint8)
    assert np.abs(up.upscale(grey, scale=3).astype(int) - expected).max() <= 1


def test_upscale_torch_tensors(up):
    x = torch.rand(2, 3, 9, 11)
    out = up.upscale(x, scale=1.7)
    assert out.shape == (2, 3, 15, 18) and out.dtype == torch.float32
    assert torch.allclose(out[1], up.upscale(x[1], scale=1.7), atol=1e-6)
    u8 = (x[0] * 255).round().to(torch.uint8)
    out8 = up.upscale(u8, size=(20, 30))
    assert out8.shape == (3, 20, 30) and out8.dtype == torch.uint8
    assert up.super_resolve(x[0], 2.0).shape == (3, 18, 22)


def test_sizes_widths_and_scales_beyond_training(up):
    img = _rng().integers(0, 256, (10, 16, 3)).astype(np.uint8)
    assert up.upscale(img, size=(37, 41)).shape == (37, 41, 3)  # another aspect ratio
    assert up.upscale(img, width=40).shape == (25, 40, 3)
    assert up.upscale(img, scale=6).shape == (60, 96, 3)
    assert up.upscale(img, scale=8.3).shape == (83, 132, 3)
    assert np.array_equal(up.upscale(img, scale=1), img)


@pytest.mark.parametrize('kwargs,match', [(dict(scale=0.5), '>= 1'), (dict(scale=float('nan')), 'finite'),
                                          (dict(scale='two'), 'real number'), (dict(size=(5, 40)), 'smaller'),
                                          (dict(width=8), 'smaller'), (dict(), 'exactly one'),
                                          (dict(scale=2, size=(20, 32)), 'exactly one')])
def test_bad_requests(up, kwargs, match):
    with pytest.raises(ValueError, match=match):
        up.upscale(np.zeros((10, 16, 3), np.uint8), **kwargs)


def _nan_pixel(img):
    img = img.copy()
    img[3, 4, 1] = np.nan
    return img


@pytest.mark.parametrize('call,match', [
    (lambda up, img: up.upscale(img * 255, scale=2),
     r'values lie in \[0.0766\d*, 254.289\]; floats must lie in \[0, 1\]; for 0-255 data divide by 255'),
    (lambda up, img: up.upscale(torch.from_numpy(img * 255).permute(2, 0, 1), scale=2), 'divide by 255'),
    (lambda up, img: up.upscale(img - 0.25, scale=2), r'must lie in \[0, 1\]'),
    (lambda up, img: up.upscale(_nan_pixel(img), scale=2), r'1 NaN or infinite value \(the first at index \(3, 4, 1\)'),
    (lambda up, img: up.super_resolve(_nan_pixel(img), 2), 'NaN or infinite'),
    (lambda up, img: up.super_resolve(img * 255, 2), r'must lie in \[-0.5, 1.5\]; .*divide by 255'),
    (lambda up, img: up.upscale(np.zeros((0, 0, 3), np.uint8), scale=2), 'empty'),
    (lambda up, img: up.upscale(np.zeros((0, 0, 3), np.float32), size=(4, 4)), 'empty'),
    (lambda up, img: up.upscale(torch.zeros(3, 0, 5), width=8), 'empty'),
    (lambda up, img: up.super_resolve(np.zeros((0, 0, 3), np.float32), 2), 'empty'),
    (lambda up, img: up.super_resolve(img, 2, out_size=(9, 30)), 'out_size 9x30 is smaller than the input 10x12'),
    (lambda up, img: up.super_resolve(img, 2, out_size=(20, 0)), 'positive integer'),
], ids=['0-255', '0-255 tensor', 'negative', 'nan', 'nan super_resolve', '0-255 super_resolve', 'empty',
        'empty size', 'empty tensor', 'empty super_resolve', 'small out_size', 'zero out_size'])
def test_hostile_arrays_raise_clear_errors(up, call, match):
    img = _rng().random((10, 12, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        call(up, img)


def test_float_range_edges_are_accepted(up):
    img = _rng().random((10, 12, 3)).astype(np.float32)
    img[0, 0], img[0, 1] = 0, 1
    assert up.upscale(img, scale=2).shape == (20, 24, 3)
    # a bicubic enlargement overshoots [0, 1]: super_resolve takes it (the benchmarks pass such inputs)
    overshoot = enlarge_to(torch.from_numpy(np.round(img).transpose(2, 0, 1))[None], 2.0, (20, 24))
    assert overshoot.min() < 0 and overshoot.max() > 1
    assert up.super_resolve(overshoot, 2.0, out_size=(20, 24)).shape == (1, 3, 20, 24)


def test_plan_size():
    assert plan_size((10, 20), scale=2.5) == (2.5, (25, 50))
    assert plan_size((10, 20), size=(30, 40)) == (3.0, (30, 40))


def test_tiled_equals_untiled(up):
    img = _rng().random((23, 19, 3)).astype(np.float32)
    whole = up.super_resolve(img, 2.6)
    radius = up.net.receptive_radius()
    assert radius == 3
    for tile, pad in ((16, None), (10, radius), (7, 5)):
        tiled = up.super_resolve(img, 2.6, tile=tile, tile_pad=pad)
        assert np.abs(tiled - whole).max() < 1e-5, (tile, pad)
    rough = up.super_resolve(img, 2.6, tile=10, tile_pad=0)
    assert np.abs(rough - whole).max() > 1e-5  # too little padding shows the seams
    assert up.net.tile is None  # the call's tiling is never stored on the network


def test_threads_sharing_one_upscaler_tile_independently(models):
    """A tiled self-ensemble (8 calls of the network) paused inside its first while another thread runs
    untiled: each gets its own result (a tiling stored on the network changed the other 7 calls)."""
    up = load_model(models['node'])
    img = _rng().random((23, 19, 3)).astype(np.float32)
    whole, rough = up.super_resolve(img, 2.6), up.super_resolve(img, 2.6, self_ensemble=True, tile=10, tile_pad=0)
    inside, other_done, results = threading.Event(), threading.Event(), {}

    def pause_first_tiled_evaluation(module, args):
        if threading.current_thread().name == 'tiled' and not inside.is_set():
            inside.set()
            other_done.wait(30)

    def tiled():
        results['tiled'] = up.super_resolve(img, 2.6, self_ensemble=True, tile=10, tile_pad=0)

    handle = up.net.func.register_forward_pre_hook(pause_first_tiled_evaluation)
    worker = threading.Thread(target=tiled, name='tiled')
    worker.start()
    try:
        assert inside.wait(30)
        results['whole'] = up.super_resolve(img, 2.6)
    finally:
        other_done.set()
        worker.join(30)
        handle.remove()
    assert np.array_equal(results['whole'], whole) and np.array_equal(results['tiled'], rough)


def test_ode_overrides_and_one_shot_models(models):
    up = load_model(models['node'], ode={'method': 'euler', 'num_steps': 3})
    x = torch.rand(1, 3, 6, 6)
    up.super_resolve(x, 2.0)
    assert up.net.ode.method == 'euler' and up.net.ode.nfe == 3
    one = load_model(models['oneshot'])
    assert not one.is_ode and one.super_resolve(x, 2.0).shape == (1, 3, 12, 12)
    with pytest.raises(ValueError, match='not a NODE model'):
        load_model(models['oneshot'], ode={'num_steps': 2})
    with pytest.raises(ValueError, match='no trajectory'):
        one.super_resolve(x, 2.0, trajectory=3)


def test_self_ensemble_and_trajectory(up):
    img = _rng().random((11, 14, 3)).astype(np.float32)
    plain = up.super_resolve(img, 3.0)
    ens = up.super_resolve(img, 3.0, self_ensemble=True)
    by_hand = np.mean([up.super_resolve(np.ascontiguousarray(img[::fh, ::fw]), 3.0)[::fh, ::fw]
                       for fh in (1, -1) for fw in (1, -1)]
                      + [up.super_resolve(np.ascontiguousarray(img.transpose(1, 0, 2)[::fh, ::fw]), 3.0)
                         [::fh, ::fw].transpose(1, 0, 2) for fh in (1, -1) for fw in (1, -1)], axis=0)
    assert np.abs(ens - by_hand).max() < 1e-5 and np.abs(ens - plain).max() > 1e-3
    flipped = up.super_resolve(np.ascontiguousarray(img[:, ::-1]), 3.0, self_ensemble=True)
    assert np.abs(flipped[:, ::-1] - ens).max() < 1e-5

    sr, states = up.super_resolve(img, 3.0, trajectory=5)
    assert np.array_equal(sr, plain)
    assert [t for t, _ in states] == pytest.approx([3.0, 2.5, 2.0, 1.5, 1.0])
    assert all(s.shape == plain.shape for _, s in states)
    bicubic = enlarge_to(torch.from_numpy(img.transpose(2, 0, 1))[None], 3.0, plain.shape[:2])
    assert np.abs(states[0][1] - bicubic[0].numpy().transpose(1, 2, 0)).max() < 1e-6
    assert np.abs(states[-1][1] - plain).max() < 1e-3
    with pytest.raises(ValueError, match='at least 2'):
        up.super_resolve(img, 3.0, trajectory=1)
    out, rgba_states = up.upscale(np.zeros((8, 8, 4), np.uint8), scale=2, trajectory=3)
    assert out.shape == (16, 16, 4) and [s.shape for _, s in rgba_states] == [(16, 16, 4)] * 3


def _basicsr_load(net, path, param_key):
    """BasicSR's own loader: ``BaseModel.load_network`` (needs no model state beyond the method)."""
    from basicsr.models.base_model import BaseModel
    BaseModel.load_network(BaseModel.__new__(BaseModel), net, path, strict=True, param_key=param_key)
    return net


def test_params_ema_round_trip_basicsr_and_api(models, tmp_path):
    """A checkpoint with both BasicSR keys: BasicSR's loader and the API pick the same weights."""
    from basicsr.archs import build_network
    opt = yaml.safe_load(open(models['node'][:-4] + '.yml'))
    raw = torch.load(models['node'], weights_only=True)['params']
    ema = {k: v + 0.01 for k, v in raw.items()}
    ckpt = str(tmp_path / 'both.pth')
    torch.save({'params': raw, 'params_ema': ema}, ckpt)
    shutil.copy(models['node'][:-4] + '.yml', tmp_path / 'both.yml')
    for key, expected in (('params_ema', ema), ('params', raw)):
        net = _basicsr_load(build_network(dict(opt['network_g'])), ckpt, key)
        assert all(torch.equal(v, expected[k]) for k, v in net.state_dict().items())
    assert all(torch.equal(v, ema[k]) for k, v in load_model(ckpt).net.state_dict().items())
    # path.param_key_g chooses, and falls back to params when the key is absent, as BasicSR does
    for key, expected in (('params', raw), ('params_ema', ema)):
        yml = tmp_path / f'{key}.yml'
        yml.write_text(yaml.safe_dump({**opt, 'path': {'pretrain_network_g': ckpt, 'param_key_g': key}}))
        assert all(torch.equal(v, expected[k]) for k, v in load_model(str(yml)).net.state_dict().items())
    only_params = tmp_path / 'only_params.yml'
    only_params.write_text(yaml.safe_dump({**opt, 'path': {'pretrain_network_g': models['node'],
                                                           'param_key_g': 'params_ema'}}))
    assert all(torch.equal(v, raw[k]) for k, v in load_model(str(only_params)).net.state_dict().items())


@pytest.mark.parametrize('pth', sorted(glob.glob(os.path.join(api.WEIGHTS_DIR, '*.pth'))
                                       + glob.glob(os.path.join(os.path.dirname(__file__), os.pardir, 'docs',
                                                                'results', 'weights', '*.pth'))),
                         ids=os.path.basename)
def test_shipped_weights_hold_params_and_params_ema(pth):
    """EMA weights under params_ema and, as the same tensors stored once, under params."""
    from basicsr.archs import build_network
    state = torch.load(pth, weights_only=True)
    assert set(state) == {'params', 'params_ema'}
    assert all(state['params'][k].data_ptr() == v.data_ptr() for k, v in state['params_ema'].items())
    opt = yaml.safe_load(open(pth[:-4] + '.yml'))
    assert opt['checkpoint'].endswith('(params_ema)') and opt['weights'].startswith('params_ema: the EMA weights')
    net = _basicsr_load(build_network(dict(opt['network_g'])), pth, 'params_ema')
    assert all(torch.equal(v, state['params_ema'][k]) for k, v in net.state_dict().items())
    assert os.path.getsize(pth) < 1.1 * 4 * sum(v.numel() for v in state['params'].values())


def test_fixed_scale_model_at_another_scale_warns_and_is_labelled(models, tmp_path):
    """BasicSR's EDSR x2 at x2.5: its x2 output resized with bicubic, with a warning and a label."""
    import warnings

    from helpers import TINY_EDSR_X2, save_basicsr_model
    from nodesr_arch.data.scale_space import imresize
    from nodesr_arch.inference import FixedScaleWarning
    up = load_model(save_basicsr_model(str(tmp_path), TINY_EDSR_X2, 'EDSR'))
    assert up.fixed_scale == 2 and up.label(2) == 'EDSR' and up.label(2.5) == 'EDSR x2 + bicubic'
    x = torch.rand(1, 3, 8, 10)
    with warnings.catch_warnings():
        warnings.simplefilter('error', FixedScaleWarning)
        native = up.super_resolve(x, 2.0)  # its own scale: no warning
        node = load_model(models['node'])  # NODE models take any scale
        assert node.fixed_scale is None and node.label(2.5) == node.name
        node.super_resolve(x, 2.5)
    with pytest.warns(FixedScaleWarning, match=r'EDSR is a fixed-scale x2 network: at x2\.5 .*"EDSR x2 \+ bicubic"'):
        out = up.super_resolve(x, 2.5)
    assert torch.allclose(out, imresize(native, size=(20, 25)))
    with pytest.warns(FixedScaleWarning, match='at x3 '):
        assert up.upscale(np.zeros((8, 10, 3), np.uint8), scale=3).shape == (24, 30, 3)
    with warnings.catch_warnings():  # how a caller refuses instead
        warnings.simplefilter('error', FixedScaleWarning)
        with pytest.raises(FixedScaleWarning):
            up.super_resolve(x, 3.0)
