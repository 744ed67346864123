"""Exact resume (nodesr_arch.compat fix 9, nodesr_arch.data.exact_resume): a run resumed from iteration k
trains on the batches an uninterrupted run would and ends with bit-identical weights, with 0 or 2 data
workers and under 2-process gloo DDP; seeds change the data order; epochs draw new crops and scales; a
stock EDSR run stays BasicSR's (tests/test_entry_points.py); an old training state resumes with a warning."""
import glob
import os
import shutil
import subprocess
import sys

import pytest
import torch

from benchmarks.common import tiny_train_options
from helpers import write_images
from test_train import ENV, write_data, write_yml

HOOK = '''
import hashlib, os, sys
import torch
import nodesr_arch.train
from basicsr.utils.registry import MODEL_REGISTRY
from nodesr_arch.models.nodesr_model import NODESRModel


@MODEL_REGISTRY.register()
class RecordingNODESRModel(NODESRModel):
    """Appends 'iter epoch batch hash scales' of every trained batch to batches_rank{rank}.txt."""

    def optimize_parameters(self, current_iter):
        digest = hashlib.sha256(b''.join(t.detach().cpu().contiguous().numpy().tobytes() for t in
                                         (self.lq, self.gt, torch.as_tensor(self.scale)))).hexdigest()[:16]
        epoch, batch = self.data_position or (-1, -1)
        scales = ','.join(f'{float(s):.2f}' for s in torch.as_tensor(self.scale).flatten())
        path = os.path.join(self.opt['path']['experiments_root'], f'batches_rank{self.opt["rank"]}.txt')
        with open(path, 'a') as f:
            f.write(f'{current_iter} {epoch} {batch - 1} {digest} {scales}\\n')
        super().optimize_parameters(current_iter)


if __name__ == '__main__':
    sys.exit(nodesr_arch.train.main())
'''


def resume_options(name, workers=0, total_iter=5):
    """4 images, batch 2: 2 batches an epoch, so 5 iterations cross 2 epoch ends; a state every iteration."""
    opt = tiny_train_options(name, total_iter=total_iter, logger={'save_checkpoint_freq': 1, 'use_tb_logger': False})
    opt['model_type'] = 'RecordingNODESRModel'
    opt['datasets'] = {'train': dict(opt['datasets']['train'], num_worker_per_gpu=workers)}
    del opt['val']
    return opt


