"""BasicSR's own entry points with NODE-SR option files, after ``pip install`` and nothing else.

Each runs as a subprocess, as a BasicSR user would start it: ``nodesr train``, ``python -m basicsr.train``,
``python <site-packages>/basicsr/train.py``, a project ``train.py`` that imports ``basicsr`` first, and
``python -m basicsr.test``. BasicSR's own scripts use the folder above ``basicsr/`` as ``root_path`` (its
``experiments/`` and ``results/`` land there, as in stock BasicSR); the tests give each run a unique name
and remove what it wrote.
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

from benchmarks.common import tiny_train_options
from helpers import BASICSR_ALONE
from test_train import write_data, write_yml

ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')


def basicsr_dir():
    """BasicSR's package folder, found without importing it here."""
    import importlib.util
    return os.path.dirname(importlib.util.find_spec('basicsr').origin)


def stock_root():
    """``root_path`` of ``python -m basicsr.train``: the folder above ``basicsr/``."""
    return os.path.dirname(basicsr_dir())


PROJECT_TRAIN = '''\
# A project's train.py, the Real-ESRGAN way: BasicSR first, then the plugin
import os.path as osp
from basicsr.train import train_pipeline

import nodesr_arch  # noqa: F401

if __name__ == '__main__':
    train_pipeline(osp.abspath(osp.dirname(__file__)))
'''

ENTRIES = {
    'nodesr train': lambda root: [sys.executable, '-m', 'nodesr_arch.commands.cli', 'train'],
    'python -m basicsr.train': lambda root: [sys.executable, '-m', 'basicsr.train'],
    'python basicsr/train.py': lambda root: [sys.executable, os.path.join(basicsr_dir(), 'train.py')],
    'project train.py': lambda root: [sys.executable, os.path.join(root, 'train.py')],
}


def run(root, cmd, expect=0, env=None):
    proc = subprocess.run(cmd, cwd=root, env=dict(ENV, **(env or {})), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect, out[-4000:]
    return out


@pytest.fixture
def project(tmp_path):
    """A project folder with data, a ``train.py`` and a unique experiment name; cleans BasicSR's root after."""
    root = str(tmp_path)
    write_data(root)
    with open(os.path.join(root, 'train.py'), 'w') as f:
        f.write(PROJECT_TRAIN)
    name = f'nodesr_entry_{uuid.uuid4().hex[:8]}'
    yield root, name
    for folder in ('experiments', 'results', 'tb_logger'):
        for parent in (stock_root(), root):
            shutil.rmtree(os.path.join(parent, folder, name), ignore_errors=True)
            shutil.rmtree(os.path.join(parent, folder, 'debug_' + name), ignore_errors=True)


def experiments_root(entry, root):
    return root if entry in ('nodesr train', 'project train.py') else stock_root()


@pytest.mark.parametrize('entry', list(ENTRIES))
def test_entry_point_trains_and_resumes_a_node_vdsr_yaml(entry, project):
    root, name = project
    opt = tiny_train_options(name, total_iter=2, logger={'save_checkpoint_freq': 2, 'use_tb_logger': False},
                             val={'val_freq': 2})
    opt_path = write_yml(root, opt)
    out = run(root, ENTRIES[entry](root) + ['-opt', opt_path])
    assert re.search(r'Validation val_x3\.5\s+# psnr: \d+\.\d+', out), out[-3000:]
    exp = os.path.join(experiments_root(entry, root), 'experiments', name)
    assert os.path.isfile(os.path.join(exp, 'models', 'net_g_2.pth'))
    assert os.path.isfile(os.path.join(exp, 'training_states', '2.state'))
    out = run(root, ENTRIES[entry](root) + ['-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=4'])
    assert 'Resuming training from epoch' in out and 'iter: 2.' in out, out[-3000:]
    assert os.path.isfile(os.path.join(exp, 'models', 'net_g_4.pth'))
    assert not [n for n in os.listdir(os.path.dirname(exp)) if n.startswith(name + '_archived')]


def test_basicsr_test_runs_a_node_vdsr_yaml(project):
    root, name = project
    run(root, ENTRIES['project train.py'](root) + ['-opt', write_yml(root, tiny_train_options(name, total_iter=2))])
    weights = os.path.join(root, 'experiments', name, 'models', 'net_g_2.pth')
    opt = tiny_train_options(name)
    test_opt = {'name': name, 'model_type': 'NODESRModel', 'num_gpu': 0,
                'datasets': {k: v for k, v in opt['datasets'].items() if k != 'train'},
                'network_g': opt['network_g'], 'path': {'pretrain_network_g': weights, 'strict_load_g': True},
                'val': {'save_img': True, 'metrics': opt['val']['metrics']}}
    out = run(root, [sys.executable, '-m', 'basicsr.test', '-opt', write_yml(root, test_opt, 'test.yml')])
    assert re.search(r'Validation val_x2\s+# psnr: \d+\.\d+', out), out[-3000:]
    results = os.path.join(stock_root(), 'results', name)
    assert os.path.isfile(os.path.join(results, 'metrics.json'))
    assert len(os.listdir(os.path.join(results, 'visualization', 'val_x2'))) == 3


def test_basicsr_train_refuses_a_node_arch_under_srmodel_before_writing(project):
    root, name = project
    opt_path = write_yml(root, dict(tiny_train_options(name), model_type='SRModel'))
    out = run(root, [sys.executable, '-m', 'basicsr.train', '-opt', opt_path], expect=2)
    assert 'network_g:type: NODEVDSR takes the scale' in out and 'NODESRModel' in out
    assert 'Traceback' not in out
    assert not os.path.exists(os.path.join(stock_root(), 'experiments', name))
    assert not os.path.exists(os.path.join(stock_root(), 'tb_logger', name))


# ---- no side effects on other models --------------------------------------------------------------------------

RUNNER = '''\
import os.path as osp
import sys
if sys.argv.pop(1) == 'plugin':
    import nodesr_arch  # noqa: F401  (with the start-up hook on)
else:  # BasicSR alone: only the import shims, without which it cannot be imported at all
''' + textwrap.indent(BASICSR_ALONE, '    ') + '''import basicsr.train
basicsr.train.train_pipeline(osp.abspath(osp.dirname(__file__)))
print('train.py sampler:', basicsr.train.EnlargedSampler.__module__)  # nodesr_arch.compat: fix 9 rebound it
'''


def edsr_options(name):
    """A tiny stock EDSR x2 training (SRModel, PairedImageDataset, EMA) with validation."""
    data = {'type': 'PairedImageDataset', 'dataroot_gt': 'data/gt', 'dataroot_lq': 'data/lq', 'filename_tmpl': '{}',
            'io_backend': {'type': 'disk'}}
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': dict(data, name='toy', gt_size=16, use_hflip=True, use_rot=True, num_worker_per_gpu=0,
                          batch_size_per_gpu=2, dataset_enlarge_ratio=1, prefetch_mode=None),
            'val': dict(data, name='val'),
        },
        'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2,
                      'res_scale': 1, 'img_range': 255., 'rgb_mean': [0.4488, 0.4371, 0.4040]},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5}, 'total_iter': 4,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def write_pairs(root):
    """GT images and their x2 LR images (``data/gt``, ``data/lq``, same names)."""
    import cv2

    from helpers import write_images
    for path in write_images(os.path.join(root, 'data', 'gt'), [(40, 40), (44, 40), (40, 48), (36, 44)]):
        img = cv2.imread(path)
        lq = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        os.makedirs(os.path.join(root, 'data', 'lq'), exist_ok=True)
        cv2.imwrite(os.path.join(root, 'data', 'lq', os.path.basename(path)), lq)


