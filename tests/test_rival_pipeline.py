"""The one-shot arbitrary-scale methods (Meta-SR, LIIF) through NODE-SR's pipeline: the LR-patch training mode
of ContinuousScalePairedDataset, networks fed ``(lq, scale, out_size)`` by run_network and NODESRModel."""
import json
import os
import random
import re

import numpy as np
import pytest
import torch

import nodesr_arch  # noqa: F401,I001  (compat fixes first, registers the dataset)
from basicsr.data import build_dataset
from helpers import one_thread_fixture, write_images
from nodesr_arch.data.scale_space import scale_grid, shrink_to
from nodesr_arch.file_io import read_image

one_thread = one_thread_fixture()


@pytest.fixture(scope='module')
def hr_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('hr'))
    write_images(folder, [(64, 72), (70, 66), (66, 66)])
    return folder


def _opt(root, **kw):
    opt = dict(type='ContinuousScalePairedDataset', name='t', phase='train', dataroot_gt=root,
               io_backend=dict(type='disk'), lq_size=12, scale_range=[1.1, 4.0], scale_step=0.1,
               scale_per_batch=True, batch_size_per_gpu=2)
    opt.update(kw)
    return opt


def _find(img, crop):
    """(top, left) of ``crop`` in ``img`` (exact match), or None."""
    n = crop.shape[0]
    for top in range(img.shape[0] - n + 1):
        for left in range(img.shape[1] - n + 1):
            if np.array_equal(img[top:top + n, left:left + n], crop):
                return top, left
    return None


def test_lr_patch_mode_crops_and_shrinks(hr_folder):
    ds = build_dataset(_opt(hr_folder, use_hflip=False, use_rot=False))
    grid = scale_grid([1.1, 4.0], 0.1)
    random.seed(0)
    for i in range(len(ds)):
        s = ds[i]
        side = s['gt'].shape[-1]
        assert s['lq'].shape == (3, 12, 12) and s['gt'].shape == (3, side, side)
        assert min(abs(side - round(12 * t)) for t in grid) == 0  # round(lq_size * t0) for a grid scale
        assert s['scale'] == side / 12 and s['out_size'].tolist() == [side, side]
        gt = s['gt'].numpy().transpose(1, 2, 0)
        img = read_image(s['gt_path'], as_float=True)[0]
        assert _find(img, gt) is not None, 'gt is a crop of the image'
        np.testing.assert_array_equal(s['lq'].numpy().transpose(1, 2, 0), shrink_to(gt, (12, 12)))


def test_lr_patch_mode_one_scale_per_batch_collates(hr_folder):
    ds = build_dataset(_opt(hr_folder))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False)
    for batch in loader:
        assert batch['lq'].shape[-2:] == (12, 12)
        assert len(set(batch['scale'].tolist())) == 1
        assert batch['gt'].shape[-1] == batch['out_size'][0, 0]


def test_sample_q_mixes_scales(hr_folder):
    ds = build_dataset(_opt(hr_folder, scale_per_batch=False, scale_step=0, sample_q=100))
    random.seed(1)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch['gt'].shape == (3, 3, 100) and batch['pixels'].shape == (3, 100)
    assert len(set(batch['scale'].tolist())) == 3
    for b in range(3):
        side = int(batch['out_size'][b, 0])
        assert batch['scale'][b] == side / 12
        assert 0 <= batch['pixels'][b].min() and batch['pixels'][b].max() < side * side
        assert len(set(batch['pixels'][b].tolist())) == 100


def test_sample_q_pixels_index_their_values(hr_folder):
    """All 12 x 12 pixels of an x2 crop of a 6 px LR patch, put back by their indices, make the GT crop whose
    MATLAB shrink is the LR patch."""
    ds = build_dataset(_opt(hr_folder, lq_size=6, scale_range=[2.0, 2.0], sample_q=144, use_rot=False,
                            use_hflip=False))
    s = ds[1]
    crop = torch.zeros(3, 144)
    crop[:, s['pixels']] = s['gt']
    crop = crop.reshape(3, 12, 12).numpy().transpose(1, 2, 0)
    assert _find(read_image(s['gt_path'], as_float=True)[0], crop) is not None
    np.testing.assert_array_equal(s['lq'].numpy().transpose(1, 2, 0), shrink_to(crop, (6, 6)))


@pytest.mark.parametrize('kw, message', [
    (dict(scale_per_batch=False), 'set scale_per_batch: true'),
    (dict(gt_size=32), 'not both'),
    (dict(lq_size=0), 'lq_size'),
    (dict(sample_q=1000), 'more than the 169 GT pixels'),
    (dict(lq_size='output', sample_q=10), 'sample_q needs an integer lq_size'),
])
def test_lr_patch_mode_refuses_bad_options(hr_folder, kw, message):
    with pytest.raises(ValueError, match=message):
        build_dataset(_opt(hr_folder, **kw))


