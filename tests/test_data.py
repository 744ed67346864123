"""ContinuousScalePairedDataset: modes, backends, collation and odd inputs."""
import os
import random

import cv2
import numpy as np
import pytest
import torch

import nodesr_arch  # noqa: F401,I001  (compat fixes first, registers the dataset)
from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from nodesr_arch.data.scale_space import enlarge, make_pair, scale_grid


def _smooth(h, w, c=3, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.random((h // 4 + 2, w // 4 + 2, c)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.reshape(h, w, c), 0, 1)


def _write(folder, name, img, dtype=np.uint8):
    os.makedirs(folder, exist_ok=True)
    levels = 255 if dtype == np.uint8 else 65535
    path = os.path.join(folder, name)
    cv2.imwrite(path, np.round(img * levels).astype(dtype))
    return path


@pytest.fixture
def gt_folder(tmp_path):
    folder = str(tmp_path / 'HR')
    for i, (h, w) in enumerate([(61, 57), (64, 72), (57, 66)]):
        _write(folder, f'im{i}.png', _smooth(h, w, seed=i))
    return folder


def _opt(root, **kw):
    opt = dict(type='ContinuousScalePairedDataset', name='t', phase='train', dataroot_gt=root,
               io_backend=dict(type='disk'), gt_size=32, scale_range=[1.1, 4.0])
    opt.update(kw)
    return opt


def test_train_samples(gt_folder):
    ds = build_dataset(_opt(gt_folder))
    grid = scale_grid([1.1, 4.0], 0.1)
    random.seed(0)
    for i in range(len(ds)):
        s = ds[i]
        assert s['lq'].shape == s['gt'].shape == (3, 32, 32) and s['lq'].dtype == torch.float32
        assert s['scale'] in grid and isinstance(s['scale'], float) and s['grey'] is False
        assert -0.1 < float(s['lq'].min()) and float(s['lq'].max()) < 1.1  # bicubic may overshoot a little
        assert s['gt_path'] == s['lq_path'] and s['gt_path'].endswith(f'im{i}.png')
        assert s['out_size'].tolist() == [32, 32] and 'lr_size' not in s


def test_continuous_scales_and_fixed_scale(gt_folder):
    random.seed(1)
    ds = build_dataset(_opt(gt_folder, scale_step=0, scale_range=[1.5, 2.5]))
    scales = {ds[i % 3]['scale'] for i in range(6)}
    assert len(scales) == 6 and all(1.5 <= s <= 2.5 for s in scales)
    ds = build_dataset(_opt(gt_folder, scale_range=None, scale=3))
    assert ds[0]['scale'] == 3.0


def test_lmdb_and_folder_give_identical_samples(gt_folder, tmp_path):
    names = sorted(os.listdir(gt_folder))
    lmdb_path = str(tmp_path / 'HR.lmdb')
    make_lmdb_from_imgs(gt_folder, lmdb_path, names, [os.path.splitext(n)[0] for n in names])
    folder_ds = build_dataset(_opt(gt_folder))
    lmdb_ds = build_dataset(_opt(lmdb_path, io_backend=dict(type='lmdb')))
    assert len(folder_ds) == len(lmdb_ds) == 3
    for i in range(3):
        random.seed(i)
        a = folder_ds[i]
        random.seed(i)
        b = lmdb_ds[i]
        assert a['scale'] == b['scale'] and b['gt_path'] == f'im{i}'
        assert torch.equal(a['out_size'], b['out_size'])
        assert torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt'])


def test_several_roots_and_meta_info(gt_folder, tmp_path):
    other = str(tmp_path / 'other')
    _write(other, 'x.png', _smooth(40, 40))
    ds = build_dataset(_opt([gt_folder, other]))
    assert len(ds) == 4 and ds[3]['gt_path'].endswith('x.png')
    meta = tmp_path / 'meta.txt'
    meta.write_text('im2.png (57,66,3) 1\nim0.png (61,57,3) 1\n')
    ds = build_dataset(_opt(gt_folder, meta_info_file=str(meta)))
    assert [os.path.basename(p[0]) for p in ds.paths] == ['im2.png', 'im0.png']


def test_mixed_scale_batch_collates(gt_folder):
    ds = build_dataset(_opt(gt_folder, gt_size=24))
    random.seed(3)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=0)))
    assert batch['lq'].shape == (3, 3, 24, 24) and batch['gt'].shape == (3, 3, 24, 24)
    assert batch['scale'].dtype == torch.float64 and batch['scale'].shape == (3, )
    assert batch['grey'].shape == (3, ) and len(batch['gt_path']) == 3
    assert batch['out_size'].tolist() == [[24, 24]] * 3


