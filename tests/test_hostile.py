"""Hostile option files, names, locks and inputs (issue 18): each is refused with one line (exit 2) before
anything is written, and nothing outside the experiment is created, renamed or truncated. One case of each
kind runs as a real command line; the variants run the same entry points in this process (cheaper)."""
import errno
import os
import subprocess
import sys

import pytest
from test_safety import ENV, nodesr, tree

from benchmarks.common import tiny_train_options
from nodesr_arch.commands import test as nodesr_test
from nodesr_arch.commands import train as nodesr_train
from test_train import write_data, write_yml


def refused(proc, message):
    """A command line that stopped with exit 2 and one line holding ``message``, no traceback."""
    err = proc.stderr.replace(
        "<frozen runpy>:128: RuntimeWarning: 'basicsr.train' found in sys.modules after import of package "
        "'basicsr', but prior to execution of 'basicsr.train'; this may result in unpredictable behaviour\n", '')
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in err and err.count('\n') == 1 and 'Traceback' not in err, err
    return err


def main_refuses(main, args, capsys, message):
    """``main(args)`` (``nodesr train``/``test`` in this process) returns 2 with one line holding ``message``."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1, err
    return err


# ---- 1: an experiment name is one folder name -------------------------------------------------------------------


@pytest.fixture
def victim(tmp_path):
    """``victim/`` holding a file and the project ``victim/proj`` (data and a tiny option file) run from."""
    folder = tmp_path / 'victim'
    proj = folder / 'proj'
    proj.mkdir(parents=True)
    (folder / 'precious.txt').write_text('years of work')
    write_data(str(proj))
    write_yml(str(proj), tiny_train_options('tiny', total_iter=2))
    return folder


@pytest.mark.parametrize('command', ['train', 'test'])
def test_a_name_with_a_path_archives_nothing_outside_the_project(victim, command):
    before = tree(str(victim.parent))
    args = ['--force_yml', 'name=../../victim'] if command == 'test' else []
    if command == 'train':
        opt = tiny_train_options('../../victim', total_iter=2)
        write_yml(str(victim / 'proj'), opt)
    proc = nodesr(str(victim / 'proj'), command, '-opt', 'opt.yml', *args)
    refused(proc, "name: '../../victim' holds '/'; the experiment name must be one folder name")
    assert tree(str(victim.parent)) == before and (victim / 'precious.txt').read_text() == 'years of work'


def test_basicsrs_own_trainer_refuses_a_path_name_of_any_model(victim):
    """Not only NODE-SR option files: a stock SRModel file under ``python -m basicsr.train``."""
    (victim / 'proj' / 'stock.yml').write_text('name: ../../victim\nmodel_type: SRModel\nnum_gpu: 0\n'
                                               'datasets: {}\npath: {}\n')
    before = tree(str(victim.parent))
    proc = subprocess.run([sys.executable, '-m', 'basicsr.train', '-opt', 'stock.yml'], cwd=str(victim / 'proj'),
                          env=ENV, capture_output=True, text=True, timeout=240)
    refused(proc, "name: '../../victim' holds '/'")
    assert tree(str(victim.parent)) == before


@pytest.mark.parametrize('name, message', [
    ('/tmp/abs', "holds '/'"),
    ('a/b', "holds '/'"),
    ('.', 'is not a folder name'),
    ('..', 'is not a folder name'),
    ('a\0b', "holds '\\x00'"),
    ('x' * 300, 'name: 300 bytes long, more than an experiment name may be (200'),
    (' tiny', 'is not a folder name'),
    ('a\nb', 'is not a folder name'),
    (['a'], "name: must be a string"),
    ('', 'name: missing'),
])
@pytest.mark.parametrize('main', [nodesr_train.main, nodesr_test.main], ids=['train', 'test'])
def test_every_name_that_is_not_one_folder_name_is_refused_first(victim, monkeypatch, capsys, main, name, message):
    proj = victim / 'proj'
    write_yml(str(proj), tiny_train_options(name, total_iter=2))
    monkeypatch.chdir(proj)
    before = tree(str(victim.parent))
    main_refuses(main, ['-opt', 'opt.yml'], capsys, message)
    assert tree(str(victim.parent)) == before


def test_the_name_bound_leaves_room_for_every_name_basicsr_derives():
    from nodesr_arch.option_files import MAX_NAME_BYTES, OptionFileError, check_experiment_name
    check_experiment_name('é' * (MAX_NAME_BYTES // 2))
    with pytest.raises(OptionFileError, match='201 bytes long'):
        check_experiment_name('é' * (MAX_NAME_BYTES // 2) + 'x')
    # the longest: the log file train_NAME_YYYYMMDD_HHMMSS.log, and experiments/NAME_archived_YYYYMMDD_HHMMSS
    longest = len('train_') + MAX_NAME_BYTES + len('_20261202_072403.log')
    assert longest <= os.pathconf('.', 'PC_NAME_MAX')


def test_the_debug_prefix_is_part_of_the_checked_name(victim, monkeypatch, capsys):
    proj = victim / 'proj'
    write_yml(str(proj), tiny_train_options('x' * 195, total_iter=2))
    monkeypatch.chdir(proj)
    main_refuses(nodesr_train.main, ['-opt', 'opt.yml', '--debug'], capsys, 'name: 201 bytes long')
    assert not (proj / 'experiments').exists()


# ---- 2: the lock never follows a link --------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with data and a valid tiny option file ``opt.yml`` (experiment ``tiny``), as the cwd."""
    write_data(str(tmp_path))
    write_yml(str(tmp_path), tiny_train_options('tiny', total_iter=2))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_lock_that_is_a_symlink_is_not_followed(project):
    target = project / 'notes.txt'
    target.write_bytes(b'the link target\n')
    (project / 'experiments').mkdir()
    os.symlink(target, project / 'experiments' / '.tiny.lock')
    before = tree(str(project))
    proc = nodesr(str(project), 'train', '-opt', 'opt.yml')
    refused(proc, 'experiments/.tiny.lock is a symbolic link; the lock is never followed')
    assert target.read_bytes() == b'the link target\n' and tree(str(project)) == before


