"""nodesr benchmark on a tiny generated dataset: csv + md, plug-in models, LR folders."""
import csv
import os

import cv2
import numpy as np
import pytest

import nodesr_arch  # noqa: F401,I001
from nodesr_arch import benchmark, prepare
from nodesr_arch.data.image_io import read_image
from nodesr_arch.data.scale_space import enlarge, make_pair
from nodesr_arch.metrics import psnr_ssim


@pytest.fixture
def tiny(tmp_path):
    root = str(tmp_path / 'Tiny')
    os.makedirs(os.path.join(root, 'HR'))
    rng = np.random.default_rng(0)
    for name, (h, w) in [('a', (41, 50)), ('b', (36, 45))]:
        small = rng.integers(0, 256, (h // 3, w // 3, 3), dtype=np.uint8)
        cv2.imwrite(os.path.join(root, 'HR', name + '.png'), cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    return root


def _rows(out):
    with open(os.path.join(out, 'results.csv')) as f:
        return list(csv.DictReader(f))


def test_bicubic_csv_and_markdown(tiny, tmp_path):
    out = str(tmp_path / 'out')
    argv = ['--model', 'bicubic', '--data', tiny, '--scales', '2', '1.5:1.7:0.1', '--protocol', 'modcrop',
            '--out', out, '--quiet', '--per-image']
    assert benchmark.main(argv) == 0
    rows = _rows(out)
    assert list(rows[0]) == ['dataset', 'scale', 'model', 'psnr', 'ssim']
    assert [(r['dataset'], r['scale'], r['model']) for r in rows] == [('Tiny', s, 'bicubic')
                                                                       for s in ('2', '1.5', '1.6', '1.7')]
    # the x1.6 figure is the mean over the images of the protocol pair measured directly
    scores = []
    for name in ('a', 'b'):
        hr, grey, _ = read_image(os.path.join(tiny, 'HR', name + '.png'))
        lr, gt, out_size = make_pair(hr, 1.6, 'modcrop')
        scores.append(psnr_ssim(enlarge(lr, 1.6, out_size), gt, 1.6, grey))
    assert float(rows[2]['psnr']) == pytest.approx(np.mean(scores, axis=0)[0], abs=1e-3)
    assert float(rows[2]['ssim']) == pytest.approx(np.mean(scores, axis=0)[1], abs=1e-4)
    md = open(os.path.join(out, 'results.md')).read()
    assert '## Tiny' in md and '| x1.6 |' in md and 'nodesr benchmark --model bicubic' in md
    assert len(open(os.path.join(out, 'per_image.csv')).read().splitlines()) == 1 + 2 * 4


def test_plugin_models_are_loaded_lazily(tiny, tmp_path, monkeypatch):
    import nodesr_arch.api as api

    class Blurry:
        name = 'blurry'

        def super_resolve(self, lr, scale, out_size=None, self_ensemble=False, **kwargs):
            assert self_ensemble is True
            return cv2.GaussianBlur(benchmark.Bicubic().super_resolve(lr, scale, out_size), (5, 5), 2)

    seen = []
    monkeypatch.setattr(api, 'load_model', lambda spec, device='cpu': seen.append(spec) or Blurry())
    out = str(tmp_path / 'out')
    argv = ['--model', 'bicubic', 'ckpt.pth', 'mine=other.yml', '--data', tiny, '--scales', '3', '--out', out,
            '--quiet', '--self-ensemble']
    assert benchmark.main(argv) == 0
    rows = _rows(out)
    assert seen == ['ckpt.pth', 'other.yml'] and [r['model'] for r in rows] == ['bicubic', 'blurry', 'mine']
    assert float(rows[1]['psnr']) < float(rows[0]['psnr']) and rows[1]['psnr'] == rows[2]['psnr']


def test_lr_folders_from_prepare_match_the_protocol(tiny, tmp_path):
    assert prepare.main(['lr', '--data', tiny, '--scales', '2', '2.5']) == 0
    made, read = str(tmp_path / 'made'), str(tmp_path / 'read')
    common = ['--data', tiny, '--scales', '2', '2.5', '--quiet']
    assert benchmark.main(common + ['--protocol', 'metasr', '--out', made]) == 0
    assert benchmark.main(common + ['--lr-dir', os.path.join(tiny, 'LR_bicubic', 'X{scale:.2f}'), '--out', read]) == 0
    assert _rows(made) == _rows(read)


def test_bad_arguments(tiny, tmp_path, capsys):
    out = str(tmp_path / 'out')
    assert benchmark.main(['--data', tiny, '--scales', 'x2', '--out', out]) == 1
    assert "bad scale 'x2'" in capsys.readouterr().err
    assert benchmark.main(['--data', tiny, '--scales', '2', '--lr-dir', str(tmp_path / 'nope'), '--out', out]) == 1
    assert 'LR folder not found' in capsys.readouterr().err
    assert benchmark.main(['--data', str(tmp_path / 'missing'), '--scales', '2', '--out', out]) == 1
    assert not os.path.exists(out)