def gt_folder_images(folder):
    return sorted(os.listdir(folder))


def _batch_scales(ds, workers):
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, drop_last=True,
                                         sampler=list(range(len(ds))) * 4)
    return [batch['scale'].tolist() for batch in loader]


def test_scale_per_batch_is_shared_and_independent_of_workers(gt_folder):
    opt = _opt(gt_folder, gt_size=24, scale_per_batch=True, batch_size_per_gpu=2, scale_seed=5)
    scales = {workers: _batch_scales(build_dataset(opt), workers) for workers in (0, 2)}
    assert scales[0] == scales[2]  # batch b gets the scale of (seed, b) whichever worker makes it
    # a DDP rank sees other images in the same batches: the scales do not depend on the indices
    other_rank = torch.utils.data.DataLoader(build_dataset(opt), batch_size=2, drop_last=True,
                                             sampler=list(reversed(range(len(gt_folder_images(gt_folder))))) * 4)
    assert [batch['scale'].tolist() for batch in other_rank] == scales[0]
    assert all(len(set(batch)) == 1 for batch in scales[0]) and len(scales[0]) == 6
    assert len({batch[0] for batch in scales[0]}) > 1  # batches do differ
    other = _batch_scales(build_dataset(dict(opt, scale_seed=6)), 0)
    assert other != scales[0]
    per_sample = _batch_scales(build_dataset(_opt(gt_folder, gt_size=24)), 0)
    assert any(len(set(batch)) > 1 for batch in per_sample)  # the default stays one scale per sample


@pytest.mark.parametrize('size', [None, 0, 'x', True])
def test_scale_per_batch_needs_the_batch_size(gt_folder, size):
    opt = _opt(gt_folder, scale_per_batch=True)
    if size is not None:
        opt['batch_size_per_gpu'] = size
    with pytest.raises(ValueError, match='scale_per_batch needs batch_size_per_gpu'):
        build_dataset(opt)


@pytest.mark.parametrize('protocol', ['metasr', 'modcrop'])
def test_val_protocol(gt_folder, protocol):
    ds = build_dataset(_opt(gt_folder, phase='val', scale=2.37, protocol=protocol, gt_size=None))
    hr = cv2.imread(os.path.join(gt_folder, 'im1.png'))[..., ::-1].astype(np.float32) / 255
    lr, gt, out = make_pair(hr, 2.37, protocol)
    s = ds[1]
    assert s['scale'] == 2.37 and tuple(s['gt'].shape) == (3, ) + out
    np.testing.assert_allclose(s['gt'].numpy().transpose(1, 2, 0), gt)
    np.testing.assert_allclose(s['lq'].numpy().transpose(1, 2, 0), enlarge(lr, 2.37, out), atol=1e-6)
    assert s['out_size'].tolist() == list(out)
    small = build_dataset(_opt(gt_folder, phase='val', scale=2.37, protocol=protocol, lq_size='lr'))[1]
    assert tuple(small['lq'].shape) == (3, ) + lr.shape[:2]
    assert torch.equal(small['out_size'], s['out_size'])


