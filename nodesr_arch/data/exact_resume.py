"""Exact resume for training data: a shuffle seeded by ``(manual_seed, epoch)``, per-sample draws seeded by
``(manual_seed, epoch, position)``, and a sampler that starts where a resumed run stopped.

BasicSR's ``EnlargedSampler`` seeds its shuffle with the epoch alone, its ``worker_init_fn`` seeds each data
worker with the same value at every epoch, and ``train_pipeline`` restarts the current epoch on resume. With
:class:`ResumableSampler` and :class:`SeededSamples` every batch is a function of ``(manual_seed, epoch,
batch index)`` only, so which worker made it, and what that worker made before, does not matter; a run
resumed from a training state that carries its data position (``{'epoch': e, 'batch': b}``: ``b`` batches of
epoch ``e`` trained) continues with batch ``b`` of epoch ``e``, as the uninterrupted run would.

``nodesr_arch.compat`` (fix 9) makes BasicSR's ``train_pipeline`` use them for runs of a model that supports
it (``NODESRModel``); ``train: exact_resume: false`` gives BasicSR's own sampler back.
"""
import hashlib
import math
import random
from collections import namedtuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

#: What decides one training sample: dataset ``index``; ``seed`` (``manual_seed``); ``epoch``; ``position``,
#: the sample's place in the epoch's shuffled order over all ranks (unique per sample); ``batch``, the
#: index of its batch in the epoch (the same on every rank for the same iteration).
SampleKey = namedtuple('SampleKey', 'index seed epoch position batch')

#: Key of the data position in a training state.
STATE_KEY = 'data_position'


