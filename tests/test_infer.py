"""``nodesr infer``: sizes, modes and depths of the outputs; validation before writing; no overwrites."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import save_tiny_model
from PIL import Image

from nodesr_arch.infer import main


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp('model')))


@pytest.fixture
def images(tmp_path):
    """A folder with a grey, an RGBA, a 16-bit RGB and an odd-sized JPEG image."""
    rng = np.random.default_rng(0)
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'grey.png'), rng.integers(0, 256, (21, 17)).astype(np.uint8))
    cv2.imwrite(str(folder / 'rgba.png'), rng.integers(0, 256, (20, 18, 4)).astype(np.uint8))
    cv2.imwrite(str(folder / 'deep.png'), rng.integers(0, 65536, (19, 23, 3)).astype(np.uint16))
    cv2.imwrite(str(folder / 'odd.jpg'), rng.integers(0, 256, (15, 13, 3)).astype(np.uint8))
    return folder


def read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_modes_depths_and_sizes_are_kept(model, images, tmp_path):
    out = tmp_path / 'out'
    assert main(['-i', str(images), '-o', str(out), '--scale', '2.5', '--model', model, '-q']) == 0
    expect = {'grey_x2.5.png': ((52, 42), np.uint8), 'rgba_x2.5.png': ((50, 45, 4), np.uint8),
              'deep_x2.5.png': ((47, 57, 3), np.uint16), 'odd_x2.5.jpg': ((37, 32, 3), np.uint8)}
    assert listing(out) == sorted(expect)
    for name, (shape, dtype) in expect.items():
        img = read(out / name)
        assert img.shape == shape and img.dtype == dtype, name
    # 16-bit output uses the full range, not 8-bit values scaled up
    assert np.any(read(out / 'deep_x2.5.png') % 257 != 0)


@pytest.mark.parametrize('request_args,shape', [(['--size', '40x51'], (40, 51)), (['--width', '39'], (45, 39)),
                                                (['--scale', 'x6'], (90, 78))])
def test_size_width_and_large_scales(model, images, tmp_path, request_args, shape):
    out = tmp_path / 'out'
    assert main(['-i', str(images / 'odd.jpg'), '-o', str(out), '--model', model, '-q'] + request_args) == 0
    (name,) = listing(out)
    assert read(out / name).shape == shape + (3,)


def test_tiled_output_equals_untiled(model, images, tmp_path):
    args = ['-i', str(images / 'deep.png'), '--scale', '3.2', '--model', model, '-q']
    assert main(args + ['-o', str(tmp_path / 'a')]) == 0
    assert main(args + ['-o', str(tmp_path / 'b'), '--tile', '16']) == 0
    a, b = read(tmp_path / 'a' / 'deep_x3.2.png'), read(tmp_path / 'b' / 'deep_x3.2.png')
    # 16-bit levels: a difference under 1e-5 can flip at most one rounding step
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_solver_options_and_self_ensemble(model, images, tmp_path):
    args = ['-i', str(images / 'odd.jpg'), '--scale', '2', '--model', model, '-q']
    assert main(args + ['-o', str(tmp_path / 'a'), '--steps', '3', '--method', 'euler', '--self-ensemble']) == 0
    assert read(tmp_path / 'a' / 'odd_x2.jpg').shape == (30, 26, 3)
    assert main(args + ['-o', str(tmp_path / 'b'), '--method', 'nope']) == 1
    assert listing(tmp_path / 'b') == []


def test_trajectory_strip_and_gif(model, images, tmp_path):
    out = tmp_path / 'out'
    args = ['-i', str(images / 'rgba.png'), '-o', str(out), '--scale', '3', '--model', model, '-q']
    assert main(args + ['--trajectory', '4']) == 0
    assert listing(out) == ['rgba_x3.png', 'rgba_x3_trajectory.gif', 'rgba_x3_trajectory.png']
    strip = read(out / 'rgba_x3_trajectory.png')
    assert strip.shape == (60, 4 * 54 + 3 * 4, 3)
    with Image.open(out / 'rgba_x3_trajectory.gif') as gif:
        assert gif.n_frames == 4 and gif.size == (54, 60)


@pytest.mark.parametrize('bad', ['0.5', 'abc', 'nan', 'inf', '-2'])
def test_bad_scale_is_a_usage_error(model, images, tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as e:
        main(['-i', str(images), '-o', str(tmp_path / 'out'), '--scale', bad, '--model', model])
    assert e.value.code == 2
    assert '--scale' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args,message', [
    (['--size', '10x40'], 'smaller than the input'),
    (['--width', '5'], 'smaller than the input'),
    (['--scale', '2', '--tile-pad', '4'], '--tile-pad needs --tile'),
])
def test_bad_requests_write_nothing(model, images, tmp_path, capsys, args, message):
    assert main(['-i', str(images), '-o', str(tmp_path / 'out'), '--model', model] + args) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_missing_and_corrupt_inputs_write_nothing(model, images, tmp_path, capsys):
    out = tmp_path / 'out'
    assert main(['-i', str(images / 'nope.png'), '-o', str(out), '--scale', '2', '--model', model]) == 1
    assert 'input not found' in capsys.readouterr().err
    data = (images / 'deep.png').read_bytes()
    (images / 'zz_truncated.png').write_bytes(data[:len(data) // 2])
    assert main(['-i', str(images), '-o', str(out), '--scale', '2', '--model', model]) == 1
    err = capsys.readouterr().err
    assert 'cannot decode image' in err and 'zz_truncated.png' in err
    (images / 'zz_truncated.png').unlink()
    jpeg = (images / 'odd.jpg').read_bytes()
    (images / 'cut.jpg').write_bytes(jpeg[:len(jpeg) - 40])  # OpenCV would decode half a JPEG
    assert main(['-i', str(images / 'cut.jpg'), '-o', str(out), '--scale', '2', '--model', model]) == 1
    assert 'cut.jpg' in capsys.readouterr().err
    (images / 'cut.jpg').unlink()
    assert not out.exists()
    assert main(['-i', str(images), '-o', str(out), '--scale', '2', '--model', str(images / 'no.pth')]) == 1
    assert 'not found' in capsys.readouterr().err and not out.exists()


def test_refuses_to_overwrite_outputs_and_never_inputs(model, images, tmp_path, capsys):
    out = tmp_path / 'out'
    args = ['-i', str(images), '-o', str(out), '--scale', '2', '--model', model, '-q']
    assert main(args) == 0
    before = {n: (out / n).read_bytes() for n in listing(out)}
    (out / 'grey_x2.png').unlink()
    assert main(args) == 1  # rgba_x2.png etc. exist: nothing written, not even grey_x2.png
    assert 'exists' in capsys.readouterr().err
    assert 'grey_x2.png' not in listing(out)
    assert main(args + ['--force']) == 0
    assert {n: (out / n).read_bytes() for n in listing(out)} == before
    inputs = {n: (images / n).read_bytes() for n in listing(images)}
    assert main(['-i', str(images), '-o', str(images), '--scale', '2', '--suffix', '', '--model', model,
                 '--force']) == 1
    assert 'would overwrite the input' in capsys.readouterr().err
    assert {n: (images / n).read_bytes() for n in listing(images)} == inputs
    assert not [n for n in listing(out) if 'partial' in n]


def test_command_line_entry_point(model, images, tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, '-m', 'nodesr_arch.cli', 'infer', '-i', str(images / 'grey.png'),
                           '-o', str(out), '--scale', '1.5', '--model', model],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'wrote 1 image' in proc.stdout
    assert read(out / 'grey_x1.5.png').shape == (31, 25)


def test_exif_orientation_is_applied(tmp_path):
    from PIL import ImageOps

    from nodesr_arch.infer import read_image

    img = np.random.default_rng(0).integers(0, 256, (6, 9, 3)).astype(np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f'o{orientation}.png'
        pil = Image.fromarray(img)
        exif = pil.getexif()
        exif[0x0112] = orientation
        pil.save(path, exif=exif)
        with Image.open(path) as im:
            upright = np.asarray(ImageOps.exif_transpose(im))
        assert np.array_equal(read_image(str(path)), upright), orientation


def test_fixed_scale_model_at_another_scale_warns_once(images, tmp_path, capsys):
    from helpers import TINY_EDSR_X2, save_basicsr_model
    edsr = save_basicsr_model(str(tmp_path / 'm'), TINY_EDSR_X2, 'EDSR')
    args = ['-i', str(images / 'odd.jpg'), '-o', str(tmp_path / 'out'), '--model', edsr, '-q']
    assert main(args + ['--scale', '2']) == 0
    assert 'warning' not in capsys.readouterr().err
    assert main(args + ['--scale', '2.5']) == 0
    err = capsys.readouterr().err
    assert err.count('warning') == 1 and 'EDSR is a fixed-scale x2 network: at x2.5' in err
    assert read(tmp_path / 'out' / 'odd_x2.5.jpg').shape == (37, 32, 3)