def start(root, opt, args=(), torchrun=False, timeout=300):
    if not os.path.isfile(os.path.join(root, 'hook.py')):
        write_data(root)
        with open(os.path.join(root, 'hook.py'), 'w') as f:
            f.write(HOOK)
    launch = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2'] if torchrun \
        else [sys.executable]
    extra = ['--launcher', 'pytorch'] if torchrun else []
    proc = subprocess.run(launch + ['hook.py', '-opt', write_yml(root, opt)] + extra + list(args), cwd=root,
                          env=ENV, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def stopped_at(root, name, k, copy=None):
    """Copy of experiment ``name`` (as ``copy``, default ``name_k``), as a run killed after iteration k's
    checkpoint leaves it."""
    copy = copy or f'{name}_{k}'
    src, dst = (os.path.join(root, 'experiments', n) for n in (name, copy))
    shutil.copytree(src, dst)
    for path in glob.glob(os.path.join(dst, 'models', '*.pth')) + glob.glob(os.path.join(dst, 'training_states', '*')):
        it = os.path.basename(path).split('.')[0].replace('net_g_', '')
        if not it.isdigit() or int(it) > k:
            os.remove(path)
    for path in glob.glob(os.path.join(dst, 'batches_rank*.txt')):
        with open(path) as f:
            lines = [ln for ln in f if int(ln.split()[0]) <= k]
        with open(path, 'w') as f:
            f.writelines(lines)
    return copy


def weights(root, name):
    return torch.load(os.path.join(root, 'experiments', name, 'models', 'net_g_latest.pth'), weights_only=True)


def assert_equal_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys()
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f'{key}.{name} differs'


def batches(root, name, rank=0):
    with open(os.path.join(root, 'experiments', name, f'batches_rank{rank}.txt')) as f:
        return [tuple(line.split()) for line in f]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """One uninterrupted 5-iteration run without data workers."""
    root = str(tmp_path_factory.mktemp('resume'))
    start(root, resume_options('ref'))
    return root


@pytest.mark.parametrize('workers,k', [(0, 3), (2, 4)])
def test_resume_after_stop_at_k_equals_uninterrupted_run(uninterrupted, workers, k):
    root = uninterrupted
    name = stopped_at(root, 'ref', k)
    out = start(root, resume_options(name, workers=workers), ['--auto_resume'])
    assert f'Resuming training from epoch: {(k - 1) // 2}, iter: {k}.' in out
    assert_equal_weights(weights(root, 'ref'), weights(root, name))
    # the same batches at the same iterations: none replayed, none skipped
    assert batches(root, name) == batches(root, 'ref')
    assert len({b[3] for b in batches(root, 'ref')}) == 5


def test_force_yml_manual_seed_changes_the_data_order(uninterrupted, tmp_path):
    root = str(tmp_path)
    start(root, resume_options('seed7', total_iter=1), ['--force_yml', 'manual_seed=7'])
    state = torch.load(os.path.join(root, 'experiments', 'seed7', 'training_states', '1.state'), weights_only=True)
    assert state['data_position']['seed'] == 7
    assert batches(root, 'seed7')[0][3] != batches(uninterrupted, 'ref')[0][3]


def test_old_state_without_data_position_resumes_with_a_warning(uninterrupted):
    root = uninterrupted
    name = stopped_at(root, 'ref', 3, 'ref_old')
    path = os.path.join(root, 'experiments', name, 'training_states', '3.state')
    state = torch.load(path, weights_only=True)
    del state['data_position'], state['rng_states']
    torch.save(state, path)
    out = start(root, resume_options(name), ['--auto_resume'])
    assert 'exact resume lost' in out and 'no longer equals an uninterrupted one' in out, out[-3000:]
    # as BasicSR: epoch 1 restarts at its first batch, so iteration 4 replays the batch of iteration 3
    assert batches(root, name)[3][1:3] == ('1', '0')


def test_two_process_gloo_resume_equals_uninterrupted_run(tmp_path):
    """With scale_per_batch: the ranks share each iteration's scale, not its images."""
    root = str(tmp_path)
    opt = resume_options('ddp', total_iter=3)
    opt['datasets']['train'].update(batch_size_per_gpu=1, scale_per_batch=True)  # 2 ranks x 1: 2 batches an epoch
    start(root, opt, torchrun=True)
    name = stopped_at(root, 'ddp', 1)
    out = start(root, dict(opt, name=name), ['--auto_resume'], torchrun=True)
    assert 'iter: 1.' in out
    assert_equal_weights(weights(root, 'ddp'), weights(root, name))
    for rank in (0, 1):
        assert batches(root, name, rank) == batches(root, 'ddp', rank)
    rank0, rank1 = batches(root, 'ddp', 0), batches(root, 'ddp', 1)
    assert all(a[3] != b[3] for a, b in zip(rank0, rank1)), 'each rank trains its own share'
    assert [a[4] for a in rank0] == [b[4] for b in rank1], 'scale_per_batch: one scale per iteration'
    assert len({a[4] for a in rank0}) > 1


# ---- the data alone (no training) -------------------------------------------------------------------------------


def keyed_loader(root, seed, workers=0, epochs=(0, ), per_batch=False):
    """Items of a ContinuousScalePairedDataset through ResumableSampler + SeededSamples, per epoch."""
    import nodesr_arch  # noqa: F401
    from basicsr.data import build_dataset
    from nodesr_arch.data.exact_resume import ResumableSampler, SeededSamples
    folder = os.path.join(root, 'hr')
    if not os.path.isdir(folder):
        write_images(folder, [(40, 40), (44, 40), (40, 48), (42, 42)])
    dataset = build_dataset(dict(type='ContinuousScalePairedDataset', name='t', phase='train', dataroot_gt=folder,
                                 gt_size=16, scale_range=[1.1, 4.0], scale_step=0.1, scale_per_batch=per_batch,
                                 batch_size_per_gpu=2))
    sampler = ResumableSampler(dataset, 1, 0, 1, seed, 2)
    loader = torch.utils.data.DataLoader(SeededSamples(dataset), batch_size=2, sampler=sampler, num_workers=workers,
                                         drop_last=True)
    out = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out.append([b for b in loader])
    return out


def test_two_seeds_give_different_first_batches(tmp_path):
    a, b, a2 = (keyed_loader(str(tmp_path), s)[0][0] for s in (0, 1, 0))
    assert torch.equal(a['gt'], a2['gt']) and torch.equal(a['lq'], a2['lq'])
    assert not torch.equal(a['gt'], b['gt'])


def test_epochs_with_workers_draw_new_scales_and_crops_for_the_same_image(tmp_path):
    epochs = keyed_loader(str(tmp_path), 0, workers=2, epochs=(0, 1))
    per_image = [{p: (float(s), gt) for batch in ep for p, s, gt in zip(batch['gt_path'], batch['scale'], batch['gt'])}
                 for ep in epochs]
    assert per_image[0].keys() == per_image[1].keys() and len(per_image[0]) == 4
    assert any(per_image[0][p][0] != per_image[1][p][0] for p in per_image[0]), 'scales repeat'
    assert all(not torch.equal(per_image[0][p][1], per_image[1][p][1]) for p in per_image[0]), 'crops repeat'
    # workers do not matter
    again = keyed_loader(str(tmp_path), 0, workers=0, epochs=(0, 1))
    for ep, ep0 in zip(epochs, again):
        for batch, batch0 in zip(ep, ep0):
            assert torch.equal(batch['lq'], batch0['lq'])


def test_scale_per_batch_is_shared_by_a_batch_and_new_each_epoch(tmp_path):
    epochs = keyed_loader(str(tmp_path), 0, workers=2, epochs=(0, 1, 2), per_batch=True)
    scales = [[tuple(float(s) for s in b['scale']) for b in ep] for ep in epochs]
    assert all(len(set(s)) == 1 for ep in scales for s in ep)
    assert len({s for ep in scales for s in ep}) > 1


@pytest.mark.parametrize('entry,reason', [
    (None, 'no data position'), ({'epoch': 'x'}, 'unreadable'), ({'batch': 1}, 'unreadable'),
    ({'epoch': 1, 'batch': 1, 'seed': 0, 'world_size': 1, 'batch_size': 2}, None),
    ({'epoch': 2, 'batch': 1, 'seed': 0, 'world_size': 1, 'batch_size': 2}, 'does not fit its epoch 1'),
    ({'epoch': 1, 'batch': 1, 'seed': 5, 'world_size': 1, 'batch_size': 2}, 'seed 5 -> 0')])
def test_corrupt_or_changed_data_position_is_refused_with_its_reason(entry, reason):
    import logging

    from nodesr_arch.data.exact_resume import train_sampler
    state = {'epoch': 1, 'iter': 3} if entry is None else {'epoch': 1, 'iter': 3, 'data_position': entry}
    opt = {'manual_seed': 0, 'datasets': {'train': {'batch_size_per_gpu': 2}}}
    records = []
    logger = logging.getLogger('test_resume')
    logger.addHandler(type('H', (logging.Handler, ), {'emit': lambda self, r: records.append(r.getMessage())})())
    sampler = train_sampler(opt, state, list(range(4)), 1, 0, 1, logger=logger)
    if reason is None:
        assert sampler.resume_at == (1, 1) and not any('lost' in r for r in records)
    else:
        assert sampler.resume_at is None and len(records) == 1
        assert 'exact resume lost' in records[0] and reason in records[0], records


def test_exact_resume_is_for_nodesr_models_unless_turned_off():
    import nodesr_arch  # noqa: F401
    from nodesr_arch import compat
    assert compat.exact_resume({'model_type': 'NODESRModel', 'train': {}})
    assert not compat.exact_resume({'model_type': 'NODESRModel', 'train': {'exact_resume': False}})
    assert not compat.exact_resume({'model_type': 'SRModel', 'train': {'exact_resume': True}})
    assert not compat.exact_resume({'model_type': 'NoSuchModel', 'train': {}})


def test_resumed_epoch_skips_the_trained_batches(tmp_path):
    import nodesr_arch  # noqa: F401
    from nodesr_arch.data.exact_resume import ResumableSampler
    data = list(range(10))
    full = ResumableSampler(data, 2, 1, 1, 3, 2)
    full.set_epoch(4)
    resumed = ResumableSampler(data, 2, 1, 1, 3, 2)
    resumed.resume(4, 1)
    resumed.set_epoch(4)
    assert list(resumed) == list(full)[2:] and len(resumed) == 3
    resumed.set_epoch(5)
    full.set_epoch(5)
    assert list(resumed) == list(full)
