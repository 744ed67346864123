"""NODESRModel in-process: batches, non-finite guard, clipping, EMA, metrics, self-ensemble, tiling."""
import copy
import json
import os

import numpy as np
import pytest
import torch

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.data import build_dataset
from basicsr.utils import tensor2img
from benchmarks.common import tiny_train_options
from helpers import load_script, one_thread_fixture, randomized, write_images
from nodesr_arch.data.scale_space import imresize
from nodesr_arch.inference import enlarge_to
from nodesr_arch.metrics import image_metrics
from nodesr_arch.models.nodesr_model import NODESRModel, NonFiniteLossError

one_thread = one_thread_fixture()


def make_opt(tmp_path, is_train=True, net=None, train=None, val=None, num_gpu=0):
    """Options as BasicSR's parse_options leaves them, for the tiny NODE-VDSR of ``tiny_train_options`` (on the
    CPU unless ``num_gpu``), without datasets."""
    root = str(tmp_path)
    opt = tiny_train_options('tiny', total_iter=10, num_gpu=num_gpu, dist=False, rank=0, world_size=1,
                             is_train=is_train)
    opt['datasets'] = {}
    opt['network_g'] = net or opt['network_g']
    opt['path'].update(experiments_root=root, models=os.path.join(root, 'models'),
                       training_states=os.path.join(root, 'states'), visualization=os.path.join(root, 'vis'),
                       results_root=os.path.join(root, 'results'), log=root)
    opt['val'] = {'save_img': False, 'metrics': opt['val']['metrics'], **(val or {})}
    if is_train:
        opt['train']['scheduler']['milestones'] = [100]
        opt['train'].update(train or {})
    else:
        del opt['train']
    return opt


def batch(b=2, size=24, scale=2.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, 3, size, size, generator=gen)
    lq = enlarge_to(imresize(gt, 1 / scale), scale, (size, size))
    return {'lq': lq, 'gt': gt, 'scale': torch.full((b,), scale, dtype=torch.float64)}


def params(net):
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


def test_training_step_changes_weights_and_logs_loss(tmp_path):
    model = NODESRModel(make_opt(tmp_path))
    before = params(model.net_g)
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert not torch.equal(before, params(model.net_g))
    assert model.get_current_log()['l_pix'] > 0
    assert model.get_current_log()['nfe'] == 4  # rk4, step_size 1: one step at x2
    model.feed_data(batch(scale=3.5))
    model.optimize_parameters(2)
    assert model.get_current_log()['nfe'] == 12


def test_nonfinite_loss_skips_steps_then_stops(tmp_path):
    model = NODESRModel(make_opt(tmp_path, train={'max_nonfinite': 3}))
    bad = batch()
    bad['lq'][0, 0, 0, 0] = float('nan')
    before = params(model.net_g)
    model.feed_data(bad)
    model.optimize_parameters(1)
    model.optimize_parameters(2)
    assert torch.equal(before, params(model.net_g)), 'a non-finite step must leave the weights alone'
    assert model.nonfinite_count == 2
    model.feed_data(batch())  # a good step resets the count
    model.optimize_parameters(3)
    assert model.nonfinite_count == 0
    model.feed_data(bad)
    for it in (4, 5):
        model.optimize_parameters(it)
    with pytest.raises(NonFiniteLossError, match='max_nonfinite = 3'):
        model.optimize_parameters(6)


def test_grad_clip_bounds_the_gradient_norm(tmp_path):
    model = NODESRModel(make_opt(tmp_path, train={'grad_clip': 1e-4}))
    randomized(model.net_g, std=0.3)
    model.feed_data(batch())
    model.optimize_parameters(1)
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.net_g.parameters()])
    assert float(norm) <= 1e-4 * 1.01


def test_ema_is_updated_and_used_for_testing(tmp_path):
    model = NODESRModel(make_opt(tmp_path, train={'ema_decay': 0.5}))
    start = params(model.net_g_ema)
    model.feed_data(batch())
    model.optimize_parameters(1)
    expected = 0.5 * start + 0.5 * params(model.net_g)
    assert torch.allclose(params(model.net_g_ema), expected, atol=1e-7)
    assert model._eval_net() is model.net_g_ema


