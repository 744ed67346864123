"""Nothing lost, nothing executed: option files with Python objects, wrong options, two runs with one name,
leftovers of killed runs (issue 10). CLI cases run ``nodesr train``/``test`` as the user does."""
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.common import tiny_train_options
from helpers import write_images
from nodesr_arch.commands import test as nodesr_test
from nodesr_arch.commands import train as nodesr_train
from test_train import write_data, write_yml

ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')


def nodesr(root, *args, timeout=240):
    return subprocess.run([sys.executable, '-m', 'nodesr_arch.commands.cli', *args], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def tree(root):
    """Every path under ``root`` (to show that nothing was written, renamed or removed)."""
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files)


EVIL = '''name: evil
model_type: NODESRModel
num_gpu: 0
marker: !!python/object/apply:os.system ["touch {marker}"]
'''


@pytest.mark.parametrize('command', ['train', 'test'])
def test_an_option_file_with_python_objects_is_refused_unexecuted(tmp_path, command):
    marker = tmp_path / 'MARKER'
    path = tmp_path / 'evil.yml'
    path.write_text(EVIL.format(marker=marker))
    before = tree(str(tmp_path))
    proc = nodesr(str(tmp_path), command, '-opt', str(path))
    assert proc.returncode == 2, proc.stderr
    assert 'holds a Python object' in proc.stderr and 'would run code' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not marker.exists() and tree(str(tmp_path)) == before


