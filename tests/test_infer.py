"""``nodesr infer``: sizes, modes and depths of the outputs; validation before writing; no overwrites."""
import collections
import errno
import io
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import save_tiny_model
from nodesr_arch import file_io
from nodesr_arch.commands.infer import main


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
    assert main(args + ['-o', str(tmp_path / 'b'), '--method', 'nope']) == 2
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
    assert main(['-i', str(images), '-o', str(tmp_path / 'out'), '--model', model] + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_missing_and_corrupt_inputs_write_nothing(model, images, tmp_path, capsys):
    out = tmp_path / 'out'
    assert main(['-i', str(images / 'nope.png'), '-o', str(out), '--scale', '2', '--model', model]) == 2
    assert 'input not found' in capsys.readouterr().err
    data = (images / 'deep.png').read_bytes()
    (images / 'zz_truncated.png').write_bytes(data[:len(data) // 2])
    assert main(['-i', str(images), '-o', str(out), '--scale', '2', '--model', model]) == 2
    err = capsys.readouterr().err
    assert 'cannot decode image' in err and 'zz_truncated.png' in err
    (images / 'zz_truncated.png').unlink()
    jpeg = (images / 'odd.jpg').read_bytes()
    (images / 'cut.jpg').write_bytes(jpeg[:len(jpeg) - 40])  # OpenCV would decode half a JPEG
    assert main(['-i', str(images / 'cut.jpg'), '-o', str(out), '--scale', '2', '--model', model]) == 2
    assert 'cut.jpg' in capsys.readouterr().err
    (images / 'cut.jpg').unlink()
    assert not out.exists()
    assert main(['-i', str(images), '-o', str(out), '--scale', '2', '--model', str(images / 'no.pth')]) == 2
    assert 'not found' in capsys.readouterr().err and not out.exists()


def test_refuses_to_overwrite_outputs_and_never_inputs(model, images, tmp_path, capsys):
    out = tmp_path / 'out'
    args = ['-i', str(images), '-o', str(out), '--scale', '2', '--model', model, '-q']
    assert main(args) == 0
    before = {n: (out / n).read_bytes() for n in listing(out)}
    (out / 'grey_x2.png').unlink()
    assert main(args) == 2  # rgba_x2.png etc. exist: nothing written, not even grey_x2.png
    assert 'exists' in capsys.readouterr().err
    assert 'grey_x2.png' not in listing(out)
    assert main(args + ['--force']) == 0
    assert {n: (out / n).read_bytes() for n in listing(out)} == before
    inputs = {n: (images / n).read_bytes() for n in listing(images)}
    assert main(['-i', str(images), '-o', str(images), '--scale', '2', '--suffix', '', '--model', model,
                 '--force']) == 2
    assert 'would overwrite the input' in capsys.readouterr().err
    assert {n: (images / n).read_bytes() for n in listing(images)} == inputs
    assert not [n for n in listing(out) if 'partial' in n]


def test_command_line_entry_point(model, images, tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, '-m', 'nodesr_arch.commands.cli', 'infer', '-i', str(images / 'grey.png'),
                           '-o', str(out), '--scale', '1.5', '--model', model],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'wrote 1 image' in proc.stdout
    assert read(out / 'grey_x1.5.png').shape == (31, 25)


def test_exif_orientation_is_applied(tmp_path):
    from PIL import ImageOps

    img = np.random.default_rng(0).integers(0, 256, (6, 9, 3)).astype(np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f'o{orientation}.png'
        pil = Image.fromarray(img)
        exif = pil.getexif()
        exif[0x0112] = orientation
        pil.save(path, exif=exif)
        with Image.open(path) as im:
            upright = np.asarray(ImageOps.exif_transpose(im))
        assert np.array_equal(file_io.read_image(str(path), check=True), upright), orientation
        late = tmp_path / f'late{orientation}.png'  # the eXIf chunk after the pixels, where PNG allows it too
        late.write_bytes(exif_after_pixels(path.read_bytes()))
        assert np.array_equal(file_io.read_image(str(late), check=True), upright), orientation


def exif_after_pixels(png):
    """PNG bytes with their eXIf chunk moved to just before IEND."""
    chunks, i = [], 8
    while i < len(png):
        length = int.from_bytes(png[i:i + 4], 'big')
        chunks.append(png[i:i + 12 + length])
        i += 12 + length
    exif = [c for c in chunks if c[4:8] == b'eXIf']
    assert len(exif) == 1
    rest = [c for c in chunks if c[4:8] != b'eXIf']
    return png[:8] + b''.join(rest[:-1] + exif + rest[-1:])


def test_each_input_is_decoded_once(model, images, tmp_path, monkeypatch):
    import PIL.ImageFile

    calls = collections.Counter()
    imdecode, load = cv2.imdecode, PIL.ImageFile.ImageFile.load
    monkeypatch.setattr(cv2, 'imdecode', lambda *a: calls.update([a[0].tobytes()]) or imdecode(*a))
    monkeypatch.setattr(PIL.ImageFile.ImageFile, 'load', lambda self: calls.update(['PIL']) or load(self))
    assert main(['-i', str(images), '-o', str(tmp_path / 'out'), '--scale', '2', '--model', model, '-q']) == 0
    assert sorted(calls.values()) == [1] * 4 and 'PIL' not in calls
    assert sorted(calls) == sorted(p.read_bytes() for p in images.iterdir())


def test_half_a_jpeg_is_refused_where_opencv_decodes_it(images, monkeypatch):
    monkeypatch.setattr(cv2, 'imdecode', lambda *a: np.zeros((15, 13, 3), np.uint8))  # as OpenCV 4 does
    jpeg = (images / 'odd.jpg').read_bytes()
    (images / 'cut.jpg').write_bytes(jpeg[:len(jpeg) - 40])
    (images / 'tail.jpg').write_bytes(jpeg + b'trailing bytes after the end marker')
    with pytest.raises(file_io.ImageReadError, match=r'cannot decode image .*cut\.jpg: image file is truncated'):
        file_io.read_image(str(images / 'cut.jpg'), check=True)
    for name in ('odd.jpg', 'tail.jpg'):
        assert file_io.read_image(str(images / name), check=True).shape == (15, 13, 3)


def test_progress_bar_on_stderr_unless_quiet(model, images, tmp_path, capsys):
    args = ['-i', str(images), '-o', str(tmp_path / 'out'), '--scale', '2', '--model', model, '--runtime', 'torch']
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert re.search(r'nodesr infer \(.*\).* 4/4 \[\d\d:\d\d<\d\d:\d\d', err), err  # images done, time left
    assert out.startswith('wrote 4 images to ')
    assert main(args + ['--force', '--quiet']) == 0
    out, err = capsys.readouterr()
    assert err == '' and out.startswith('wrote 4 images to ')


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


def cli(*args):
    """Run ``nodesr infer`` in a subprocess: ``(exit status, stdout, stderr)``."""
    proc = subprocess.run([sys.executable, '-m', 'nodesr_arch.commands.cli', 'infer', '-q', *args], capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(err):
    """The message of a run that stopped with exactly one error line (no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('nodesr infer: error: '), err
    return lines[0]


def tree(folder):
    """Every path under ``folder`` with its size (hidden temporary files included)."""
    return sorted((os.path.relpath(os.path.join(d, n), folder), os.path.getsize(os.path.join(d, n)))
                  for d, _, names in os.walk(folder) for n in names + [''])


def test_one_pixel_wide_and_tall_images_are_enlarged(model, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'a_tall.png'), rng.integers(0, 256, (9, 1, 3)).astype(np.uint8))
    cv2.imwrite(str(folder / 'b_wide.png'), rng.integers(0, 256, (1, 7)).astype(np.uint8))
    cv2.imwrite(str(folder / 'c_dot.png'), rng.integers(0, 256, (1, 1, 3)).astype(np.uint8))
    out = tmp_path / 'out'
    assert main(['-i', str(folder), '-o', str(out), '--scale', '3', '--model', model, '-q', '--trajectory', '3']) == 0
    assert read(out / 'a_tall_x3.png').shape == (27, 3, 3)
    assert read(out / 'b_wide_x3.png').shape == (3, 21)
    assert read(out / 'c_dot_x3.png').shape == (3, 3, 3)
    assert len(listing(out)) == 9


def _bad_yaml(tmp_path, model):
    (tmp_path / 'syntax.yml').write_text('network_g:\n  type: NODEVDSR\n    num_feat: 4\n')
    (tmp_path / 'arch.yml').write_text(f'network_g: {{type: Nope}}\npath: {{pretrain_network_g: {model}}}\n')
    # loading must not run it: the MARKER file would appear in tmp_path, which the test compares
    marker = tmp_path / 'MARKER'
    (tmp_path / 'evil.yml').write_text(f'network_g: {{type: NODEVDSR}}\n'
                                       f'x: !!python/object/apply:os.system ["touch {marker}"]\n')


@pytest.mark.parametrize('args,message', [
    (['--size', '99999x99999'], r'a\.png: a 99999x99999 \(HxW\) output needs about \d+\.\d TB of memory \(estimated\), '
                                r'more than the [\d.]+ [GTM]B free on cpu'),
    (['--scale', '2', '-o', ''], 'the output folder name is empty'),
    (['--scale', '2', '--force', '-o', '{tmp}/taken'],
     r'taken.a_x2\.png is a folder; not replaced \(not even with --force\)'),
    (['--scale', '2', '--model', '{tmp}/syntax.yml'], r'syntax\.yml: not valid YAML \(.*line 3 column 13\)'),
    (['--scale', '2', '--model', '{tmp}/arch.yml'], "arch.yml: network_g type 'Nope' is not an architecture"),
    (['--scale', '2', '--model', '{tmp}/evil.yml'], r'evil\.yml.*python/object/apply:os\.system'),
    (['--scale', '2', '--model', '{tmp}/garbage.pth'], 'garbage.pth: cannot read checkpoint: not a valid PyTorch'),
    (['--width', '70000', '-i', '{tmp}/a.jpg'], r'a_58333x70000\.jpg: 70000x58333 \(WxH\) is larger than \.jpg allows'),
    (['--scale', '6000', '--trajectory', '3'], r'a_x6000_trajectory\.gif: 72000x60000 .* \.gif allows .*--trajectory'),
    (['--scale', '2', '--suffix', '/x'], 'holds a path separator'),
], ids=['huge size', 'empty -o', 'folder at output', 'yaml syntax', 'yaml arch', 'yaml code', 'garbage pth',
        'jpeg too wide', 'gif too wide', 'suffix'])
def test_hostile_requests_stop_with_one_line_and_write_nothing(model, tmp_path, args, message):
    """Each case ends in one error line, exit status 2, nothing written or run (the issue's item 5 cases)."""
    import re
    img = np.random.default_rng(0).integers(0, 256, (10, 12, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'a.jpg'), img)
    (tmp_path / 'taken' / 'a_x2.png').mkdir(parents=True)
    (tmp_path / 'garbage.pth').write_bytes(b'not a checkpoint')
    shutil.copy(model[:-4] + '.yml', tmp_path / 'garbage.yml')
    _bad_yaml(tmp_path, model)
    before = tree(tmp_path)
    args = [a.format(tmp=tmp_path) for a in args]
    if '-i' not in args:
        args += ['-i', str(tmp_path / 'a.png')]
    if '-o' not in args:
        args += ['-o', str(tmp_path / 'out')]
    if '--model' not in args:
        args += ['--model', model]
    status, out, err = cli(*args)
    assert status == 2 and out == ''
    assert re.search(message, one_error_line(err)), err
    assert 'weights_only' not in err
    assert tree(tmp_path) == before


def test_input_without_extension_is_written_as_png(model, images, tmp_path):
    shutil.copy(images / 'odd.jpg', tmp_path / 'scan')
    status, _, err = cli('-i', str(tmp_path / 'scan'), '-o', str(tmp_path / 'out'), '--scale', '2', '--model', model)
    assert status == 0, err
    assert listing(tmp_path / 'out') == ['scan_x2.png']
    assert read(tmp_path / 'out' / 'scan_x2.png').shape == (30, 26, 3)


def test_read_only_output_parent_is_refused_up_front(model, images, tmp_path, capsys):
    parent = tmp_path / 'locked'
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip('chmod does not stop this user (root)')
        for out in (parent, parent / 'new'):
            assert main(['-i', str(images / 'odd.jpg'), '-o', str(out), '--scale', '2', '--model', model]) == 2
            assert 'Permission denied' in one_error_line(capsys.readouterr().err)
        assert listing(parent) == []
    finally:
        parent.chmod(0o755)


def test_float32_tiff_is_read_and_kept_float(model, tmp_path, capsys):
    img = np.random.default_rng(0).random((9, 11, 3)).astype(np.float32)
    cv2.imwrite(str(tmp_path / 'f.tif'), img)
    out = tmp_path / 'out'
    assert main(['-i', str(tmp_path / 'f.tif'), '-o', str(out), '--scale', '2', '--model', model, '-q']) == 0
    big = read(out / 'f_x2.tif')
    assert big.dtype == np.float32 and big.shape == (18, 22, 3) and 0 <= big.min() and big.max() <= 1
    cv2.imwrite(str(tmp_path / 'g.tif'), img * 255)
    assert main(['-i', str(tmp_path / 'g.tif'), '-o', str(out), '--scale', '2', '--model', model]) == 2
    assert 'floats must lie in [0, 1]; for 0-255 data divide by 255' in one_error_line(capsys.readouterr().err)
    (tmp_path / 'h.tif').write_bytes(b'II*\x00' + b'\x00' * 20)  # a TIFF header and nothing usable
    assert main(['-i', str(tmp_path / 'h.tif'), '-o', str(out), '--scale', '2', '--model', model]) == 2
    assert 'cannot decode image' in one_error_line(capsys.readouterr().err)
    assert listing(out) == ['f_x2.tif']


@pytest.mark.parametrize('code', [errno.ENOSPC, errno.EACCES])
@pytest.mark.parametrize('fail_on', ['odd_x3.jpg', 'grey_x3_trajectory.gif'])
def test_failed_writes_report_the_system_error_and_leave_no_partial_file(model, images, tmp_path, capsys, monkeypatch,
                                                                         code, fail_on):
    """A full disk or a folder made read-only mid-run: the OS's reason, exit status 1, no half file."""
    import builtins

    from nodesr_arch import file_io

    class Failing(io.FileIO):
        def write(self, data):
            super().write(bytes(data)[:10])  # part of the file reaches the disk, then the error
            raise OSError(code, os.strerror(code))

    def fake_open(path, mode='r', *args, **kwargs):
        stem, ext = os.path.splitext(fail_on)
        name = os.path.basename(str(path))  # the temporary file of fail_on: .STEM.PID.partial.EXT
        if 'w' in mode and name.startswith(f'.{stem}.') and name.endswith(ext):
            return Failing(path, 'wb')
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(file_io, 'open', fake_open, raising=False)
    out = tmp_path / 'out'
    args = ['-i', str(images), '-o', str(out), '--scale', '3', '--model', model, '-q', '--trajectory', '2']
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f'cannot write {out / fail_on}: {os.strerror(code)}' in line
    done = listing(out)
    assert fail_on not in done and not [n for n in done if n.startswith('.')]  # no partial or temporary file
    assert f'{len(done)} files written before it (complete)' in line
    for name in done:
        if name.endswith(('.png', '.jpg')):
            assert read(out / name) is not None, name


def test_out_of_memory_while_running_is_one_line(model, images, tmp_path, capsys, monkeypatch):
    from nodesr_arch.api import Upscaler

    def upscale(self, img, *args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory\nmore")

    monkeypatch.setattr(Upscaler, '_upscale', upscale)
    out = tmp_path / 'out'
    assert main(['-i', str(images / 'odd.jpg'), '-o', str(out), '--scale', '2', '--model', model, '-q']) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "odd.jpg: out of memory ([enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate " \
           'memory); try --tile 256 or a smaller size; nothing was written' in line
    assert listing(out) == []


def test_each_input_is_decoded_once_and_planned_once(model, images, tmp_path, monkeypatch):
    from nodesr_arch import api, file_io, scales
    from nodesr_arch.commands import infer
    decoded, planned = [], []
    real_decode, real_plan = file_io.decode_image, scales.plan_size
    monkeypatch.setattr(file_io, 'decode_image', lambda data, name: decoded.append(name) or real_decode(data, name))
    for module in (infer, api):
        monkeypatch.setattr(module, 'plan_size', lambda *a, **k: planned.append(a[0]) or real_plan(*a, **k))
    out = tmp_path / 'out'
    assert main(['-i', str(images), '-o', str(out), '--scale', '2', '--model', model, '-q']) == 0
    inputs = [n for n in os.listdir(images) if not n.startswith('.')]
    assert sorted(os.path.basename(p) for p in decoded) == sorted(inputs)
    assert len(planned) == len(inputs)


def test_the_plan_is_not_redone_below_it(model, tmp_path):
    """The request is checked per image in the plan, the contract read and the tiling decided once per run and the
    trajectory's scales computed once per image; the layers below run what was decided (issue 21)."""
    from nodesr_arch import scales
    from nodesr_arch.api import Upscaler
    from nodesr_arch.archs import contract
    watched = {'check_scale': scales.check_scale, 'plan_size': scales.plan_size,
               'trajectory_scales': scales.trajectory_scales, 'Upscaler.trajectory_scales': Upscaler.trajectory_scales,
               'contract': contract.contract, 'Upscaler.contract': Upscaler.contract.func,
               'Upscaler.tiling_for': Upscaler.tiling_for, 'SRNetwork.tiling_for': contract.SRNetwork.tiling_for,
               'check_tiling': contract.check_tiling}
    names = {fn.__code__: name for name, fn in watched.items()}
    calls = collections.Counter()
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), np.full((9, 11, 3), 90, np.uint8))
    cv2.imwrite(str(folder / 'b.png'), np.full((8, 7), 200, np.uint8))

    def count(frame, event, arg):
        if event == 'call' and frame.f_code in names:
            calls[names[frame.f_code]] += 1

    before = sys.getprofile()
    sys.setprofile(count)
    try:
        status = main(['-i', str(folder), '-o', str(tmp_path / 'out'), '-s', '2.7', '--model', model, '-q',
                       '--tile', '16', '--trajectory', '3'])
    finally:
        sys.setprofile(before)
    assert status == 0 and len(listing(tmp_path / 'out')) == 6
    per_run = {'check_scale': 1, 'contract': 1, 'Upscaler.contract': 1, 'Upscaler.tiling_for': 1,
               'SRNetwork.tiling_for': 1, 'check_tiling': 1}  # check_scale: the argument itself (argparse)
    per_image = {'check_scale': 1, 'plan_size': 1, 'trajectory_scales': 1, 'Upscaler.trajectory_scales': 1}
    assert dict(calls) == {name: per_run.get(name, 0) + 2 * per_image.get(name, 0) for name in watched}
