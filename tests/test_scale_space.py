"""Scale-space patches, benchmark protocols and size bookkeeping (docs/design.md section 3)."""
import math

import numpy as np
import pytest

import nodesr_arch  # noqa: F401  (compat fixes before basicsr)
from nodesr_arch.data.scale_space import (enlarge, imresize, lr_file_pair, make_pair, patch_margin, scale_grid,
                                          scale_space, scale_space_patch)
from nodesr_arch.metrics import image_metrics
from nodesr_arch.scales import crop_border as crop_border_for


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((h, w, 3)).astype(np.float32)


@pytest.mark.parametrize('t, origin', [(1.1, 11), (2.5, 10), (3.3, 33)])
def test_patch_equals_whole_image_window_when_origin_over_t_is_integer(t, origin):
    hr = _image(120, 112)
    m = patch_margin(t)
    top = left = origin + m  # the larger crop then starts at `origin`, and origin / t is an integer
    whole = scale_space(hr, t, quantize_8bit=False)
    lq, gt = scale_space_patch(hr, t, top, left, 24, quantize_8bit=False)
    np.testing.assert_array_equal(gt, hr[top:top + 24, left:left + 24])
    assert np.abs(lq - whole[top:top + 24, left:left + 24]).max() < 1e-5
    # 8-bit rounding of the shrunk image only rarely flips a level
    lq8, _ = scale_space_patch(hr, t, top, left, 24)
    whole8 = scale_space(hr, t)
    assert np.mean(np.abs(lq8 - whole8[top:top + 24, left:left + 24]) > 1e-5) < 0.02


def test_patch_at_unaligned_origin_differs():
    """The property above is not vacuous: shifting the crop origin by one pixel changes the sampling grid."""
    t, hr = 2.5, _image(120, 112)
    top = left = 11 + patch_margin(t)  # 11 / 2.5 is not an integer
    lq, _ = scale_space_patch(hr, t, top, left, 24, quantize_8bit=False)
    assert np.abs(lq - scale_space(hr, t, quantize_8bit=False)[top:top + 24, left:left + 24]).max() > 1e-3


def test_patch_outside_image_raises():
    with pytest.raises(ValueError, match='outside'):
        scale_space_patch(_image(40, 40), 2.0, 30, 0, 24)


def _metasr_expected(n, s):
    q = n / s
    cropped = n if abs(q - round(q)) < 1e-9 else n - 4
    lr = math.ceil(cropped / s - 1e-9)
    return lr, min(math.floor(lr * s + 1e-6), n)


@pytest.mark.parametrize('s', [1.1, 2.37, 3.3, 4.0])
@pytest.mark.parametrize('protocol', ['metasr', 'modcrop'])
def test_protocol_sizes_on_odd_image(s, protocol):
    h, w = 101, 77
    lr, gt, out = make_pair(_image(h, w), s, protocol)
    if protocol == 'metasr':
        (lh, oh), (lw, ow) = _metasr_expected(h, s), _metasr_expected(w, s)
    else:
        lh, lw = math.floor(h / s), math.floor(w / s)
        oh, ow = math.floor(lh * s + 1e-6), math.floor(lw * s + 1e-6)
    assert lr.shape == (lh, lw, 3)
    assert out == (oh, ow) and gt.shape == (oh, ow, 3)
    assert enlarge(lr, s, out).shape == (oh, ow, 3)
    np.testing.assert_array_equal(lr * 255, np.round(lr * 255))  # 8-bit rounded


@pytest.mark.parametrize('shape', [(5, 1), (1, 5), (1, 1), (5, 2)])
def test_imresize_one_and_two_pixel_sides(shape):
    """The bicubic kernel is wider than the image: MATLAB folds its taps back as often as needed."""
    img = _image(*shape)
    # the same picture made 8 pixels wide (tall) on its one-pixel axes: the well-trodden path
    wide = np.repeat(np.repeat(img, 8 if shape[0] == 1 else 1, 0), 8 if shape[1] == 1 else 1, 1)
    for scale in (2.7, 6.0):
        out = imresize(img, scale)
        assert out.shape == (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale), 3)
        ref = imresize(wide, scale)[:out.shape[0], :out.shape[1]]
        if shape[0] == 1:  # a one-pixel axis stays constant; the other is enlarged as usual
            ref = np.repeat(ref[:1], out.shape[0], 0)
        if shape[1] == 1:
            ref = np.repeat(ref[:, :1], out.shape[1], 1)
        np.testing.assert_allclose(out, ref, atol=1e-6)


def test_known_sizes():
    # Set5 bird 288x288 at x1.1: 288 / 1.1 is not whole -> 284 rows -> LR 259 -> output 284
    lr, gt, out = make_pair(_image(288, 288), 1.1, 'metasr')
    assert lr.shape[:2] == (259, 259) and out == (284, 284)
    # 33 / 1.1 is whole up to round-off (MATLAB mod treats it as 0): no crop
    lr, gt, out = make_pair(_image(33, 33), 1.1, 'metasr')
    assert lr.shape[:2] == (30, 30) and out == (33, 33)
    # classic mod-crop at x3 on 256x256: 255x255 GT, 85x85 LR
    lr, gt, out = make_pair(_image(256, 256), 3, 'modcrop')
    assert lr.shape[:2] == (85, 85) and out == (255, 255)


def test_unknown_protocol_and_bad_scale():
    with pytest.raises(ValueError, match='protocol'):
        make_pair(_image(20, 20), 2, 'nearest')
    with pytest.raises(ValueError, match='scale'):
        make_pair(_image(20, 20), 0.5, 'metasr')


def test_lr_file_pair_reconciles_and_rejects():
    hr = _image(256, 256)
    gt, out = lr_file_pair(np.zeros((85, 85, 3)), hr, 3, names=('a_lr.png', 'a_hr.png'))
    assert out == (255, 255) and gt.shape == (255, 255, 3)
    gt, out = lr_file_pair(np.zeros((86, 86, 3)), hr, 3)  # LR from the uncropped image: GT is the whole HR
    assert out == (256, 256)
    with pytest.raises(ValueError, match='a_lr.png.*a_hr.png'):
        lr_file_pair(np.zeros((64, 64, 3)), hr, 3, names=('a_lr.png', 'a_hr.png'))


def test_scale_grid():
    grid = scale_grid([1.1, 4.0], 0.1)
    assert len(grid) == 30 and grid[0] == 1.1 and grid[-1] == 4.0 and 2.0 in grid and 3.3 in grid
    assert scale_grid([1.1, 4.0], 0) is None
    with pytest.raises(ValueError):
        scale_grid([0.5, 2.0])


def test_metrics_grey_and_border():
    assert crop_border_for(2.0) == 2 and crop_border_for(2.1) == 3 and crop_border_for(4.0000000001) == 4
    rng = np.random.default_rng(1)
    grey = np.repeat(rng.random((40, 40, 1)), 3, axis=2).astype(np.float32)
    noisy = np.clip(grey + rng.normal(0, 0.05, grey.shape).astype(np.float32), 0, 1)
    noisy[..., 1:] = noisy[..., :1]
    p_grey = image_metrics(noisy, grey, 2, grey=True)['psnr']
    p_y = image_metrics(noisy, grey, 2, grey=False)['psnr']
    a, b = (np.round(x[2:-2, 2:-2, 0].astype(np.float64) * 255) for x in (noisy, grey))
    assert p_grey == pytest.approx(10 * np.log10(255**2 / np.mean((a - b)**2)), abs=1e-6)
    assert p_y > p_grey + 1  # Y of a grey image has range 16-235: higher PSNR, the thing we avoid