@pytest.mark.parametrize('make, message', [
    (os.mkdir, 'cannot make the experiment lock'),
    (os.mkfifo, 'is not a regular file'),
    (lambda p: os.symlink('/dev/null/no', p), 'is a symbolic link'),  # dangling: would be created through
])
def test_a_lock_path_that_cannot_be_a_lock_is_one_line(project, capsys, make, message):
    (project / 'experiments').mkdir()
    make(str(project / 'experiments' / '.tiny.lock'))
    before = tree(str(project))
    main_refuses(nodesr_train.main, ['-opt', 'opt.yml'], capsys, message)
    assert tree(str(project)) == before


def test_a_failing_flock_says_what_failed_not_who_holds_it(project, capsys, monkeypatch):
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, 'flock', no_locks)
    err = main_refuses(nodesr_train.main, ['-opt', 'opt.yml'], capsys, 'flock failed: No locks available')
    assert 'in use by another run' not in err
    assert not (project / 'experiments' / 'tiny').exists()


@pytest.mark.parametrize('code', [errno.EPERM, errno.EROFS])  # an immutable lock file, a read-only file system
def test_a_lock_the_system_refuses_to_open_is_one_line(project, capsys, monkeypatch, code):
    real_open = os.open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith('.lock'):
            raise OSError(code, os.strerror(code), path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, 'open', refusing_open)
    main_refuses(nodesr_train.main, ['-opt', 'opt.yml'], capsys,
                 f'cannot make the experiment lock {project / "experiments" / ".tiny.lock"}: {os.strerror(code)}')
    assert not (project / 'experiments' / 'tiny').exists()


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_a_read_only_experiments_folder_is_one_line(project, capsys):
    (project / 'experiments').mkdir()
    os.chmod(project / 'experiments', 0o555)
    try:
        main_refuses(nodesr_train.main, ['-opt', 'opt.yml'], capsys, 'cannot make the experiment lock')
    finally:
        os.chmod(project / 'experiments', 0o755)


