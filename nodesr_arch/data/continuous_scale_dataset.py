"""Continuous-scale paired dataset: ``I(t)`` made on the fly from GT images (docs/design.md sections 2.1, 3.2-3.3)."""
import os
import random
import warnings
from os import path as osp

import numpy as np
import torch
from PIL import Image
from torch.utils import data as data
from torch.utils.data import get_worker_info

from nodesr_arch.archs.encoder import gather_pixels
from nodesr_arch.data.exact_resume import SampleKey
from nodesr_arch.data.scale_space import (PROTOCOLS, enlarge, lr_file_pair, make_pair, scale_grid, scale_space,
                                          scale_space_patch, shrink_to)
from nodesr_arch.file_io import IMG_EXTENSIONS, decode_image, list_images
from nodesr_arch.registry import DATASET_REGISTRY


def to_tensor(img):
    """(H, W, C) float array -> (C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def lmdb_meta(lmdb_path):
    """Keys and (h, w) sizes of a BasicSR LMDB, from its ``meta_info.txt`` (``name.png (h,w,c) level``)."""
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta):
        raise FileNotFoundError(f'{lmdb_path} is not a BasicSR LMDB: no meta_info.txt')
    entries = []
    with open(meta) as f:
        for line in f:
            if line.strip():
                name, rest = line.strip().rsplit(' (', 1)
                h, w = (int(v) for v in rest.split(')')[0].split(',')[:2])
                entries.append((osp.splitext(name)[0], (h, w)))
    return entries


def _file_size(path):
    """(h, w) of an image file from its header (no decoding); None if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, ValueError):
        return None


def _is_positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


#: The options :class:`ContinuousScalePairedDataset` reads, and those BasicSR's data loader and option parser
#: read from a dataset's section.
OPTION_KEYS = frozenset((
    'dataroot_gt', 'io_backend', 'meta_info_file', 'phase', 'scale_range', 'scale_step', 'scale_per_batch',
    'scale_seed', 'gt_size', 'skip_small', 'use_hflip', 'use_rot', 'quantize_lq', 'scale', 'protocol',
    'dataroot_lq', 'filename_tmpl', 'lq_size', 'sample_q'))
LOADER_KEYS = frozenset((
    'name', 'type', 'use_shuffle', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio',
    'prefetch_mode', 'num_prefetch_queue', 'pin_memory', 'persistent_workers'))


def lr_patch_mode(opt, scale_range, per_batch):
    """``(lq_size, sample_q)`` of a training set's LR-patch mode (Meta-SR, LIIF), ``(None, None)`` without it.

    Args:
        opt (dict): The training set's options.
        scale_range (list[float]): Its ``[lo, hi]`` training scales.
        per_batch (bool): Its ``scale_per_batch``.

    Raises:
        ValueError: ``lq_size`` or ``sample_q`` is wrong, or with ``gt_size``, or a batch would mix GT crop sizes.
    """
    n, q = opt.get('lq_size'), opt.get('sample_q')
    if n is None or n == 'output':
        if q is not None:
            raise ValueError('sample_q needs an integer lq_size (the LR-patch mode)')
        return None, None
    if not _is_positive_int(n):
        raise ValueError(f'lq_size: in training a positive integer (the LR patch side), got {n!r}')
    if opt.get('gt_size') is not None:
        raise ValueError('give gt_size (a GT patch and I(t0) at its size) or lq_size (an LR patch and its GT '
                         'crop), not both')
    if q is not None:
        if not _is_positive_int(q):
            raise ValueError(f'sample_q must be a positive integer (GT pixels per sample), got {q!r}')
        side = round(n * scale_range[0])
        if q > side * side:
            raise ValueError(f'sample_q {q} is more than the {side * side} GT pixels of the smallest crop '
                             f'({side} px: lq_size {n} at x{scale_range[0]:g})')
    elif not per_batch and scale_range[0] != scale_range[1]:
        raise ValueError(f'lq_size {n}: the GT crops of scales {scale_range[0]}-{scale_range[1]} differ in size, '
                         'so a batch cannot mix them: set scale_per_batch: true (one scale per batch, as Meta-SR '
                         'trains) or sample_q (GT pixels at random, as LIIF trains)')
    return n, q