def test_stock_edsr_training_is_identical_with_the_plugin(tmp_path):
    """Losses, validation PSNR, checkpoints and training states of a stock EDSR run are bit-identical with
    ``import nodesr_arch`` (and the start-up hook) and with BasicSR alone plus its import shims."""
    import torch
    runs = {}
    for mode in ('basicsr', 'plugin'):
        root = str(tmp_path / mode)
        write_pairs(root)
        with open(os.path.join(root, 'runner.py'), 'w') as f:
            f.write(RUNNER)
        opt_path = write_yml(root, edsr_options('edsr'))
        env = {'NODESR_ARCH_HOOK': '0'} if mode == 'basicsr' else {}
        out = run(root, [sys.executable, 'runner.py', mode, '-opt', opt_path], env=env)
        if mode == 'basicsr':
            assert 'nodesr_arch' not in out
        else:  # fix 9 was in place, and handed this run to BasicSR's own sampler
            assert 'train.py sampler: nodesr_arch.compat' in out
        exp = os.path.join(root, 'experiments', 'edsr')
        runs[mode] = {
            'losses': re.findall(r'iter:\s+(\d+), lr:.*l_pix: ([0-9.e+-]+)', out),
            'psnr': re.findall(r'# psnr: ([0-9.]+)', out),
            'files': sorted(os.listdir(os.path.join(exp, 'models')) + os.listdir(os.path.join(exp, 'training_states'))),
            'models': [torch.load(os.path.join(exp, 'models', f'net_g_{i}.pth'), weights_only=True) for i in (2, 4)],
            'states': [torch.load(os.path.join(exp, 'training_states', f'{i}.state'), weights_only=True)
                       for i in (2, 4)],
        }
    a, b = runs['basicsr'], runs['plugin']
    assert len(a['losses']) == 4 and len(a['psnr']) >= 2  # two validations (and BasicSR's best-value line)
    assert a['losses'] == b['losses'] and a['psnr'] == b['psnr'] and a['files'] == b['files']
    for ma, mb in zip(a['models'], b['models']):
        assert set(ma) == set(mb) == {'params', 'params_ema'}
        for key in ma:
            assert all(torch.equal(ma[key][k], mb[key][k]) for k in ma[key])
    for sa, sb in zip(a['states'], b['states']):
        assert sa['iter'] == sb['iter'] and sa['schedulers'] == sb['schedulers']
        for pa, pb in zip(sa['optimizers'][0]['state'].values(), sb['optimizers'][0]['state'].values()):
            assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_importing_the_plugin_leaves_basicsr_models_alone():
    """Only the listed fixes are global: SRModel and BaseModel keep BasicSR's own methods."""
    code = BASICSR_ALONE + textwrap.dedent("""
        from basicsr.models.sr_model import SRModel
        from basicsr.models.base_model import BaseModel
        before = {(c.__name__, k): v for c in (SRModel, BaseModel) for k, v in vars(c).items()}
        import nodesr_arch
        nodesr_arch.register()  # what import nodesr_arch does after basicsr (BASICSR_ALONE imported the package)
        after = {(c.__name__, k): v for c in (SRModel, BaseModel) for k, v in vars(c).items()}
        print(sorted(k[1] for k in before if before[k] is not after.get(k)))
    """)
    out = run(os.getcwd(), [sys.executable, '-c', code], env={'NODESR_ARCH_HOOK': '0'})
    assert out.strip().splitlines()[-1] == "['model_to_device']"  # fix 4 (DDP without CUDA), listed in the docs
