"""nodesr prepare: LMDB (BasicSR writer, sub-images), benchmark LR sets, refusals."""
import os

import cv2
import numpy as np

import nodesr_arch  # noqa: F401,I001
from nodesr_arch.commands import prepare
from nodesr_arch.data.continuous_scale_dataset import lmdb_meta
from nodesr_arch.data.scale_space import metasr_pair
from nodesr_arch.file_io import read_image


def _images(folder):
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    cv2.imwrite(os.path.join(folder, 'a.png'), rng.integers(0, 256, (40, 52, 3), dtype=np.uint8))
    cv2.imwrite(os.path.join(folder, 'b.png'), rng.integers(0, 256, (45, 37), dtype=np.uint8))  # grey
    cv2.imwrite(os.path.join(folder, 'c.png'), rng.integers(0, 65536, (33, 41, 3), dtype=np.uint16))
    return folder


def test_lmdb_holds_the_images_and_refuses_to_overwrite(tmp_path, capsys):
    src = _images(str(tmp_path / 'HR'))
    out = str(tmp_path / 'HR.lmdb')
    assert prepare.main(['lmdb', src, out]) == 0
    assert [k for k, _ in lmdb_meta(out)] == ['a', 'b', 'c']
    assert dict(lmdb_meta(out))['b'] == (45, 37)
    import lmdb
    env = lmdb.open(out, readonly=True, lock=False)
    with env.begin() as txn:
        for key in ['a', 'b', 'c']:
            stored = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(stored, cv2.imread(os.path.join(src, key + '.png'), cv2.IMREAD_UNCHANGED))
    env.close()
    before = open(os.path.join(out, 'meta_info.txt')).read()
    os.remove(os.path.join(src, 'c.png'))
    assert prepare.main(['lmdb', src, out]) == 1
    assert 'already exists' in capsys.readouterr().err
    assert open(os.path.join(out, 'meta_info.txt')).read() == before
    assert prepare.main(['lmdb', src, out, '--force']) == 0
    assert [k for k, _ in lmdb_meta(out)] == ['a', 'b']
    assert not [n for n in os.listdir(tmp_path) if 'partial' in n]


def test_lmdb_path_must_end_in_lmdb(tmp_path, capsys):
    assert prepare.main(['lmdb', _images(str(tmp_path / 'HR')), str(tmp_path / 'x.db')]) == 1
    assert '.lmdb' in capsys.readouterr().err


def test_subimage_extraction_follows_basicsr(tmp_path):
    src = str(tmp_path / 'big')
    os.makedirs(src)
    img = np.random.default_rng(1).integers(0, 256, (100, 130, 3), dtype=np.uint8)
    cv2.imwrite(os.path.join(src, 'p.png'), img)
    out = str(tmp_path / 'big.lmdb')
    args = ['lmdb', src, out, '--extract', '--crop-size', '48', '--step', '32', '--n-thread', '1']
    assert prepare.main(args) == 0
    sub = src + '_sub'
    names = sorted(os.listdir(sub))
    # rows start at 0, 32, 52 (flush with the edge); columns at 0, 32, 64, 82
    assert len(names) == 3 * 4 and names[0] == 'p_s001.png' and names[-1] == 'p_s012.png'
    np.testing.assert_array_equal(cv2.imread(os.path.join(sub, 'p_s001.png')), img[:48, :48])
    np.testing.assert_array_equal(cv2.imread(os.path.join(sub, 'p_s012.png')), img[52:, 82:])
    assert len(lmdb_meta(out)) == 12
    assert prepare.main(args) == 1  # sub-image folder and LMDB exist


def test_lr_sets(tmp_path, capsys):
    root = str(tmp_path / 'Tiny')
    _images(os.path.join(root, 'HR'))
    assert prepare.main(['lr', '--data', root, '--scales', '2', '1.5:1.6:0.1']) == 0
    for s in (2.0, 1.5, 1.6):
        folder = os.path.join(root, 'LR_bicubic', f'X{s:.2f}')
        assert sorted(os.listdir(folder)) == ['a.png', 'b.png', 'c.png']
        for name in ('a', 'b', 'c'):
            hr, grey, levels = read_image(os.path.join(root, 'HR', name + '.png'), as_float=True)
            lr, _, _ = metasr_pair(hr, s, levels=levels)
            got, got_grey, got_levels = read_image(os.path.join(folder, name + '.png'), as_float=True)
            assert (got_grey, got_levels) == (grey, levels)
            np.testing.assert_allclose(got, lr, atol=1e-6)
    assert prepare.main(['lr', '--data', root, '--scales', '2']) == 1
    assert 'already exists' in capsys.readouterr().err
    assert prepare.main(['lr', '--data', root, '--scales', '0.5']) == 1
