"""The one-shot arbitrary-scale methods (Meta-SR, LIIF) through NODE-SR's pipeline: the LR-patch training mode
of ContinuousScalePairedDataset, networks fed ``(lq, scale, out_size)`` by run_network and NODESRModel."""
import random

import numpy as np
import pytest
import torch

import nodesr_arch  # noqa: F401,I001  (compat fixes first, registers the dataset)
from basicsr.data import build_dataset
from helpers import one_thread_fixture, write_images
from nodesr_arch.data.image_io import read_image
from nodesr_arch.data.scale_space import scale_grid, shrink_to

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
        assert s['lr_size'].tolist() == [12, 12]
        gt = s['gt'].numpy().transpose(1, 2, 0)
        img = read_image(s['gt_path'])[0]
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
    assert _find(read_image(s['gt_path'])[0], crop) is not None
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