# ---- 3: YAML that expands, is huge or gives a key twice ------------------------------------------------------

BOMB = 'a: &a [x, x, x, x, x, x, x, x, x, x]\n' + ''.join(
    f'{k}: &{k} [{", ".join([f"*{p}"] * 10)}]\n' for p, k in zip('abcdefgh', 'bcdefghi'))  # 10^9 strings


def test_an_alias_bomb_is_refused_before_an_earlier_result_is_archived(tmp_path):
    (tmp_path / 'results' / 'bomb').mkdir(parents=True)
    (tmp_path / 'results' / 'bomb' / 'metrics.json').write_text('{"psnr": 30}')
    (tmp_path / 'bomb.yml').write_text('name: bomb\nmodel_type: NODESRModel\n' + BOMB)
    before = tree(str(tmp_path))
    proc = nodesr(str(tmp_path), 'test', '-opt', 'bomb.yml', timeout=120)
    refused(proc, 'bomb.yml: its aliases expand to more than 100000 values (an alias bomb?)')
    assert tree(str(tmp_path)) == before


@pytest.mark.parametrize('text, message', [
    ('name: tiny\n' + BOMB, 'its aliases expand to more than 100000 values'),
    ('name: tiny\nx: &x [1, *x]\n', 'an alias refers to itself'),
    ('name: tiny\nmanual_seed: 1\nmanual_seed: 2\n', "'manual_seed' is given twice in one mapping (line 3)"),
    ('name: tiny\nname: other\n', "'name' is given twice"),
    ('name: tiny\nx: ' + '[' * 100 + ']' * 100 + '\n', 'nested more than 64 levels deep'),
    ('name: tiny\n' + '#' * (1 << 20) + '\n', 'bytes, over the bound for option files (1048576 bytes)'),
])
def test_yaml_that_expands_or_is_huge_is_refused_by_every_reader(project, capsys, monkeypatch, text, message):
    (project / 'opt.yml').write_text(text)
    before = tree(str(project))
    main_refuses(nodesr_train.main, ['-opt', 'opt.yml'], capsys, message)
    # BasicSR's own parse_options (python -m basicsr.train), for any model
    import basicsr.train as bt
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', 'opt.yml'])
    with pytest.raises(SystemExit) as e:
        bt.parse_options(str(project), is_train=True)
    assert e.value.code == 2 and message in capsys.readouterr().err
    # a model YAML (nodesr infer/benchmark --model)
    from nodesr_arch.api import load_model
    with pytest.raises(ValueError, match='opt.yml: '):
        load_model(str(project / 'opt.yml'))
    assert tree(str(project)) == before


# ---- 4: --force_yml never evaluates code ---------------------------------------------------------------------


def test_a_force_yml_value_is_never_evaluated(project):
    before = tree(str(project))
    proc = nodesr(str(project), 'train', '-opt', 'opt.yml', '--force_yml',
                  'datasets:train:scale_range=[__import__("os").system("touch MARKER"), 2]')
    refused(proc, "datasets:train:scale_range: the scale must be a finite number >= 1, got '__import__(")
    assert not (project / 'MARKER').exists() and tree(str(project)) == before


STOCK = ('name: stock\nmodel_type: SRModel\nnum_gpu: 0\nmanual_seed: 1\ndatasets: {}\nnetwork_g: {type: EDSR}\n'
         'path: {}\n')