@pytest.mark.parametrize('command', ['infer', 'benchmark'])
def test_a_model_yaml_with_python_objects_is_refused_unexecuted(tmp_path, command):
    marker = tmp_path / 'MARKER'
    (tmp_path / 'evil.yml').write_text(f'network_g: {{type: NODEVDSR}}\n'
                                       f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    write_images(str(tmp_path / 'imgs'), [(24, 24)])
    args = {'infer': ['infer', '-i', 'imgs', '-o', 'out', '--scale', '2', '--model', 'evil.yml'],
            'benchmark': ['benchmark', '--model', 'evil.yml', '--data', 'imgs', '--scales', '2', '--out', 'out']}
    before = tree(str(tmp_path))
    proc = nodesr(str(tmp_path), *args[command])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'evil.yml: holds a Python object' in proc.stderr and 'Traceback' not in proc.stderr
    assert not marker.exists() and tree(str(tmp_path)) == before


def test_basicsrs_own_trainer_refuses_it_too(tmp_path):
    marker = tmp_path / 'MARKER'
    path = tmp_path / 'evil.yml'
    path.write_text(EVIL.format(marker=marker))
    proc = subprocess.run([sys.executable, '-m', 'basicsr.train', '-opt', str(path)], cwd=str(tmp_path), env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'holds a Python object' in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()


@pytest.fixture
def earlier_run(tmp_path):
    """A project whose experiment ``tiny`` exists from an earlier run (a checkpoint and a training state)."""
    root = str(tmp_path)
    write_data(root)
    exp = os.path.join(root, 'experiments', 'tiny')
    for sub, name in (('models', 'net_g_2.pth'), ('training_states', '2.state')):
        os.makedirs(os.path.join(exp, sub))
        with open(os.path.join(exp, sub, name), 'wb') as f:
            f.write(b'real work')
    return root


def _set(opt, key, value):
    *parents, last = key.split(':')
    node = opt
    for k in parents:
        node = node[k]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value


@pytest.mark.parametrize('key, value, message', [
    ('datasets:train:dataroot_gt', KeyError, 'datasets:train:dataroot_gt: missing'),
    ('datasets:val_1:dataroot_gt', 'empty', 'datasets:val_1: no images found in dataroot_gt empty'),  # archived before
    ('datasets:train:dataroot_gt', 'notes', 'datasets:train: no images found'),
    ('datasets:train:gt_size', 64, 'smaller than gt_size 64'),
    ('datasets:train:gt_size', 0, 'datasets:train:gt_size: must be a positive integer'),
    ('datasets:train:gt_size', 'big', 'datasets:train:gt_size: must be a positive integer'),
    ('train:optim_g:lr', 'fast', 'train:optim_g:lr: must be a positive number'),
    ('logger:save_checkpoint_freq', 0, 'logger:save_checkpoint_freq: must be a number of iterations >= 1'),
    ('datasets:val_1:protocol', 'nearest', "datasets:val_1: protocol must be one of"),
    ('datasets:train:scale_step', -0.1, 'datasets:train:scale_step: must be a number >= 0'),
    ('datasets:train:batch_size_per_gpu', 5, 'datasets:train:batch_size_per_gpu: 5 is more than the 4 samples'),
])
def test_wrong_options_stop_before_any_folder_is_made_or_renamed(earlier_run, monkeypatch, capsys, key, value,
                                                                 message):
    root = earlier_run
    os.makedirs(os.path.join(root, 'empty'))
    os.makedirs(os.path.join(root, 'notes'))
    with open(os.path.join(root, 'notes', 'readme.txt'), 'w') as f:
        f.write('not an image')
    opt = tiny_train_options('tiny')
    _set(opt, key, value)
    path = write_yml(root, opt)
    before = tree(root)
    monkeypatch.chdir(root)
    assert nodesr_train.main(['-opt', path]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1, err
    assert tree(root) == before  # the earlier experiment is neither archived nor touched


def test_wrong_option_exits_2_from_the_command_line(earlier_run):
    opt = tiny_train_options('tiny')
    opt['datasets']['val_1']['dataroot_gt'] = 'empty'
    os.makedirs(os.path.join(earlier_run, 'empty'))
    path = write_yml(earlier_run, opt)
    before = tree(earlier_run)
    proc = nodesr(earlier_run, 'train', '-opt', path, '--auto_resume')
    assert proc.returncode == 2 and 'datasets:val_1: no images found in dataroot_gt empty' in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr and tree(earlier_run) == before


def test_nodesr_test_with_an_empty_folder_writes_nothing(tmp_path, monkeypatch, capsys):
    os.makedirs(tmp_path / 'empty')
    opt = tiny_train_options('tiny')
    test_opt = {'name': 'tiny', 'model_type': 'NODESRModel', 'num_gpu': 0, 'network_g': opt['network_g'],
                'datasets': {'test_1': dict(opt['datasets']['val_1'], dataroot_gt='empty')}, 'path': {},
                'val': {'save_img': True, 'metrics': opt['val']['metrics']}}
    path = write_yml(str(tmp_path), test_opt)
    monkeypatch.chdir(tmp_path)
    assert nodesr_test.main(['-opt', path]) == 2
    assert 'datasets:test_1: no images found in dataroot_gt empty' in capsys.readouterr().err
    assert not (tmp_path / 'results').exists()


# ---- one run per name ---------------------------------------------------------------------------------------


def wait_for(predicate, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_second_run_with_the_same_name_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    root = str(tmp_path)
    write_data(root)
    long_run = write_yml(root, tiny_train_options('tiny', total_iter=100000, val={'val_freq': 100000},
                                                  logger={'save_checkpoint_freq': 100000, 'use_tb_logger': False}))
    first = subprocess.Popen([sys.executable, '-m', 'nodesr_arch.commands.cli', 'train', '-opt', long_run], cwd=root,
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        log_dir = os.path.join(root, 'experiments', 'tiny')
        assert wait_for(lambda: os.path.isdir(log_dir) and any(n.endswith('.log') for n in os.listdir(log_dir)))
        before = tree(root)
        second = nodesr(root, 'train', '-opt', long_run)
        assert second.returncode == 2, second.stderr
        assert f'is in use by another run (PID {first.pid})' in second.stderr
        assert tree(root) == before  # the first run's folder was not archived
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        assert os.path.isfile(os.path.join(root, 'experiments', '.tiny.lock'))  # stale: its holder is dead
        opt_path = write_yml(root, tiny_train_options('tiny', total_iter=2))
        third = nodesr(root, 'train', '-opt', opt_path, '--auto_resume')
        assert third.returncode == 0, third.stderr[-3000:]
        assert not os.path.exists(os.path.join(root, 'experiments', '.tiny.lock'))  # released on exit
    finally:
        if first.poll() is None:
            first.kill()


# ---- leftovers of killed runs -----------------------------------------------------------------------------------


def test_partial_saves_of_a_killed_run_are_removed_on_restart(tmp_path):
    root = str(tmp_path)
    write_data(root)
    path = write_yml(root, tiny_train_options('tiny', total_iter=2))
    assert nodesr(root, 'train', '-opt', path).returncode == 0
    exp = os.path.join(root, 'experiments', 'tiny')
    partial = [os.path.join(exp, 'models', '.net_g_4.pth.k2j4_x.tmp'),
               os.path.join(exp, 'training_states', '.4.state.a8zq01.tmp')]
    for p in partial:
        with open(p, 'wb') as f:
            f.write(b'\0' * 1000)
    proc = nodesr(root, 'train', '-opt', path, '--auto_resume', '--force_yml', 'train:total_iter=4')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Removed 2 partial save(s) of a killed run' in proc.stderr + proc.stdout
    assert not any(os.path.exists(p) for p in partial)
    assert os.path.isfile(os.path.join(exp, 'models', 'net_g_4.pth'))


def test_too_small_images_fail_at_the_check_not_mid_training(tmp_path, monkeypatch, capsys):
    write_images(str(tmp_path / 'hr'), [(40, 40), (12, 40)])
    opt = tiny_train_options('tiny')
    opt['datasets']['train']['dataroot_gt'] = 'hr'
    path = write_yml(str(tmp_path), opt)
    monkeypatch.chdir(tmp_path)
    assert nodesr_train.main(['-opt', path]) == 2
    assert 'img1.png is 12x40, smaller than gt_size 16 (set skip_small: true' in capsys.readouterr().err


def test_infer_removes_partial_files_of_killed_runs_only(tmp_path):
    write_images(str(tmp_path / 'imgs'), [(24, 24)])
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = out / f'.img0_x2.{dead.pid}.partial.png'
    alive = out / f'.other_x2.{os.getpid()}.partial.png'  # a running process's: not touched
    stale.write_bytes(b'half an image')
    alive.write_bytes(b'in progress')
    proc = nodesr(str(tmp_path), 'infer', '-i', 'imgs', '-o', 'out', '--scale', '2')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'removed {stale.name}, left by a killed run' in proc.stderr
    assert not stale.exists() and alive.exists() and (out / 'img0_x2.png').is_file()


def test_a_dataroot_under_home_is_expanded_as_basicsr_does(tmp_path, monkeypatch, capsys):
    write_data(str(tmp_path))
    monkeypatch.setenv('HOME', str(tmp_path))
    opt = tiny_train_options('tiny')
    opt['datasets']['train']['dataroot_gt'] = '~/data/hr'
    opt['datasets']['val_1']['dataroot_gt'] = ['~/data/val']
    opt['datasets']['val_2']['dataroot_gt'] = '~/data/val'
    path = write_yml(str(tmp_path), opt)
    from nodesr_arch.models.option_check import read_options
    monkeypatch.chdir(tmp_path / 'data')  # not where the relative paths would point
    assert read_options(['-opt', path])['datasets']['train']['dataroot_gt'] == '~/data/hr'
