"""Mixed precision (``nodesr_arch.amp``): f in bf16 under autocast, the ODE state in fp32; the bundled
model in bf16 within 0.05 dB of fp32; a bf16 training step; the option keys and the CLI flags."""
import os

import numpy as np
import pytest
import torch
from test_model import batch, make_opt

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from basicsr.archs import build_network
from helpers import one_thread_fixture, randomized, save_tiny_model, write_images
from nodesr_arch.amp import check_amp_device, parse_amp
from nodesr_arch.models.nodesr_model import NODESRModel
from nodesr_arch.models.option_check import OptionError, check_options

one_thread = one_thread_fixture()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SET5 = os.path.join(ROOT, '..', 'shared', 'data', 'benchmark', 'Set5', 'HR')


def tiny_node(**ode):
    torch.manual_seed(0)
    net = build_network({'type': 'NODEVDSR', 'num_feat': 8, 'num_layer': 3, 'ode': {'method': 'rk4', **ode}})
    return randomized(net, std=0.05)


def conv_dtypes(net):
    """Record the output dtype of every conv of ``net`` (a list, filled as the network runs)."""
    seen = []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    return seen


def test_parse_amp():
    assert parse_amp('bf16') is torch.bfloat16 and parse_amp('BFloat16') is torch.bfloat16
    assert parse_amp(torch.float16) is torch.float16 and parse_amp('fp16') is torch.float16
    for off in (None, False, 'fp32', 'none'):
        assert parse_amp(off) is None
    with pytest.raises(ValueError, match='train:amp: fp16 training needs loss scaling'):
        parse_amp('fp16', 'train:amp', training=True)
    for bad in ('bf17', True, 16):
        with pytest.raises(ValueError, match='must be bf16, fp16 or fp32'):
            parse_amp(bad)
    check_amp_device(torch.bfloat16, 'cpu')  # this CPU runs bf16 autocast


def test_f_runs_in_bf16_and_the_state_stays_fp32():
    net = tiny_node().eval()
    seen = conv_dtypes(net)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = net(x, 3.0)
        seen.clear()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = net(x, 3.0)
            states = net(x, 3.0, t_eval=[3.0, 2.0, 1.0])
    assert seen and set(seen) == {torch.bfloat16}
    assert out.dtype == torch.float32 and states.dtype == torch.float32
    assert 0 < (out - ref).abs().max() < 0.02


def test_adjoint_backward_evaluates_f_in_the_forward_precision():
    net = tiny_node(adjoint=True)
    seen = conv_dtypes(net)
    x = torch.rand(1, 3, 24, 24)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = net(x, 2.5)
    seen.clear()
    out.mean().backward()  # the backward solve runs outside the autocast block
    assert seen and set(seen) == {torch.bfloat16}


def test_bf16_training_step_runs(tmp_path):
    model = NODESRModel(make_opt(tmp_path, train={'amp': 'bf16'}, val={'amp': 'bf16'}))
    seen = conv_dtypes(model.net_g)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert set(seen) == {torch.bfloat16}
    assert model.output.dtype == torch.float32 and np.isfinite(float(model.log_dict['l_pix']))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    seen.clear()
    model.test()
    assert set(seen) == {torch.bfloat16} and model.output.dtype == torch.float32


@pytest.mark.parametrize('section,value,message', [
    ('train', 'fp16', 'train:amp: fp16 training needs loss scaling'),
    ('val', 'int8', 'val:amp: must be bf16, fp16 or fp32'),
])
def test_option_check_names_the_amp_key(tmp_path, section, value, message):
    opt = make_opt(tmp_path)
    opt['datasets'] = {'train': {'type': 'ContinuousScalePairedDataset', 'dataroot_gt': str(tmp_path),
                                 'batch_size_per_gpu': 1, 'num_worker_per_gpu': 0}}
    opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False}
    opt['val']['val_freq'] = 1
    check_options(opt, check_paths=False)
    opt[section]['amp'] = value
    with pytest.raises(OptionError, match=message):
        check_options(opt, check_paths=False)


def _pictures():
    """Set5 (centre 96 px crops of the HR images) when ../shared has it, else scikit-image pictures."""
    from nodesr_arch.commands.demo import load_picture
    from nodesr_arch.file_io import list_images, read_image
    if os.path.isdir(SET5):
        pics = []
        for path in list_images(SET5):
            img, grey, _ = read_image(path, as_float=True)
            top, left = (img.shape[0] - 96) // 2, (img.shape[1] - 96) // 2
            pics.append((img[top:top + 96, left:left + 96], grey))
        return 'Set5', pics
    return 'skimage', [load_picture(n, crop=96) for n in ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera')]


@pytest.mark.parametrize('scale', [2, 4])
def test_bundled_model_bf16_within_005_db_of_fp32(scale):
    from nodesr_arch.api import load_model
    from nodesr_arch.data.scale_space import make_pair
    from nodesr_arch.metrics import image_metrics
    source, pics = _pictures()
    fp32, bf16 = load_model(), load_model(amp='bf16')
    diffs = []
    for img, grey in pics:
        lr, gt, out = make_pair(img, scale, 'modcrop')
        a = image_metrics(fp32.super_resolve(lr, scale, out), gt, scale, grey)['psnr']
        b = image_metrics(bf16.super_resolve(lr, scale, out), gt, scale, grey)['psnr']
        diffs.append(b - a)
    assert abs(np.mean(diffs)) <= 0.05, f'{source} x{scale}: bf16 - fp32 = {np.mean(diffs):+.4f} dB ({diffs})'


def test_infer_and_benchmark_take_amp(tmp_path):
    from nodesr_arch import file_io
    from nodesr_arch.commands import benchmark, infer
    model = save_tiny_model(str(tmp_path / 'm'))
    write_images(str(tmp_path / 'in'), [(20, 24)])
    for amp, out in ((None, 'fp32'), ('bf16', 'bf16')):
        argv = ['-i', str(tmp_path / 'in'), '-o', str(tmp_path / out), '--scale', '2', '--model', model, '-q']
        assert infer.main(argv + (['--amp', amp] if amp else [])) == 0
    a, b = (file_io.read_image(str(tmp_path / d / 'img0_x2.png')).astype(int) for d in ('fp32', 'bf16'))
    assert a.shape == b.shape == (40, 48, 3) and np.abs(a - b).max() <= 2
    assert benchmark.main(['--model', model, '--data', str(tmp_path / 'in'), '--scales', '2', '--amp', 'bf16',
                           '--out', str(tmp_path / 'bench'), '--quiet', '--no-plot']) == 0
    with pytest.raises(SystemExit):
        infer.build_parser().parse_args(['-i', 'a', '-o', 'b', '--scale', '2', '--amp', 'int8'])