@pytest.mark.parametrize('entry, message', [
    ('x"];__import__("os").system("touch MARKER");opt["y=1', 'is not a plain option name'),
    ('name=[__import__("os").system("touch MARKER")]', 'name: must be a string'),
    ('name=a=b', "--force_yml: 'name=a=b' has more than one '='"),
    ('name', "--force_yml: 'name' has no '='"),
    ('name=[unclosed', 'the value is not a YAML value'),
    ('name=a: b', 'the value is a mapping'),
    ('path:x:y=1', "--force_yml: 'path:x' is not a section of the options"),
    ('path: x=1', "key ' x' is not a plain option name"),  # BasicSR would make a key ' x'
])
def test_basicsr_never_execs_a_force_yml_entry(tmp_path, monkeypatch, capsys, entry, message):
    """``python -m basicsr.train`` passes the key to ``exec`` and values starting with ``[`` to ``eval``."""
    import basicsr.train as bt
    (tmp_path / 'stock.yml').write_text(STOCK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', 'stock.yml', '--force_yml', entry])
    with pytest.raises(SystemExit) as e:
        bt.parse_options(str(tmp_path), is_train=True)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.count('\n') == 1, err
    assert sorted(os.listdir(tmp_path)) == ['stock.yml']


def test_force_yml_values_are_yaml_and_manual_seed_takes_effect(tmp_path, monkeypatch):
    import random

    import numpy as np
    import torch

    import basicsr.train as bt
    from basicsr.utils import set_random_seed
    (tmp_path / 'stock.yml').write_text(STOCK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', 'stock.yml', '--force_yml', 'manual_seed=11',
                                      'network_g:ks=[3, 5]', 'network_g:lr=1.5e-4', 'network_g:n=-2',
                                      'network_g:off=none', 'network_g:s="[not a list]"'])
    opt, args = bt.parse_options(str(tmp_path), is_train=True)
    drawn = (random.random(), np.random.rand(), torch.rand(1).item())
    set_random_seed(11)
    assert drawn == (random.random(), np.random.rand(), torch.rand(1).item())  # seeded with 11, as logged
    assert opt['manual_seed'] == 11 and len(args.force_yml) == 6
    assert dict(opt['network_g'], type=None) == {'type': None, 'ks': [3, 5], 'lr': 1.5e-4, 'n': -2, 'off': None,
                                                 's': '[not a list]'}


# ---- 5: special files ------------------------------------------------------------------------------------------


def test_infer_refuses_a_fifo_without_waiting_on_it(tmp_path):
    os.mkfifo(tmp_path / 'pipe.png')
    proc = nodesr(str(tmp_path), 'infer', '-i', 'pipe.png', '-o', 'out', '--scale', '2', timeout=120)
    refused(proc, 'pipe.png: is a fifo, not a regular file (image files are read from regular files only)')
    assert sorted(os.listdir(tmp_path)) == ['pipe.png']


@pytest.mark.parametrize('kind', ['device', 'link to a device', 'fifo option file', 'device option file'])
def test_special_files_are_refused_whatever_their_name(tmp_path, monkeypatch, capsys, kind):
    from nodesr_arch.commands import infer
    monkeypatch.chdir(tmp_path)
    if kind.endswith('option file'):
        path = 'opt.yml'
        if kind.startswith('fifo'):
            os.mkfifo(path)
        else:
            os.symlink('/dev/zero', path)
        main_refuses(nodesr_train.main, ['-opt', path], capsys, f'opt.yml: is a {kind.split()[0]}, not a regular')
    else:
        path = '/dev/zero' if kind == 'device' else 'zero.png'
        if kind != 'device':
            os.symlink('/dev/zero', path)
        main_refuses(infer.main, ['-i', path, '-o', 'out', '--scale', '2'], capsys, 'is a device, not a regular file')
    assert not os.path.exists('out') and not os.path.exists('experiments')


def test_an_image_over_the_size_bound_is_refused_unread(tmp_path):
    from nodesr_arch.file_io import ImageReadError, read_bytes
    path = tmp_path / 'big.png'
    with open(path, 'wb') as f:
        f.truncate(1 << 20)  # sparse
    with pytest.raises(ImageReadError, match=r'big.png: 1048576 bytes, over the bound for image files \(1000 bytes'):
        read_bytes(str(path), max_bytes=1000)


# ---- 6: memory estimates count the resize matrices ---------------------------------------------------------