def derived_seed(*parts):
    """A 63-bit seed that depends on every one of ``parts`` (integers): a BLAKE2b hash of them."""
    digest = hashlib.blake2b(':'.join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') >> 1


class ResumableSampler(Sampler):
    """BasicSR's ``EnlargedSampler`` (the same length and share per rank, ``set_epoch``) with a shuffle
    seeded by ``(seed, epoch)``, :data:`SampleKey` items, and a start position for a resumed epoch.

    Args:
        dataset (Dataset): The training set.
        num_replicas (int): World size.
        rank (int): This process's rank.
        ratio (int): ``dataset_enlarge_ratio``.
        seed (int): ``manual_seed``.
        batch_size (int): ``batch_size_per_gpu`` (batches per epoch, and the batch index of each sample).
    """

    def __init__(self, dataset, num_replicas, rank, ratio, seed, batch_size):
        self.dataset, self.num_replicas, self.rank, self.epoch = dataset, num_replicas, rank, 0
        self.num_samples = math.ceil(len(dataset) * ratio / num_replicas)  # as EnlargedSampler
        self.total_size = self.num_samples * num_replicas
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.batches_per_epoch = self.num_samples // self.batch_size  # the DataLoader drops the last one
        self.resume_at = None  # (epoch, batches already trained in it)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def resume(self, epoch, batch):
        """Start epoch ``epoch`` (when it comes) at batch ``batch``: the batches before it were trained."""
        self.resume_at = (int(epoch), int(batch))

    def _skipped(self):
        return self.resume_at[1] * self.batch_size if self.resume_at and self.resume_at[0] == self.epoch else 0

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(derived_seed(self.seed, self.epoch))
        order = torch.randperm(self.total_size, generator=g).tolist()
        size = len(self.dataset)
        for local in range(self._skipped(), self.num_samples):
            position = local * self.num_replicas + self.rank
            yield SampleKey(order[position] % size, self.seed, self.epoch, position, local // self.batch_size)

    def __len__(self):
        return self.num_samples - self._skipped()


class SeededSamples(Dataset):
    """A training set whose every sample draws its randomness from its :data:`SampleKey` alone.

    Before each sample, Python's ``random``, numpy's global generator and torch's CPU generator are seeded
    from ``(seed, epoch, position)``. In the main process (a run without data workers) they are restored
    afterwards (about 1 ms, mostly numpy's state), so the model's own streams are untouched; a data
    worker's streams serve nothing else (about 0.06 ms a sample). The wrapped dataset gets the key itself
    if it says so (``takes_sample_keys = True``, as :class:`ContinuousScalePairedDataset` for its
    per-batch scale), else the index. Each sample also carries ``data_position`` (``[epoch, batch]``), which
    ``NODESRModel`` saves in its training states.

    Args:
        dataset (Dataset): A BasicSR training set.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):  # opt, paths...: those of the wrapped set
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        if get_worker_info() is not None:
            item = self._seeded(key)
        else:
            states = random.getstate(), np.random.get_state(), torch.get_rng_state()
            try:
                item = self._seeded(key)
            finally:
                random.setstate(states[0])
                np.random.set_state(states[1])
                torch.set_rng_state(states[2])
        item['data_position'] = torch.tensor([key.epoch, key.batch], dtype=torch.int64)
        return item

    def _seeded(self, key):
        seed = derived_seed(key.seed, key.epoch, key.position)
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        torch.default_generator.manual_seed(seed)
        return self.dataset[key if getattr(self.dataset, 'takes_sample_keys', False) else key.index]


def read_position(state, seed, world_size, batch_size):
    """The data position of a training state, or why it cannot be used.

    Args:
        state (dict): A training state.
        seed, world_size, batch_size (int): This run's, which must be those the state was trained with.

    Returns:
        tuple: ``((epoch, batch), None)``, or ``(None, reason)``.
    """
    pos = state.get(STATE_KEY)
    if pos is None:
        return None, 'it has no data position (written by an earlier version or another model)'
    try:
        epoch, batch = int(pos['epoch']), int(pos['batch'])
        saved = {k: int(pos[k]) for k in ('seed', 'world_size', 'batch_size')}
    except (TypeError, KeyError, ValueError) as e:
        return None, f'its data position is unreadable ({type(e).__name__}: {e})'
    if epoch < 0 or batch < 0 or epoch != state.get('epoch'):
        return None, f"its data position (epoch {epoch}, batch {batch}) does not fit its epoch {state.get('epoch')}"
    now = {'seed': int(seed), 'world_size': int(world_size), 'batch_size': int(batch_size)}
    changed = [f'{k} {saved[k]} -> {now[k]}' for k in now if saved[k] != now[k]]
    if changed:
        return None, f'the data order changed since it was saved ({", ".join(changed)})'
    return (epoch, batch), None


def train_sampler(opt, resume_state, dataset, num_replicas, rank, ratio, logger=None):
    """The exact-resume sampler for a run, positioned from its resume state.

    A state without a usable data position resumes as BasicSR does (its epoch from the first batch), with a
    warning that the run no longer trains on exactly the batches an uninterrupted run would.

    Args:
        opt (dict): The run's options (``manual_seed``, ``datasets: train: batch_size_per_gpu``).
        resume_state (dict | None): The training state resumed from.
        dataset, num_replicas, rank, ratio: As for :class:`ResumableSampler`.
        logger (logging.Logger | None): Where the warning goes (default: BasicSR's root logger).
    """
    seed, batch_size = opt['manual_seed'], opt['datasets']['train']['batch_size_per_gpu']
    sampler = ResumableSampler(dataset, num_replicas, rank, ratio, seed, batch_size)
    if resume_state is not None:
        position, reason = read_position(resume_state, seed, num_replicas, batch_size)
        if logger is None:
            from basicsr.utils import get_root_logger
            logger = get_root_logger()
        if position is None:
            logger.warning(f"exact resume lost: the training state of iter {resume_state.get('iter')} cannot say "
                           f'which batches were trained: {reason}. Resuming as BasicSR does, from the first batch '
                           f"of epoch {resume_state.get('epoch')}: batches are replayed or skipped, and the run "
                           'no longer equals an uninterrupted one')
        else:
            sampler.resume(*position)
            logger.info(f'Exact resume: epoch {position[0]} continues at batch {position[1]} of '
                        f'{sampler.batches_per_epoch}')
    return sampler


def state_entry(position, seed, world_size, batch_size):
    """The training-state entry for data position ``(epoch, batches trained in it)``."""
    epoch, batch = position
    return {'epoch': int(epoch), 'batch': int(batch), 'seed': int(seed), 'world_size': int(world_size),
            'batch_size': int(batch_size)}
