"""``nodesr demo`` with a tiny model, two pictures and two scales: the table, the files, the errors."""
import csv

import pytest

from helpers import save_tiny_model
from nodesr_arch.commands.demo import load_picture, main


def test_demo_prints_table_and_writes_outputs(tmp_path, capsys):
    model = save_tiny_model(str(tmp_path / 'model'))
    out = tmp_path / 'demo'
    assert main(['--model', model, '--out', str(out), '--images', 'astronaut,camera', '--scales', '2,3.5',
                 '--crop', '48', '--trajectory', '3']) == 0
    text = capsys.readouterr().out
    assert '| method | x2 | x3.5 |' in text and '| bicubic |' in text and '| tiny_NODEVDSR |' in text
    assert 'PSNR gain over bicubic (dB)' in text
    assert str(out) in text
    rows = list(csv.DictReader(open(out / 'per_image.csv')))
    assert len(rows) == 2 * 2 * 2
    assert all(float(r['psnr']) > 10 and 0 < float(r['ssim']) <= 1 for r in rows)
    mean = {m: sum(float(r['psnr']) for r in rows if r['scale'] == '2' and r['model'] == m) / 2
            for m in ('bicubic', 'tiny_NODEVDSR')}
    means = {r['model']: float(r['psnr']) for r in csv.DictReader(open(out / 'results.csv')) if r['scale'] == '2'}
    assert means == pytest.approx(mean, abs=1e-3)
    gain_row = [line for line in text.splitlines() if line.startswith('| tiny_NODEVDSR | +')
                or line.startswith('| tiny_NODEVDSR | -')][0]
    assert gain_row.startswith(f"| tiny_NODEVDSR | {means['tiny_NODEVDSR'] - means['bicubic']:+.2f} |")
    for name in ('psnr_vs_scale.png', 'astronaut_x3.5_trajectory.png', 'results.md', 'camera_hr.png',
                 'camera_x2_bicubic.png', 'astronaut_x3.5_tiny_NODEVDSR.png'):
        assert (out / name).stat().st_size > 0, name


def test_demo_numbers_are_the_protocol(tmp_path):
    """Each picture's PSNR/SSIM is image_metrics of the written enlargement against its Meta-SR GT (bicubic)."""
    from nodesr_arch.data.scale_space import metasr_pair
    from nodesr_arch.file_io import read_image
    from nodesr_arch.metrics import image_metrics
    model = save_tiny_model(str(tmp_path / 'model'))
    out = tmp_path / 'demo'
    assert main(['--model', model, '--out', str(out), '--images', 'camera,astronaut', '--scales', '2.5',
                 '--crop', '40', '--trajectory', '0']) == 0
    rows = {(r['image'], r['model']): r for r in csv.DictReader(open(out / 'per_image.csv'))}
    for name in ('camera', 'astronaut'):
        hr, grey = load_picture(name, crop=40)
        _, gt, _ = metasr_pair(hr, 2.5)
        sr, _, _ = read_image(str(out / f'{name}_x2.5_bicubic.png'), as_float=True)
        psnr, ssim = image_metrics(sr, gt, 2.5, grey=grey).values()
        assert float(rows[name, 'bicubic']['psnr']) == pytest.approx(psnr, abs=1e-4)
        assert float(rows[name, 'bicubic']['ssim']) == pytest.approx(ssim, abs=1e-5)


def test_pictures_and_bad_names():
    img, grey = load_picture('camera', crop=40)
    assert img.shape == (40, 40, 3) and grey
    img, grey = load_picture('chelsea', crop=None)
    assert img.shape == (300, 451, 3) and not grey
    with pytest.raises(ValueError, match='no picture'):
        load_picture('no_such_picture')


def test_bad_scales_are_usage_errors(capsys):
    with pytest.raises(SystemExit):
        main(['--scales', '0.5,2'])
    assert '--scales' in capsys.readouterr().err