def test_lr_patch_mode_skip_small(hr_folder):
    """The largest GT crop (round(20 * 4) = 80 px) decides which images are too small."""
    with pytest.raises(ValueError, match='smaller than'):
        build_dataset(_opt(hr_folder, lq_size=20))
    with pytest.warns(UserWarning, match='3 of 3|skip_small'):
        with pytest.raises(ValueError, match='no images'):
            build_dataset(_opt(hr_folder, lq_size=20, skip_small=True))


# ------------------------------------------------------------------ the rivals end to end, through YAMLs
TINY_RIVALS = {
    'MetaSR': ({'type': 'MetaSR', 'encoder': {'type': 'EDSRBody', 'num_feat': 4, 'num_block': 1}, 'hidden': 8},
               {'scale_range': [1.1, 4.0], 'scale_step': 0.1, 'scale_per_batch': True}),
    'LIIF': ({'type': 'LIIF', 'encoder': {'type': 'EDSRBody', 'num_feat': 4, 'num_block': 1}, 'hidden_list': [8, 8]},
             {'scale_range': [1.0, 4.0], 'scale_step': 0, 'sample_q': 40}),
}


def rival_options(rival):
    """A 4-iteration training of a tiny rival in the LR-patch mode, validated at x2 and x3.5 on LR inputs, with EMA."""
    from benchmarks.common import tiny_train_options
    net, mode = TINY_RIVALS[rival]
    train_ds = dict(name='toy', type='ContinuousScalePairedDataset', dataroot_gt='data/hr', io_backend={'type': 'disk'},
                    lq_size=8, use_hflip=True, use_rot=True, num_worker_per_gpu=0, batch_size_per_gpu=2,
                    dataset_enlarge_ratio=1, **mode)
    opt = tiny_train_options(rival)
    opt['datasets']['train'] = train_ds
    for phase in ('val_1', 'val_2'):
        opt['datasets'][phase]['lq_size'] = 'lr'
    opt['network_g'] = dict(net)
    opt['train']['ema_decay'] = 0.9
    return opt


@pytest.fixture(scope='module', params=sorted(TINY_RIVALS))
def trained_rival(request, tmp_path_factory):
    from test_train import run, write_data, write_yml
    rival = request.param
    root = str(tmp_path_factory.mktemp(rival))
    write_data(root)
    out = run(root, ['-opt', write_yml(root, rival_options(rival))])
    return rival, root, out


def test_rival_trains_validates_and_resumes(trained_rival):
    from test_train import logged_lrs, run
    rival, root, out = trained_rival
    for name in ('val_x2', 'val_x3.5'):
        assert re.search(rf'Validation {re.escape(name)}\s+# psnr: \d+\.\d+', out), out[-3000:]
    models = os.path.join(root, 'experiments', rival, 'models')
    saved = torch.load(os.path.join(models, 'net_g_4.pth'), weights_only=True)
    assert set(saved) == {'params', 'params_ema'} and saved['params'].keys() == saved['params_ema'].keys()
    out = run(root, ['-opt', os.path.join(root, 'opt.yml'), '--auto_resume', '--force_yml', 'train:total_iter=6'])
    assert 'Resuming training from epoch' in out and min(logged_lrs(out)) == 5, out[-3000:]
    assert os.path.isfile(os.path.join(models, 'net_g_6.pth'))