def train_scale_range(opt):
    """``[lo, hi]`` of a training set's scales: ``scale_range``, else its fixed ``scale``, else [1.1, 4.0]."""
    rng = opt.get('scale_range')
    if rng is None:
        rng = [opt['scale'], opt['scale']] if opt.get('scale') is not None else [1.1, 4.0]
    return [float(v) for v in rng]


def meta_info_names(meta_info_file):
    """File names (first token of each line) of a BasicSR meta_info file."""
    with open(meta_info_file) as f:
        return [line.strip().split(' ')[0] for line in f if line.strip()]


@DATASET_REGISTRY.register()
class ContinuousScalePairedDataset(data.Dataset):
    """Pairs ``(I(t0), GT)`` at output size for NODE-SR, at any real scale ``t0``.

    GT images come from one or more folders, LMDBs or meta_info lists through BasicSR's FileClient.
    Training draws ``t0`` per sample and makes ``I(t0)`` of a random patch (with context, so the crop
    does not disturb it). Validation/testing uses a fixed ``scale`` and a benchmark protocol, or reads
    LR files (``dataroot_lq``).

    Args:
        opt (dict): Config. Keys:
            dataroot_gt (str | list[str]): GT folder(s) or LMDB(s) (BSD200 + T91 together: a list).
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}`` (other keys go to FileClient).
            meta_info_file (str | list[str]): For disk: image names to use (one per GT root).
            phase (str): 'train', or anything else for val/test (BasicSR sets it).
            scale_range (list[float]): Train: [lo, hi] of ``t0``. Default: [1.1, 4.0].
            scale_step (float): Train: grid step of ``t0``; 0 = continuous. Default: 0.1.
            scale_per_batch (bool): Train: one ``t0`` per batch (as Meta-SR draws it) instead of one per
                sample, so a NODE with ``step_size`` takes the step count of that scale, not of the batch's
                largest. Needs ``batch_size_per_gpu`` (BasicSR's training options have it). The scale of
                batch ``b`` of epoch ``e`` is drawn from ``(scale_seed, manual_seed, e, b)`` alone in
                training runs with exact resume (:mod:`nodesr_arch.data.exact_resume`), else from
                ``(scale_seed, b)``, so every DDP rank (and every data worker) draws the same scale for the
                same iteration. Default: False.
            scale_seed (int): Train, with ``scale_per_batch``: seed of the per-batch scales. Default: 0.
            gt_size (int): Train: patch size (None: whole images).
            lq_size (int | str): Train: an integer ``n`` selects the LR-patch mode of the one-shot
                arbitrary-scale methods (Meta-SR, LIIF): an ``n`` x ``n`` LR patch (the network's input) and
                its GT crop of ``round(n * t0)`` px, the LR made from the crop by MATLAB bicubic (rounded as
                ``quantize_lq`` says); the sample's ``scale`` is then the exact ratio ``round(n * t0) / n``.
                A batch's GT crops must be of one size: give ``scale_per_batch``, a fixed scale, or
                ``sample_q``. Not with ``gt_size``. Val/test: see below.
            sample_q (int): Train, with an integer ``lq_size``: instead of the GT crop, ``sample_q`` of its
                pixels at random, without repeats (LIIF's training): ``pixels`` (Q,) their flat indices
                ``row * W + col`` in the crop and ``gt`` (C, Q) their values; scales may then differ within a
                batch.
            skip_small (bool): Train: leave out images smaller than ``gt_size`` instead of failing on
                them (T91 has 57 images under 200 px). Default: False.
            use_hflip (bool): Train: random horizontal flips. Default: True.
            use_rot (bool): Train: random 90-degree rotations. Default: True.
            quantize_lq (bool): Round the shrunk image to the source bit depth. Default: True.
            scale (float): Val/test: the scale.
            protocol (str): Val/test: 'metasr' or 'modcrop'. Default: 'metasr'.
            dataroot_lq (str): Val/test: LR files at ``scale`` (same names, or ``filename_tmpl``).
            filename_tmpl (str): LR name from GT stem. Default: '{}'.
            lq_size (str): Val/test: 'output' (``I(t0)`` at output size) or 'lr' (the LR image itself,
                for one-shot archs with an upsampler). Default: 'output'.

    In training runs with exact resume the items are :data:`~nodesr_arch.data.exact_resume.SampleKey`
    (``takes_sample_keys``), and the crop, flips and scale of each sample come from its key alone.

    Returns (per item): dict with ``lq`` and ``gt`` (3xHxW float tensors in [0, 1], RGB; ``lq`` is not
    clipped, so bicubic overshoot can leave it slightly outside, exactly as at inference), ``scale``
    (float), ``out_size`` (int64 tensor ``[h, w]``: the output (GT) size; ``lq`` is at that size, or is the
    LR image with ``lq_size: lr`` and in the LR-patch mode), ``lq_path``, ``gt_path`` and ``grey`` (the file
    had one channel); with ``sample_q`` also ``pixels``, and ``gt`` holds the sampled values.
    """

    takes_sample_keys = True

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.train = opt.get('phase') == 'train'
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.backend = self.io_backend_opt.get('type', 'disk')
        self.file_client = None
        self.quantize = opt.get('quantize_lq', True)
        self.lq_root = opt.get('dataroot_lq')
        self.filename_tmpl = opt.get('filename_tmpl', '{}')
        self._check_mode()
        self._sizes = {}
        self.paths = self._drop_small(self._scan(_as_list(opt['dataroot_gt'])))
        if not self.paths:
            raise ValueError(f"no images found in dataroot_gt {opt['dataroot_gt']}")

    def _check_mode(self):
        opt = self.opt
        if self.train:
            if self.lq_root is not None:
                raise ValueError('dataroot_lq is for val/test; for training on LR files use BasicSR\'s '
                                 'PairedImageDataset (NODESRModel accepts it)')
            self.scale_range = train_scale_range(opt)
            self.grid = scale_grid(self.scale_range, opt.get('scale_step', 0.1))
            self.per_batch = bool(opt.get('scale_per_batch', False))
            if self.per_batch:
                self.batch_size = opt.get('batch_size_per_gpu')
                if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
                    raise ValueError('scale_per_batch needs batch_size_per_gpu (a positive integer) in the dataset '
                                     f'options, got {self.batch_size!r}')
                self.scale_seed = opt.get('scale_seed', 0)
                self._drawn = 0  # samples this process (data worker) has made
            self.lr_patch, self.sample_q = lr_patch_mode(opt, self.scale_range, self.per_batch)
        else:
            if opt.get('scale') is None:
                raise ValueError('ContinuousScalePairedDataset: val/test needs a fixed `scale`')
            self.scale = float(opt['scale'])
            scale_grid([self.scale, self.scale], 0)  # validates
            self.protocol = opt.get('protocol', 'metasr')
            if self.protocol not in PROTOCOLS:
                raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got '{self.protocol}'")
            self.lq_size = opt.get('lq_size', 'output')
            if self.lq_size not in ('output', 'lr'):
                raise ValueError(f"lq_size must be 'output' or 'lr', got '{self.lq_size}'")

    # ------------------------------------------------------------ LR-patch mode (Meta-SR, LIIF)
    def _min_train_side(self):
        """The smallest image side a training sample can use: ``gt_size``, or the LR-patch mode's largest
        GT crop; None for whole images."""
        if self.lr_patch is not None:
            return round(self.lr_patch * max(self.scale_range))
        return self.opt.get('gt_size')

    def _lr_patch_sample(self, img, levels, display, key=None):
        """One sample of the LR-patch mode: the dict fields ``lq``, ``gt``, ``scale``, ``out_size`` (and
        ``pixels`` with ``sample_q``)."""
        n = self.lr_patch
        t = self._draw_scale(key)
        size = round(n * t)
        h, w = img.shape[:2]
        if h < size or w < size:
            raise ValueError(f'{display} is {h}x{w}, smaller than the GT crop {size} of lq_size {n} at x{t:g} '
                             '(set skip_small: true to leave such images out)')
        top, left = random.randint(0, h - size), random.randint(0, w - size)
        gt = np.array(img[top:top + size, left:left + size], dtype=np.float32)  # a copy: augment flips in place
        lq = np.ascontiguousarray(shrink_to(gt, (n, n), self.quantize, levels))
        from basicsr.data.transforms import augment
        gt, lq = augment([gt, lq], self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
        item = {'lq': to_tensor(lq), 'gt': to_tensor(gt), 'scale': size / n,
                'out_size': torch.tensor([size, size], dtype=torch.int64)}
        if self.sample_q is not None:
            pixels = torch.tensor(random.sample(range(size * size), self.sample_q), dtype=torch.int64)
            item.update(gt=gather_pixels(item['gt'][None], pixels)[0], pixels=pixels)
        return item

    def _drop_small(self, entries):
        """Images smaller than ``gt_size`` (or the LR-patch mode's largest GT crop; sizes from headers or
        LMDB meta): left out with ``skip_small``, else an error now rather than when a batch first draws one."""
        size = self._min_train_side() if self.train else None
        if not (self.train and size):
            return entries
        if not _is_positive_int(size):
            raise ValueError(f'gt_size must be a positive integer, got {size!r}')
        kept = []
        for entry in entries:
            hw = self._sizes.get(entry[2]) or _file_size(entry[0])
            if hw is None or min(hw) >= size:
                kept.append(entry)
            elif not self.opt.get('skip_small', False):
                raise ValueError(f'{entry[2]} is {hw[0]}x{hw[1]}, smaller than gt_size {size} '
                                 '(set skip_small: true to leave such images out)')
        if len(kept) < len(entries):
            warnings.warn(f'skip_small: {len(entries) - len(kept)} of {len(entries)} images are smaller than '
                          f'gt_size {size} and are left out')
        return kept

    def _scan(self, roots):
        """List of (gt_path, client_key, display_name, lq_path) entries."""
        entries = []
        if self.backend == 'lmdb':
            keys = [f'gt{i}' for i in range(len(roots))]
            db_paths = list(roots)
            if self.lq_root is not None:
                if len(roots) != 1:
                    raise ValueError('dataroot_lq needs a single dataroot_gt')
                db_paths.append(self.lq_root)
                keys.append('lq')
            self.io_backend_opt['db_paths'], self.io_backend_opt['client_keys'] = db_paths, keys
            for root, ckey in zip(roots, keys):
                for k, size in lmdb_meta(root):
                    entries.append((k, ckey, f'{root}:{k}', k if self.lq_root else None))
                    self._sizes[f'{root}:{k}'] = size
            return entries
        meta = self.opt.get('meta_info_file')
        metas = _as_list(meta) if meta is not None else [None] * len(roots)
        if len(metas) != len(roots):
            raise ValueError(f'{len(metas)} meta_info_file(s) for {len(roots)} dataroot_gt folders')
        if self.lq_root is not None and len(roots) != 1:
            raise ValueError('dataroot_lq needs a single dataroot_gt')
        for root, meta_file in zip(roots, metas):
            if meta_file is None:
                files = list_images(root)
            else:
                files = [osp.join(root, n) for n in meta_info_names(meta_file)]
            for f in files:
                entries.append((f, 'default', f, self._lq_path(f) if self.lq_root else None))
        return entries

    def _lq_path(self, gt_path):
        stem, ext = osp.splitext(osp.basename(gt_path))
        name = self.filename_tmpl.format(stem)
        candidate = osp.join(self.lq_root, name + ext)
        if osp.exists(candidate) or not osp.isdir(self.lq_root):
            return candidate
        for e in IMG_EXTENSIONS:  # LR files may use another extension
            if osp.exists(osp.join(self.lq_root, name + e)):
                return osp.join(self.lq_root, name + e)
        return candidate

    def _read(self, path, client_key, display):
        if self.file_client is None:
            opt = dict(self.io_backend_opt)
            from basicsr.utils import FileClient
            self.file_client = FileClient(opt.pop('type', 'disk'), **opt)
        if self.backend != 'lmdb' and not os.path.isfile(path):
            raise FileNotFoundError(f'image not found: {display}')
        return decode_image(self.file_client.get(path, client_key), display, as_float=True)

    def __getitem__(self, index):
        key = index if isinstance(index, SampleKey) else None
        if key is not None:
            index = key.index
        gt_path, client_key, display, lq_path = self.paths[index]
        img, grey, levels = self._read(gt_path, client_key, display)
        if self.train and self.lr_patch is not None:
            return dict(self._lr_patch_sample(img, levels, display, key), lq_path=gt_path, gt_path=gt_path,
                        grey=bool(grey))
        if self.train:
            t, lq, gt = self._train_sample(img, levels, display, key)
        elif lq_path is not None:
            t = self.scale
            lq_display = f'{self.lq_root}:{lq_path}' if self.backend == 'lmdb' else lq_path
            lr, _, _ = self._read(lq_path, 'lq', lq_display)
            gt, out = lr_file_pair(lr, img, t, names=(lq_display, display))
            lq = lr if self.lq_size == 'lr' else enlarge(lr, t, out)
        else:
            t = self.scale
            lr, gt, out = make_pair(img, t, self.protocol, self.quantize, levels)
            lq = lr if self.lq_size == 'lr' else enlarge(lr, t, out)
            lq_path = gt_path
        return {
            'lq': to_tensor(lq),
            'gt': to_tensor(gt),
            'scale': float(t),
            'out_size': torch.tensor(gt.shape[:2], dtype=torch.int64),
            'lq_path': lq_path if lq_path is not None else gt_path,
            'gt_path': gt_path,
            'grey': bool(grey),
        }

    def _draw_scale(self, key=None):
        """``t0`` of the next training sample: random per sample, or shared by the batch.

        With ``scale_per_batch`` the batch index is the sample key's (exact resume), else counted: a
        DataLoader hands whole batches to its workers in turn (batch ``b`` to worker ``b % num_workers``) and
        each worker makes its batches' samples in order, so worker ``w``'s ``k``-th batch is batch
        ``k * num_workers + w``.
        """
        rng = random
        if self.per_batch and key is not None:
            rng = random.Random(f'{self.scale_seed}:{key.seed}:{key.epoch}:{key.batch}')
        elif self.per_batch:
            info = get_worker_info()
            worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
            batch = self._drawn // self.batch_size * workers + worker
            self._drawn += 1
            rng = random.Random(f'{self.scale_seed}:{batch}')
        return rng.choice(self.grid) if self.grid else rng.uniform(*self.scale_range)

    def _train_sample(self, img, levels, display, key=None):
        t = self._draw_scale(key)
        size = self.opt.get('gt_size')
        if size is None:
            lq, gt = scale_space(img, t, self.quantize, levels), img
        else:
            h, w = img.shape[:2]
            if h < size or w < size:
                raise ValueError(f'{display} is {h}x{w}, smaller than gt_size {size} '
                                 '(set skip_small: true to leave such images out)')
            top, left = random.randint(0, h - size), random.randint(0, w - size)
            lq, gt = scale_space_patch(img, t, top, left, size, quantize_8bit=self.quantize, levels=levels)
        from basicsr.data.transforms import augment
        gt, lq = augment([gt, lq], self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
        return t, lq, gt

    def __len__(self):
        return len(self.paths)