def test_a_long_strip_is_refused_by_the_memory_check(tmp_path):
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / 'strip.png'), np.full((1, 300000, 3), 128, np.uint8))
    proc = nodesr(str(tmp_path), 'infer', '-i', 'strip.png', '-o', 'out', '--scale', '2', timeout=120)
    refused(proc, 'strip.png: a 2x600000 (HxW) output needs about 1.4 TB of memory (estimated), more than')
    assert sorted(os.listdir(tmp_path)) == ['strip.png']


def test_the_estimate_counts_the_float64_resize_matrices():
    from nodesr_arch.api import load_model
    from nodesr_arch.data.scale_space import _resize_matrix
    up = load_model()
    matrix = _resize_matrix(3000, 6000, 2.0)  # what imresize builds to enlarge a 1x3000 strip x2
    need = matrix.element_size() * matrix.nelement()
    assert up.memory_estimate((2, 6000), in_size=(1, 3000)) > need
    assert up.memory_estimate((2, 60000), in_size=(1, 30000)) > 100 * need > 14e9  # 1x30000: ~14 GB (issue 18)
    square = up.memory_estimate((1000, 1000), in_size=(500, 500))
    assert square - up.memory_estimate((1000, 1000), in_size=(1, 1)) < 0.02 * square  # photos: small change


# ---- 8: honest messages --------------------------------------------------------------------------------------


def test_a_full_disk_during_a_checkpoint_save_is_named(tmp_path, monkeypatch):
    import torch

    from nodesr_arch.models import checkpoint
    path = tmp_path / 'net_g_2.pth'
    path.write_bytes(b'the previous checkpoint')

    def full_disk(obj, f):  # what torch.save does when a write fails (seen on a full tmpfs)
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match=r'No space left on device: cannot save .*net_g_2\.pth') as e:
        checkpoint.atomic_torch_save({'params': {}}, str(path))
    assert e.value.errno == errno.ENOSPC
    assert path.read_bytes() == b'the previous checkpoint' and os.listdir(tmp_path) == ['net_g_2.pth']


@pytest.mark.parametrize('content, message', [
    ('pickled call', 'it holds a pickled call of posix.system (code, not weights): refused, nothing was run'),
    (b'hello, not a checkpoint\n', "not a valid PyTorch checkpoint (a text file starting 'hello, not a checkpoint')"),
    (b'\x89PNG\r\n\x1a\n' + bytes(100), 'not a valid PyTorch checkpoint (a PNG image)'),
    (bytes(range(256)) * 4, 'not a valid PyTorch checkpoint (binary data of another kind)'),
])
def test_a_checkpoint_that_is_not_weights_says_what_it_is(tmp_path, content, message):
    import torch

    from helpers import save_tiny_model, write_images
    model = save_tiny_model(str(tmp_path))
    if content == 'pickled call':
        class Payload:
            def __reduce__(self):
                return os.system, (f'touch {tmp_path / "MARKER"}', )
        torch.save({'params': Payload()}, model)
    else:
        with open(model, 'wb') as f:
            f.write(content)
    from nodesr_arch.api import load_model
    with pytest.raises(ValueError) as e:
        load_model(model)
    assert str(e.value) == f'{model}: cannot read checkpoint: ' + str(e.value).split('cannot read checkpoint: ')[1]
    assert message in str(e.value) and not (tmp_path / 'MARKER').exists()
    if content == 'pickled call':  # and from the command line
        write_images(str(tmp_path / 'imgs'), [(24, 24)])
        before = tree(str(tmp_path))
        proc = nodesr(str(tmp_path), 'infer', '-i', 'imgs', '-o', 'out', '--scale', '2', '--model', model, timeout=120)
        refused(proc, message)
        assert not (tmp_path / 'MARKER').exists() and tree(str(tmp_path)) == before


def test_nodesr_train_reports_a_full_disk_in_one_line(project, capsys, monkeypatch):
    import basicsr.train

    def full(root_path):
        raise OSError(errno.ENOSPC, 'No space left on device: cannot save experiments/tiny/models/net_g_2.pth')

    monkeypatch.setattr(basicsr.train, 'train_pipeline', full)
    assert nodesr_train.main(['-opt', 'opt.yml']) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'error: No space left on device: cannot save' in err and '--auto_resume' in err
