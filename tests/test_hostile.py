"""Hostile option files, names, locks and inputs (issue 18): each is refused with one line (exit 2) before
anything is written, and nothing outside the experiment is created, renamed or truncated. One case of each
kind runs as a real command line; the variants run the same entry points in this process (cheaper)."""
import errno
import os
import subprocess
import sys

import pytest
from test_safety import ENV, nodesr, tree

from nodesr_arch.commands import test as nodesr_test
from nodesr_arch.commands import train as nodesr_train
from test_train import train_options, write_data, write_yml


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
    write_yml(str(proj), train_options('tiny', total_iter=2))
    return folder


@pytest.mark.parametrize('command', ['train', 'test'])
def test_a_name_with_a_path_archives_nothing_outside_the_project(victim, command):
    before = tree(str(victim.parent))
    args = ['--force_yml', 'name=../../victim'] if command == 'test' else []
    if command == 'train':
        opt = train_options('../../victim', total_iter=2)
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
    write_yml(str(proj), train_options(name, total_iter=2))
    monkeypatch.chdir(proj)
    before = tree(str(victim.parent))
    main_refuses(main, ['-opt', 'opt.yml'], capsys, message)
    assert tree(str(victim.parent)) == before


def test_the_name_bound_leaves_room_for_every_name_basicsr_derives():
    from nodesr_arch_compat import MAX_NAME_BYTES, OptionFileError, check_experiment_name
    check_experiment_name('é' * (MAX_NAME_BYTES // 2))
    with pytest.raises(OptionFileError, match='201 bytes long'):
        check_experiment_name('é' * (MAX_NAME_BYTES // 2) + 'x')
    # the longest: the log file train_NAME_YYYYMMDD_HHMMSS.log, and experiments/NAME_archived_YYYYMMDD_HHMMSS
    longest = len('train_') + MAX_NAME_BYTES + len('_20261202_072403.log')
    assert longest <= os.pathconf('.', 'PC_NAME_MAX')


def test_the_debug_prefix_is_part_of_the_checked_name(victim, monkeypatch, capsys):
    proj = victim / 'proj'
    write_yml(str(proj), train_options('x' * 195, total_iter=2))
    monkeypatch.chdir(proj)
    main_refuses(nodesr_train.main, ['-opt', 'opt.yml', '--debug'], capsys, 'name: 201 bytes long')
    assert not (proj / 'experiments').exists()


# ---- 2: the lock never follows a link --------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with data and a valid tiny option file ``opt.yml`` (experiment ``tiny``), as the cwd."""
    write_data(str(tmp_path))
    write_yml(str(tmp_path), train_options('tiny', total_iter=2))
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


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_a_read_only_experiments_folder_is_one_line(project, capsys):
    (project / 'experiments').mkdir()
    os.chmod(project / 'experiments', 0o555)
    try:
        main_refuses(nodesr_train.main, ['-opt', 'opt.yml'], capsys, 'cannot make the experiment lock')
    finally:
        os.chmod(project / 'experiments', 0o755)