def test_rival_nodesr_test(trained_rival):
    """``nodesr test`` at x2 (mod-crop) and x6.3 (beyond training, Meta-SR protocol), with the self-ensemble."""
    from test_train import run, write_yml
    rival, root, _ = trained_rival
    sets = {f'test_{i}': {'name': f'val_x{s:g}', 'type': 'ContinuousScalePairedDataset', 'dataroot_gt': 'data/val',
                          'io_backend': {'type': 'disk'}, 'scale': s, 'protocol': p, 'lq_size': 'lr'}
            for i, (s, p) in enumerate([(2, 'modcrop'), (6.3, 'metasr')])}
    opt = {'name': f'{rival}_test', 'model_type': 'NODESRModel', 'num_gpu': 0, 'manual_seed': 0, 'datasets': sets,
           'network_g': TINY_RIVALS[rival][0],
           'path': {'pretrain_network_g': f'experiments/{rival}/models/net_g_4.pth', 'param_key_g': 'params_ema',
                    'strict_load_g': True},
           'val': {'save_img': True, 'suffix': None, 'self_ensemble': True, 'trajectory': False,
                   'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True}}}}
    run(root, ['test', '-opt', write_yml(root, opt, 'test.yml')], module='nodesr_arch.commands.cli')
    summary = json.load(open(os.path.join(root, 'results', f'{rival}_test', 'metrics.json')))
    assert set(summary) == {'val_x2', 'val_x6.3'}
    assert all(s['num_images'] == 3 and 5 < s['metrics']['psnr'] < 60 for s in summary.values())


def test_rival_benchmark_infer_api_export(trained_rival, tmp_path, capsys):
    from nodesr_arch.api import load_model
    from nodesr_arch.commands import benchmark, export, infer
    rival, root, _ = trained_rival
    ckpt = os.path.join(root, 'experiments', rival, 'models', 'net_g_latest.pth')
    out = str(tmp_path / 'bench')
    assert benchmark.main(['--model', f'{rival}={ckpt}', 'bicubic', '--data', os.path.join(root, 'data', 'val'),
                           '--scales', '2', '3.5', '--protocol', 'metasr', '--out', out, '--quiet']) == 0
    rows = open(os.path.join(out, 'results.csv')).read()
    assert rows.count(f',{rival},') == 2 and ' + bicubic' not in rows
    # the API and nodesr infer: any real scale, outputs at floor(h s)
    up = load_model(ckpt)
    assert up.contract.takes_scale and up.contract.input_size == 'lr'
    img = (np.random.default_rng(0).random((11, 13, 3)) * 255).astype(np.uint8)
    assert up.upscale(img, scale=2.5).shape == (27, 32, 3)
    assert up.upscale(img, scale=1.7, self_ensemble=True).shape == (18, 22, 3)
    src = write_images(str(tmp_path / 'in'), [(15, 17)])[0]
    assert infer.main(['-i', src, '-o', str(tmp_path / 'sr'), '-s', '3.3', '--model', ckpt, '-q']) == 0
    sr = os.path.join(tmp_path, 'sr', os.listdir(tmp_path / 'sr')[0])
    assert read_image(sr, as_float=True)[0].shape[:2] == (49, 56)
    # nodesr export writes NODE-SR solves only: one clear line
    capsys.readouterr()
    assert export.main(['--model', ckpt, '-o', str(tmp_path / 'x.onnx'), '--scale', '2']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'is not a NODE model' in err[0] and not os.path.exists(tmp_path / 'x.onnx')


@pytest.mark.parametrize('rival, changes, line', [
    ('LIIF', {'network_g': {'hiden_list': [8]}}, "network_g: LIIF: got an unexpected keyword argument 'hiden_list'"),
    ('LIIF', {'datasets:train': {'sampel_q': 40}},
     'datasets:train:sampel_q: not an option of ContinuousScalePairedDataset (did you mean sample_q?)'),
    ('LIIF', {'datasets:train': {'sample_q': 0}}, 'datasets:train: sample_q must be a positive integer'),
    ('LIIF', {'datasets:val_1': {'lq_size': 48}}, "datasets:val_1: lq_size must be 'output' or 'lr'"),
    ('MetaSR', {'datasets:train': {'scale_per_batch': False}}, 'set scale_per_batch: true'),
    ('MetaSR', {'network_g': {'encoder': {'type': 'NoSuchEncoder'}}}, "encoder type 'NoSuchEncoder' is not in"),
    ('MetaSR', {'val': {'tile': 16}}, 'val:tile: MetaSR does not tile'),
    ('MetaSR', {'datasets:train': {'scale_per_batch': False, 'sample_q': 40}},
     'datasets:train:scale_per_batch: MetaSR takes one scale per batch'),
])
def test_rival_option_check_one_line(tmp_path, monkeypatch, capsys, rival, changes, line):
    from nodesr_arch.commands import train as nodesr_train
    from test_train import write_data, write_yml
    write_data(str(tmp_path))
    opt = rival_options(rival)
    for key, value in changes.items():
        node = opt
        for k in key.split(':'):
            node = node[k]
        node.update(value)
    monkeypatch.chdir(tmp_path)
    assert nodesr_train.main(['-opt', write_yml(str(tmp_path), opt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and line in err[0], err
    assert not (tmp_path / 'experiments').exists()


def test_rival_and_table2_recipes_exist():
    """Every row of the paper's Table 2 and LIIF have a training recipe and Table 2's test files."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'options')
    names = set(os.listdir(os.path.join(root, 'train'))) | set(os.listdir(os.path.join(root, 'test')))
    for model in ('MetaRDN', 'LIIF_EDSR', 'LIIF_RDN'):
        assert {f'train_{model}_DIV2K.yml', f'test_{model}_DIV2K_x1.1-4.0.yml', f'test_{model}_DIV2K_x2x3x4.yml',
                f'test_{model}_DIV2K_x6x8.yml'} <= names
    for arch in ('VDSR', 'RDN'):
        for s in (2, 3, 4):
            assert {f'train_{arch}_x{s}_DIV2K.yml', f'test_{arch}_x{s}_DIV2K.yml'} <= names