def test_val_needs_scale_and_known_protocol(gt_folder):
    with pytest.raises(ValueError, match='scale'):
        build_dataset(_opt(gt_folder, phase='val'))
    with pytest.raises(ValueError, match='protocol'):
        build_dataset(_opt(gt_folder, phase='val', scale=2, protocol='area'))


def test_lr_folder_mode(gt_folder, tmp_path):
    lr_dir = str(tmp_path / 'LR')
    for name in os.listdir(gt_folder):
        hr = cv2.imread(os.path.join(gt_folder, name))[..., ::-1].astype(np.float32) / 255
        lr, _, _ = make_pair(hr, 3, 'modcrop')
        _write(lr_dir, name.replace('.png', 'x3.png'), lr[..., ::-1])
    ds = build_dataset(_opt(gt_folder, phase='val', scale=3, dataroot_lq=lr_dir, filename_tmpl='{}x3'))
    s = ds[0]  # im0: 61x57 -> LR 20x19 -> output 60x57
    assert s['lq_path'].endswith('im0x3.png') and tuple(s['gt'].shape) == (3, 60, 57) == tuple(s['lq'].shape)
    assert s['out_size'].tolist() == [60, 57]
    bad = build_dataset(_opt(gt_folder, phase='val', scale=2, dataroot_lq=lr_dir, filename_tmpl='{}x3'))
    with pytest.raises(ValueError, match='im0x3.png'):
        bad[0]


def test_grey_rgba_and_16bit(tmp_path):
    folder = str(tmp_path / 'odd')
    grey = _smooth(40, 44, c=1)
    _write(folder, 'a_grey.png', grey[..., 0])
    rgba = np.concatenate([_smooth(40, 44, seed=2), np.full((40, 44, 1), 0.5, np.float32)], axis=2)
    _write(folder, 'b_rgba.png', rgba)
    deep = _smooth(40, 44, seed=3)
    _write(folder, 'c_deep.png', deep, dtype=np.uint16)
    ds = build_dataset(_opt(folder, phase='val', scale=2, protocol='modcrop'))
    s = ds[0]
    assert s['grey'] is True and torch.equal(s['gt'][0], s['gt'][1]) and torch.equal(s['gt'][0], s['gt'][2])
    np.testing.assert_allclose(s['gt'][0].numpy(), np.round(grey[:40, :44, 0] * 255) / 255, atol=1e-6)
    with pytest.warns(UserWarning, match='b_rgba.png.*alpha'):
        s = ds[1]
    assert s['gt'].shape[0] == 3 and s['grey'] is False
    np.testing.assert_allclose(s['gt'].numpy().transpose(1, 2, 0), np.round(rgba[..., 2::-1] * 255) / 255, atol=1e-6)
    s = ds[2]  # 16-bit: full precision, values between the 8-bit levels
    np.testing.assert_allclose(s['gt'].numpy().transpose(1, 2, 0), np.round(deep[..., ::-1] * 65535) / 65535, atol=1e-7)
    assert np.abs(s['gt'].numpy() * 255 - np.round(s['gt'].numpy() * 255)).max() > 0.1
    lq = s['lq'].numpy()
    assert np.abs(lq * 255 - np.round(lq * 255)).max() > 0.1  # the LR was rounded to 16 bits, not 8


def test_truncated_png_names_the_file(gt_folder):
    path = os.path.join(gt_folder, 'im1.png')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    ds = build_dataset(_opt(gt_folder))
    with pytest.raises(ValueError, match='im1.png'):
        ds[1]


def test_small_images(gt_folder):
    with pytest.raises(ValueError, match='im0.png is 61x57, smaller than gt_size 60'):  # when built, not drawn
        build_dataset(_opt(gt_folder, gt_size=60))
    with pytest.warns(UserWarning, match='2 of 3'):
        ds = build_dataset(_opt(gt_folder, gt_size=60, skip_small=True))
    assert [os.path.basename(p[0]) for p in ds.paths] == ['im1.png']