def test_low_res_batch_is_enlarged_like_the_output_size_batch(tmp_path):
    """A PairedImageDataset batch (low-res lq, the options' scale) gives what I(s) at output size gives."""
    opt = make_opt(tmp_path, is_train=False)
    opt['scale'] = 2  # a top-level scale, which parse_options also copies into every dataset
    model = NODESRModel(opt)
    randomized(model.net_g, std=0.1)
    gt = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    lr = imresize(gt, 0.5)
    model.feed_data({'lq': lr, 'gt': gt})
    model.test()
    from_lr = model.output.clone()
    model.feed_data({'lq': enlarge_to(lr, 2.0, (24, 24)), 'gt': gt, 'scale': torch.tensor([2.0])})
    model.test()
    assert from_lr.shape == (1, 3, 24, 24)
    assert torch.allclose(from_lr, model.output, atol=1e-5)


class _LowResSet(torch.utils.data.Dataset):
    """A BasicSR-style validation set: low-res ``lq`` and ``gt``, no ``scale`` in the batch, ``scale`` option."""

    def __init__(self, scale):
        self.opt = {'name': 'lowres', 'scale': scale}
        self.gt = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(2))

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return {'lq': imresize(self.gt, 1 / 3), 'gt': self.gt, 'lq_path': 'a.png'}


def test_validation_of_a_set_without_scales_in_its_batches_uses_the_set_scale(tmp_path):
    model = NODESRModel(make_opt(tmp_path, is_train=False))  # no top-level scale
    model.validation(torch.utils.data.DataLoader(_LowResSet(2.9)), 1, None, False)
    assert model.scale == 2.9 and model.set_scale is None  # the set's option, not the 24/8 ratio
    model.feed_data({'lq': imresize(torch.rand(1, 3, 24, 24), 1 / 3), 'gt': torch.rand(1, 3, 24, 24)})
    assert model.scale == 3.0  # outside validation: the GT-to-lq ratio


def test_batch_sizes_drive_the_model_without_dataset_options(tmp_path):
    """A batch with lq at LR size and its own ``out_size`` runs with no dataset options at all,
    with or without GT, and gives what the same batch with I(s) at output size gives."""
    model = NODESRModel(make_opt(tmp_path, is_train=False))
    randomized(model.net_g, std=0.1)
    gt = torch.rand(1, 3, 25, 25, generator=torch.Generator().manual_seed(2))
    lr = imresize(gt, 1 / 2.5)[..., :10, :10]
    sizes = {'scale': torch.tensor([2.5], dtype=torch.float64), 'out_size': torch.tensor([[25, 25]])}
    outs = []
    for data in ({'lq': lr, 'gt': gt}, {'lq': lr}, {'lq': enlarge_to(lr, 2.5, (25, 25))}):
        model.feed_data({**data, **sizes})
        model.test()
        outs.append(model.output.clone())
    assert model.lq_at_output and model._out_size() == (25, 25)
    assert all(o.shape == (1, 3, 25, 25) for o in outs)
    assert torch.allclose(outs[0], outs[1]) and torch.allclose(outs[0], outs[2], atol=1e-5)
    model.feed_data({'lq': lr, **sizes})
    assert not model.lq_at_output and model._out_size() == (25, 25)


def test_lr_network_rejects_output_size_batch(tmp_path):
    net = {'type': 'RDN', 'upscale': 2, 'num_feat': 4, 'num_block': 1, 'num_conv': 1, 'num_grow': 4}
    opt = make_opt(tmp_path, is_train=False, net=net)
    model = NODESRModel(opt)
    model.feed_data(batch(b=1))
    with pytest.raises(ValueError, match='low-res'):
        model.test()


def test_self_ensemble_is_equivariant_and_close(tmp_path):
    """The x8 mean commutes with flips/transposes (a single pass does not) and stays close to it."""
    model = NODESRModel(make_opt(tmp_path, is_train=False))
    randomized(model.net_g, std=0.1)
    data = batch(b=1, size=20, scale=2.5)
    flipped = {k: (v.flip(-1).transpose(-2, -1) if k in ('lq', 'gt') else v) for k, v in data.items()}
    outs = {}
    for ens in (False, True):
        model.opt['val']['self_ensemble'] = ens
        for name, d in (('plain', data), ('flipped', flipped)):
            model.feed_data(d)
            model.test()
            outs[ens, name] = model.output.clone()
    unflip = lambda t: t.transpose(-2, -1).flip(-1)  # noqa: E731
    assert (outs[False, 'plain'] - unflip(outs[False, 'flipped'])).abs().max() > 1e-4
    assert (outs[True, 'plain'] - unflip(outs[True, 'flipped'])).abs().max() < 1e-5
    diff = (outs[True, 'plain'] - outs[False, 'plain']).abs()
    assert 0 < diff.mean() < 0.05


