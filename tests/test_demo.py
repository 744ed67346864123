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
    assert '| scale | bicubic PSNR / SSIM | tiny_NODEVDSR PSNR / SSIM | tiny_NODEVDSR gain (dB) |' in text
    assert '| x2 |' in text and '| x3.5 |' in text
    assert str(out) in text
    rows = list(csv.DictReader(open(out / 'results.csv')))
    assert len(rows) == 2 * 2 * 2
    assert all(float(r['psnr']) > 10 and 0 < float(r['ssim']) <= 1 for r in rows)
    mean = {m: sum(float(r['psnr']) for r in rows if r['scale'] == '2.0' and r['method'] == m) / 2
            for m in ('bicubic', 'tiny_NODEVDSR')}
    gain_row = [line for line in text.splitlines() if line.startswith('| x2 |')][0]
    assert gain_row.endswith(f"| {mean['tiny_NODEVDSR'] - mean['bicubic']:+.2f} |")
    for name in ('psnr_vs_scale.png', 'astronaut_x3.5_trajectory.png', 'results.md', 'camera_hr.png',
                 'camera_x2_bicubic.png', 'astronaut_x3.5_tiny_NODEVDSR.png'):
        assert (out / name).stat().st_size > 0, name


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
