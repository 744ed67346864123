"""End-to-end BasicSR runs from option YAMLs, as subprocesses on generated images: folder and LMDB
training, validation per set, TensorBoard, --auto_resume, SIGKILL and resume, torchrun on CPU (gloo),
``nodesr test``, BasicSR's PairedImageDataset at a fixed x2."""
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from benchmarks.common import tiny_train_options
from helpers import write_images

ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
TINY_NET = tiny_train_options()['network_g']


def write_data(root):
    """Training images (4 colour: 2 batches an epoch) and validation images (2 colour + 1 grey) under ``root/data``."""
    write_images(os.path.join(root, 'data', 'hr'), [(40, 40), (44, 40), (40, 48), (42, 42)])
    write_images(os.path.join(root, 'data', 'val'), [(24, 28), (27, 25), (26, 26)], grey=(2,), prefix='v')


def write_yml(root, opt, name='opt.yml'):
    path = os.path.join(root, name)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def run(root, args, module='nodesr_arch.train', timeout=240):
    proc = subprocess.run([sys.executable, '-m', module] + args, cwd=root, env=ENV, capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def logged_lrs(out):
    """{iter: lr} from BasicSR's training log lines."""
    return {int(m.group(1)): float(m.group(2)) for m in re.finditer(r'iter:\s+(\d+), lr:\(([0-9.e+-]+),\)', out)}


def weights_hash(params):
    return hashlib.sha256(b''.join(p.detach().cpu().contiguous().numpy().tobytes() for p in params)).hexdigest()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One 4-iteration training on folder data, shared by the tests that inspect or continue it."""
    root = str(tmp_path_factory.mktemp('train'))
    write_data(root)
    out = run(root, ['-opt', write_yml(root, tiny_train_options('tiny'))])
    return root, out


def test_folder_training_validates_per_set_and_saves(trained):
    root, out = trained
    for name in ('val_x2', 'val_x3.5'):
        assert re.search(rf'Validation {re.escape(name)}\s+# psnr: \d+\.\d+', out), out[-3000:]
    exp = os.path.join(root, 'experiments', 'tiny')
    for f in ('models/net_g_2.pth', 'models/net_g_4.pth', 'models/net_g_latest.pth',
              'training_states/2.state', 'training_states/4.state', 'visualization/trajectory/val_x2_2.png'):
        assert os.path.isfile(os.path.join(exp, f)), f
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = glob.glob(os.path.join(root, 'tb_logger', 'tiny', 'events.out.tfevents.*'))
    assert events
    acc = EventAccumulator(os.path.dirname(events[0]))
    acc.Reload()
    tags = acc.Tags()
    assert {'metrics/val_x2/psnr', 'metrics/val_x3.5/psnr', 'losses/l_pix'} <= set(tags['scalars'])
    assert {'trajectory/val_x2', 'trajectory/val_x3.5'} <= set(tags['images'])
    psnr = [e.value for e in acc.Scalars('metrics/val_x2/psnr')]
    assert len(psnr) >= 2 and all(20 < v < 60 for v in psnr)


def test_auto_resume_continues_with_saved_lr_and_optimizer(trained):
    root, _ = trained
    out = run(root, ['-opt', os.path.join(root, 'opt.yml'), '--auto_resume', '--force_yml', 'train:total_iter=6'])
    assert 'Resuming training from epoch' in out and 'iter: 4.' in out, out[-3000:]
    lrs = logged_lrs(out)
    assert min(lrs) == 5, 'the resumed run starts after the saved iteration'
    # milestones [3, 5]: a fresh scheduler would give 1e-3 here; the restored one gives 5e-4, then 2.5e-4
    assert lrs[5] == pytest.approx(5e-4) and lrs[6] == pytest.approx(2.5e-4)
    state = torch.load(os.path.join(root, 'experiments', 'tiny', 'training_states', '6.state'), weights_only=True)
    steps = {float(s['step']) for s in state['optimizers'][0]['state'].values()}
    assert steps == {6.0}, 'Adam continues its saved state (a fresh optimizer would be at step 2)'
    assert not glob.glob(os.path.join(root, 'experiments', '*archived*'))
    assert not glob.glob(os.path.join(root, 'tb_logger', '*archived*'))


def test_nodesr_test_writes_images_and_metrics_summary(trained):
    root, _ = trained
    opt = {
        'name': 'tiny_test', 'model_type': 'NODESRModel', 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {f'test_{i}': {'name': f'val_x{s:g}', 'type': 'ContinuousScalePairedDataset',
                                   'dataroot_gt': 'data/val', 'io_backend': {'type': 'disk'}, 'scale': s,
                                   'protocol': p} for i, (s, p) in enumerate([(2, 'modcrop'), (2.5, 'metasr')])},
        'network_g': dict(TINY_NET),
        'path': {'pretrain_network_g': 'experiments/tiny/models/net_g_4.pth', 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None, 'self_ensemble': True, 'tile': 8, 'trajectory': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True},
                            'ssim': {'type': 'calculate_ssim', 'crop_border': 'scale', 'test_y_channel': True}}},
    }
    nodesr = shutil.which('nodesr')
    args = ['test', '-opt', write_yml(root, opt, 'test.yml')]
    if nodesr:
        proc = subprocess.run([nodesr] + args, cwd=root, env=ENV, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    else:
        run(root, args, module='nodesr_arch.commands.cli')
    res = os.path.join(root, 'results', 'tiny_test')
    summary = json.load(open(os.path.join(res, 'metrics.json')))
    assert set(summary) == {'val_x2', 'val_x2.5'}
    for name, s in summary.items():
        assert s['num_images'] == 3 and set(s['images']) == {'v0', 'v1', 'v2'}
        assert 15 < s['metrics']['psnr'] < 60 and 0 < s['metrics']['ssim'] <= 1
        assert s['metrics']['psnr'] == pytest.approx(np.mean([v['psnr'] for v in s['images'].values()]))
        for img in ('v0', 'v1', 'v2'):
            assert os.path.isfile(os.path.join(res, 'visualization', name, f'{img}_tiny_test.png'))
    rows = open(os.path.join(res, 'metrics.csv')).read().splitlines()
    assert rows[0] == 'set,scale,image,psnr,ssim' and len(rows) == 1 + 2 * 4


def test_lmdb_training(tmp_path):
    import nodesr_arch  # noqa: F401  (compat fixes before BasicSR is imported)
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    root = str(tmp_path)
    write_data(root)
    names = sorted(os.listdir(os.path.join(root, 'data', 'hr')))
    make_lmdb_from_imgs(os.path.join(root, 'data', 'hr'), os.path.join(root, 'data', 'hr.lmdb'), names,
                        [os.path.splitext(n)[0] for n in names], multiprocessing_read=False)
    opt = tiny_train_options('tiny_lmdb', total_iter=2, val={'val_freq': 100})
    opt['datasets']['train'].update(dataroot_gt='data/hr.lmdb', io_backend={'type': 'lmdb'})
    out = run(root, ['-opt', write_yml(root, opt)])
    assert 'Validation val_x3.5' in out and 'iter:       2,' in out
    assert os.path.isfile(os.path.join(root, 'experiments', 'tiny_lmdb', 'models', 'net_g_latest.pth'))


def test_sigkill_then_auto_resume(tmp_path):
    root = str(tmp_path)
    write_data(root)
    opt = tiny_train_options('tiny_kill', total_iter=100000, val={'val_freq': 10 ** 6},
                             logger={'save_checkpoint_freq': 1, 'print_freq': 1000})
    path = write_yml(root, opt)
    states = os.path.join(root, 'experiments', 'tiny_kill', 'training_states')
    proc = subprocess.Popen([sys.executable, '-m', 'nodesr_arch.train', '-opt', path], cwd=root, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len(glob.glob(os.path.join(states, '*.state'))) < 4:
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = sorted(int(os.path.basename(p).split('.')[0]) for p in glob.glob(os.path.join(states, '*.state')))
    assert len(saved) >= 4, 'training did not get going'
    last = saved[-1]
    for it in saved:  # every state and checkpoint on disk is complete
        torch.load(os.path.join(states, f'{it}.state'), weights_only=True)
        torch.load(os.path.join(root, 'experiments', 'tiny_kill', 'models', f'net_g_{it}.pth'), weights_only=True)
    out = run(root, ['-opt', path, '--auto_resume', '--force_yml', f'train:total_iter={last + 2}',
                     'logger:print_freq=1'])
    assert f'iter: {last}.' in out, out[-3000:]
    assert min(logged_lrs(out)) == last + 1


HOOK = '''
import hashlib, os, sys
import nodesr_arch.train
from basicsr.utils.registry import MODEL_REGISTRY
from nodesr_arch.models.nodesr_model import NODESRModel


@MODEL_REGISTRY.register()
class HashingNODESRModel(NODESRModel):
    """Writes a hash of this rank's weights whenever the model is saved."""

    def save(self, epoch, current_iter):
        super().save(epoch, current_iter)
        net = self.get_bare_model(self.net_g)
        digest = hashlib.sha256(b''.join(p.detach().cpu().contiguous().numpy().tobytes()
                                         for p in net.parameters())).hexdigest()
        path = os.path.join(self.opt['path']['experiments_root'], f'hash_{current_iter}_rank{self.opt["rank"]}')
        with open(path, 'w') as f:
            f.write(digest)


if __name__ == '__main__':
    sys.exit(nodesr_arch.train.main())
'''


def test_torchrun_two_processes_on_cpu(tmp_path):
    root = str(tmp_path)
    write_data(root)
    with open(os.path.join(root, 'hook.py'), 'w') as f:
        f.write(HOOK)
    opt = tiny_train_options('tiny_ddp', total_iter=4)
    opt['model_type'] = 'HashingNODESRModel'
    path = write_yml(root, opt)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', 'hook.py',
           '-opt', path, '--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'World size (gpu number): 2' in out
    assert re.search(r'Validation val_x3\.5\s+# psnr: \d+\.\d+', out)
    exp = os.path.join(root, 'experiments', 'tiny_ddp')
    for it in (2, 4, -1):
        hashes = [open(os.path.join(exp, f'hash_{it}_rank{r}')).read() for r in (0, 1)]
        assert hashes[0] == hashes[1], f'ranks differ after iteration {it}'
    import nodesr_arch  # noqa: F401
    from basicsr.archs import build_network
    net = build_network(dict(TINY_NET))
    net.load_state_dict(torch.load(os.path.join(exp, 'models', 'net_g_latest.pth'), weights_only=True)['params'])
    assert weights_hash(net.parameters()) == hashes[0]


@pytest.mark.gpu
@pytest.mark.parametrize('launcher', ['nodesr train', 'torchrun'])
def test_training_on_one_gpu(tmp_path, launcher):
    """``nodesr train`` of the tiny YAML with ``num_gpu: 1`` and BasicSR's CUDA prefetcher (pinned memory), and
    the same under ``torchrun --nproc_per_node 1 ... --launcher pytorch`` (NCCL): trains, validates, saves."""
    root = str(tmp_path)
    write_data(root)
    opt = tiny_train_options('tiny_gpu', num_gpu=1)
    opt['datasets']['train'].update(prefetch_mode='cuda', pin_memory=True)
    path = write_yml(root, opt)
    if launcher == 'torchrun':
        out = run(root, ['--standalone', '--nproc_per_node', '1', '-m', 'nodesr_arch.train', '-opt', path,
                         '--launcher', 'pytorch'], module='torch.distributed.run')
    else:
        out = run(root, ['train', '-opt', path], module='nodesr_arch.commands.cli')
    assert 'Use cuda prefetch dataloader' in out and 'World size (gpu number): 1' in out, out[-3000:]
    for name in ('val_x2', 'val_x3.5'):
        assert re.search(rf'Validation {re.escape(name)}\s+# psnr: \d+\.\d+', out), out[-3000:]
    exp = os.path.join(root, 'experiments', 'tiny_gpu')
    for f in ('models/net_g_latest.pth', 'training_states/4.state'):
        assert os.path.isfile(os.path.join(exp, f)), f


def test_paired_image_dataset_fixed_x2(tmp_path):
    """BasicSR's own PairedImageDataset (low-res lq files, top-level scale 2) trains and validates."""
    import cv2

    from nodesr_arch.data.scale_space import imresize
    root = str(tmp_path)
    write_data(root)
    os.makedirs(os.path.join(root, 'data', 'lr'))
    for name in os.listdir(os.path.join(root, 'data', 'hr')):
        hr = cv2.imread(os.path.join(root, 'data', 'hr', name)).astype(np.float32) / 255
        lr = np.clip(np.round(imresize(hr, 0.5) * 255), 0, 255).astype(np.uint8)
        cv2.imwrite(os.path.join(root, 'data', 'lr', name), lr)
    paired = {'type': 'PairedImageDataset', 'dataroot_gt': 'data/hr', 'dataroot_lq': 'data/lr',
              'io_backend': {'type': 'disk'}}
    opt = tiny_train_options('tiny_paired', total_iter=2)
    opt['datasets'] = {'train': dict(paired, name='toy', gt_size=16, use_hflip=True, use_rot=True,
                                     num_worker_per_gpu=0, batch_size_per_gpu=2),
                       'val': dict(paired, name='paired_val')}
    opt = {'scale': 2, **opt}
    out = run(root, ['-opt', write_yml(root, opt)])
    m = re.findall(r'Validation paired_val\s+# psnr: (\d+\.\d+)', out)
    assert m and all(20 < float(v) < 60 for v in m), out[-3000:]
    assert os.path.isfile(os.path.join(root, 'experiments', 'tiny_paired', 'visualization', 'trajectory',
                                       'paired_val_2.png'))