def test_tiling_with_enough_padding_is_exact(tmp_path):
    model = NODESRModel(make_opt(tmp_path, is_train=False))
    randomized(model.net_g, std=0.1)
    net = model._eval_net()
    model.feed_data(batch(b=1, size=40, scale=3.0))
    model.test()
    whole = model.output.clone()
    outs = {}
    for pad in (net.receptive_radius(), 0):
        model.opt['val'].update(tile=12, tile_pad=pad)
        model.test()
        outs[pad] = model.output.clone()
    assert (outs[net.receptive_radius()] - whole).abs().max() < 1e-5
    assert (outs[0] - whole).abs().max() > 1e-4, 'tiles without overlap must differ (the test would be empty)'
    assert net.tile is None, 'tiling is switched off after testing'


def test_validation_metrics_per_image_border_and_grey(tmp_path):
    """Per-image PSNR equals the literature protocol (ceil(s) border, Y, grey on its channel), summary files."""
    hr = str(tmp_path / 'hr')
    write_images(hr, [(30, 34), (33, 29), (32, 32)], grey=(2,))
    model = NODESRModel(make_opt(tmp_path, is_train=False))
    ds_opt = {'name': 'toy', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': hr, 'phase': 'val',
              'io_backend': {'type': 'disk'}, 'scale': 2.5, 'protocol': 'metasr'}
    loader = torch.utils.data.DataLoader(build_dataset(ds_opt), batch_size=1)
    model.validation(loader, current_iter='tiny', tb_logger=None, save_img=True)
    summary = json.load(open(tmp_path / 'results' / 'metrics.json'))
    assert summary['toy']['num_images'] == 3 and summary['toy']['scale'] == 2.5
    assert (tmp_path / 'results' / 'metrics.csv').is_file()
    for item in loader.dataset:
        name = os.path.splitext(os.path.basename(item['gt_path']))[0]
        # an untrained NODE model returns its input I(s): the bicubic image
        sr = item['lq'].clamp(0, 1).permute(1, 2, 0).numpy()
        gt = item['gt'].permute(1, 2, 0).numpy()
        expected = image_metrics(sr, gt, 2.5, grey=item['grey'])['psnr']
        assert summary['toy']['images'][name]['psnr'] == pytest.approx(expected, abs=1e-6)
        assert os.path.isfile(tmp_path / 'vis' / 'toy' / f'{name}_tiny.png')
    assert np.mean([v['psnr'] for v in summary['toy']['images'].values()]) == pytest.approx(
        summary['toy']['metrics']['psnr'])


def test_grey_image_is_not_measured_in_ycbcr(tmp_path):
    from nodesr_arch.metrics import image_metrics
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(1, 16, 16, generator=gen)
    gt = base.repeat(3, 1, 1)
    sr = (base + 0.05 * torch.randn(1, 16, 16, generator=gen)).clamp(0, 1).repeat(3, 1, 1)
    metrics = {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}
    grey = image_metrics(sr, gt, 2.0, True, metrics)['psnr']
    colour = image_metrics(sr, gt, 2.0, False, metrics)['psnr']
    a, b = tensor2img(sr[:1])[2:-2, 2:-2].astype(float), tensor2img(gt[:1])[2:-2, 2:-2].astype(float)
    assert grey == pytest.approx(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)))
    assert colour > grey + 1, 'YCbCr compresses the range of a grey image and inflates its PSNR'


def test_options_are_not_mutated_by_validation(tmp_path):
    opt = make_opt(tmp_path, is_train=False, val={'tile': 8})
    model = NODESRModel(opt)
    before = copy.deepcopy(model.opt['val'])
    model.feed_data(batch(b=1, size=16))
    model.test()
    assert model.opt['val'] == before


def test_ema_checkpoint_loads_with_basicsr_param_key_and_the_api(tmp_path):
    """A trained checkpoint holds params and params_ema; BasicSR's test path and the API load the EMA."""
    import yaml

    from nodesr_arch.api import load_model
    model = NODESRModel(make_opt(tmp_path / 'train', train={'ema_decay': 0.5}))
    model.feed_data(batch())
    model.optimize_parameters(1)
    os.makedirs(model.opt['path']['training_states'], exist_ok=True)
    model.save(epoch=0, current_iter=1)
    ckpt = os.path.join(model.opt['path']['models'], 'net_g_1.pth')
    state = torch.load(ckpt, weights_only=True)
    assert set(state) == {'params', 'params_ema'}
    ema = params(model.net_g_ema)
    assert not torch.equal(ema, params(model.net_g))
    opt = make_opt(tmp_path / 'test', is_train=False)
    opt['path'].update(pretrain_network_g=ckpt, param_key_g='params_ema')
    assert torch.equal(params(NODESRModel(opt).net_g), ema)  # BasicSR's load_network, as a test YAML asks
    with open(os.path.join(tmp_path, 'train', 'train_tiny.yml'), 'w') as f:  # BasicSR copies the YAML here
        yaml.safe_dump({'name': 'tiny', 'network_g': model.opt['network_g']}, f)
    assert torch.equal(params(load_model(ckpt).net), ema)
    # exported as a bundled model: the EMA weights under both keys, stored once
    export_weights = load_script('scripts/export_weights.py')
    export_weights.export(os.path.join(tmp_path, 'train', 'train_tiny.yml'), ckpt, 'tiny', str(tmp_path / 'out'))
    exported = torch.load(tmp_path / 'out' / 'tiny.pth', weights_only=True)
    assert set(exported) == {'params', 'params_ema'}
    for key in ('params', 'params_ema'):
        assert all(torch.equal(v, state['params_ema'][k]) for k, v in exported[key].items())
    assert torch.equal(params(load_model(str(tmp_path / 'out' / 'tiny.pth')).net), ema)


def test_validation_warns_when_a_fixed_scale_network_meets_another_scale(tmp_path, caplog):
    """An x2 EDSR validated at x3 gets its x2 output resized with bicubic: the log says so, naming the set."""
    import logging
    hr = str(tmp_path / 'hr')
    write_images(hr, [(30, 36)])
    net = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_block': 1, 'upscale': 2}
    model = NODESRModel(make_opt(tmp_path, is_train=False, net=net))
    logger = logging.getLogger('basicsr')
    logger.addHandler(caplog.handler)
    try:
        for scale, warned in ((2.0, False), (3.0, True)):
            caplog.clear()
            ds_opt = {'name': f'x{scale:g}', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': hr,
                      'phase': 'val', 'io_backend': {'type': 'disk'}, 'scale': scale, 'protocol': 'metasr',
                      'lq_size': 'lr'}
            loader = torch.utils.data.DataLoader(build_dataset(ds_opt), batch_size=1)
            model.validation(loader, current_iter='tiny', tb_logger=None, save_img=False)
            messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert bool(messages) == warned, messages
        assert 'x3: EDSR is a fixed-scale x2 network: at x3' in messages[0]
        assert 'EDSR x2 + bicubic' in messages[0]
    finally:
        logger.removeHandler(caplog.handler)


def _compile_works(backend):
    """torch.compile can run here with ``backend`` (dynamo supports this Python; inductor has a C++ compiler)."""
    try:
        return bool(torch.compile(lambda x: x + 1, backend=backend)(torch.ones(1)) == 2)
    except Exception:  # unsupported Python, no compiler: whatever torch raises
        return False


@pytest.mark.parametrize('backend', ['aot_eager', pytest.param('inductor', marks=pytest.mark.slow)])
def test_compiled_training_step_equals_eager(tmp_path, backend):
    """``train: compile`` changes nothing but speed: one step's loss, weights and EMA as eager's, checkpoint keys
    unchanged. aot_eager (forward and backward through AOTAutograd) in seconds; inductor (real kernels, about
    30 s of compiling on a CPU) only with ``pytest -m slow``."""
    if not _compile_works(backend):
        pytest.skip(f'torch.compile with {backend} does not run here')
    net = {'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3, 'ode': {'method': 'rk4', 'num_steps': 1}}
    models = []
    for compile_opt in (False, {'backend': backend}):
        torch.manual_seed(0)
        model = NODESRModel(make_opt(tmp_path, net=net, train={'compile': compile_opt, 'ema_decay': 0.9}))
        randomized(model.net_g)
        model.model_ema(0)
        model.feed_data(batch(scale=3.0))
        model.optimize_parameters(1)
        models.append(model)
    eager, compiled = models
    assert compiled.net_g.ode.func._compiled_call_impl is not None  # f is what runs compiled
    assert abs(eager.log_dict['l_pix'] - compiled.log_dict['l_pix']) < 1e-6
    torch.testing.assert_close(params(compiled.net_g), params(eager.net_g), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(params(compiled.net_g_ema), params(eager.net_g_ema), rtol=1e-5, atol=1e-6)
    assert list(compiled.net_g.state_dict()) == list(eager.net_g.state_dict())


def test_compile_option_is_checked(tmp_path):
    with pytest.raises(ValueError, match='train:compile'):
        NODESRModel(make_opt(tmp_path, train={'compile': {'mod': 'max-autotune'}}))
