"""NODESRModel: BasicSR's SRModel for networks that take a scale, at any real scale."""
import glob
import inspect
import os
import time
from collections import OrderedDict
from os import path as osp

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info, master_only
from basicsr.utils.registry import MODEL_REGISTRY
from nodesr_arch.amp import autocast, parse_amp
from nodesr_arch.archs.contract import contract
from nodesr_arch.file_io import remove_stale_partials, to_pixels, write_image
from nodesr_arch.inference import (call_network, enlarge_to, fixed_scale, fixed_scale_message, run_network,
                                   self_ensemble, trajectory_strip)
from nodesr_arch.metrics import image_metrics
from nodesr_arch.models.checkpoint import atomic_torch_save, to_python_numbers
from nodesr_arch.models.val_util import center_crop, gather_records, trajectory_states, write_summary
from nodesr_arch.scales import EPS, output_size
from nodesr_arch.solver_metadata import attach_solver


def _write_png(path, img):
    """Write an image atomically as PNG (:func:`nodesr_arch.file_io.write_image`), making its folder as BasicSR's
    ``imwrite`` does.

    Args:
        path (str): The ``.png`` file.
        img (ndarray | Tensor): (H, W, 3) uint8 RGB, or a (C, H, W) tensor in [0, 1] (rounded to 8 bits).
    """
    if torch.is_tensor(img):
        img = to_pixels(img.detach().float().cpu().numpy().transpose(1, 2, 0))
        img = img[..., 0] if img.shape[2] == 1 else img
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_image(path, img)


class NonFiniteLossError(RuntimeError):
    """Training stopped after too many non-finite losses (or gradients) in a row."""


@MODEL_REGISTRY.register()
class NODESRModel(SRModel):
    """SR model for NODE-SR and the other scale-aware networks of this package.

    Differences from BasicSR's ``SRModel``:

    - Feeds ``net(x, scale)`` to networks with ``takes_scale`` (``net(x)`` to the others, e.g. BasicSR's
      EDSR). Batches carry their own sizes: those of ``ContinuousScalePairedDataset`` hold a per-sample
      ``scale`` and ``out_size``, and ``lq`` is ``I(t0)`` at output size (or the LR image, with
      ``lq_size: lr``); batches from BasicSR's ``PairedImageDataset`` carry a low-res ``lq`` and take the
      ``scale`` of the options (BasicSR copies the top-level ``scale`` into every dataset), else the GT-to-lq
      ratio. For networks with ``input_size == 'output'`` the model enlarges a low-res ``lq`` itself
      (MATLAB bicubic). Networks that take the scale and the LR itself (Meta-SR, LIIF) get
      ``net(lq, scale, out_size=...)``; batches of sampled GT pixels (``sample_q``: ``pixels``) train
      through their ``pixels`` path (:meth:`pixels_forward`).
    - ``train: amp: bf16`` runs the training forward under bf16 autocast, ``val: amp: bf16`` (or ``fp16``)
      validation and tests; the loss, the ODE state and the solver's sums stay fp32 (:mod:`nodesr_arch.amp`).
    - ``train: grad_clip`` (max norm, or ``{max_norm, norm_type}``) clips gradients. A non-finite loss or
      gradient skips the step with a warning; ``train: max_nonfinite`` (default 10) in a row stop training
      with :class:`NonFiniteLossError`, before anything more is saved.
    - Validation always runs the bare network (never the DDP wrapper). With several processes every rank
      validates its share of the images and the results are gathered, so every rank follows the same
      schedule. Metrics with ``crop_border: scale`` crop ``ceil(s)`` per image; grey images (``grey`` in
      the batch) are measured on channel 0 without YCbCr. Per-set metrics go to the console and to
      TensorBoard as ``metrics/<set>/<metric>``.
    - ``val`` options: ``self_ensemble: true`` (x8 flips/transposes); ``tile``/``tile_pad`` (tiles each
      evaluation of ``f``, see ``net.tiling_for``; without ``tile_pad`` the receptive radius: exact);
      ``trajectory`` (``true``/``false`` or ``{num: 5, max_size: 192}``: a strip of ``I(t_i)`` for the
      first image of each set, to TensorBoard as ``trajectory/<set>`` and to ``visualization/trajectory``).
      In test runs (``nodesr test``) a ``metrics.json`` and ``metrics.csv`` summary is written to the
      results folder.
    - Checkpoints (``params``, and ``params_ema`` with EMA, as BasicSR's) and training states are written
      atomically (temporary file, then rename), so a kill never leaves a truncated file; training states
      hold plain Python numbers, so they load with ``torch.load(..., weights_only=True)``. A save that still
      fails after 3 tries raises instead of being skipped.
    - Exact resume (``supports_exact_resume``; ``train: exact_resume: false`` turns it off): the training
      data comes from :mod:`nodesr_arch.data.exact_resume` (shuffle from ``manual_seed`` and the epoch, each
      sample's draws from its place in the epoch), and training states also hold ``data_position`` (the
      epoch and the batches of it trained) and every rank's Python, numpy and torch random states, so a
      run resumed with ``--auto_resume`` trains on exactly the batches an uninterrupted run would.

    Args:
        opt (dict): BasicSR options.
    """

    supports_exact_resume = True  # nodesr_arch.compat fix 9

    def __init__(self, opt):
        self.nonfinite_count = 0
        self.data_position = None  # (epoch, batches of it trained), from the batches' data_position
        self._rng_states = None
        self.train_amp = None
        self.batch_out_size = None  # the fed batch's own out_size, if it has one
        self.pixels = None  # (pixels, out_size) of a batch of sampled GT pixels (LIIF's training), else None
        self.set_scale = None  # the `scale` option of the set being validated (for batches that carry none)
        self.summary = OrderedDict()
        super().__init__(opt)
        if self.opt['is_train'] and self.opt.get('rank', 0) == 0:
            self._remove_partial_saves()

    def init_training_settings(self):
        super().init_training_settings()
        train_opt = self.opt['train']
        clip = train_opt.get('grad_clip')
        if isinstance(clip, dict):
            self.grad_clip = dict(max_norm=float(clip['max_norm']), norm_type=float(clip.get('norm_type', 2.0)))
        else:
            self.grad_clip = dict(max_norm=float(clip), norm_type=2.0) if clip else None
        self.max_nonfinite = int(train_opt.get('max_nonfinite', 10))
        self.train_amp = parse_amp(train_opt.get('amp'), 'train:amp', training=True)
        self._compile_network(train_opt.get('compile', False))

    def _compile_network(self, value):
        """``train: compile``: ``true`` or a dict of ``torch.compile`` arguments (``mode``, ``backend``,
        ``dynamic``, ``fullgraph``, ``options``) compiles the training network in place (``nn.Module.compile``:
        names, state dicts and checkpoints stay those of the eager network). For ODE networks only ``f`` is
        compiled: the solver's Python (step grid, torchdiffeq's checks) would break the graph at every step.
        EMA copies stay eager. Exact to float tolerance on the CPU (tests/test_model.py); its speed on a GPU
        is not measured yet (docs/gpu.md)."""
        if value is False or value is None:
            return
        keys = ('mode', 'backend', 'dynamic', 'fullgraph', 'options')
        if not (value is True or (isinstance(value, dict) and set(value) <= set(keys))):
            raise ValueError(f'train:compile: must be true, false or a dict with keys among {list(keys)}, '
                             f'got {value!r}')
        bare = self.get_bare_model(self.net_g)
        target = bare.ode.func if contract(bare).is_ode else bare
        target.compile(**(value if isinstance(value, dict) else {}))

    # ------------------------------------------------------------------ data
    def _default_scale(self):
        """Scale of batches that carry none (BasicSR's datasets): in validation the set's own ``scale``
        option, else the top-level ``scale``, which BasicSR's parse_options copies into every dataset, else
        (training) the training set's own; None if none."""
        scale = self.set_scale if self.set_scale is not None else self.opt.get('scale')
        if scale is None and self.is_train:
            scale = (self.opt.get('datasets') or {}).get('train', {}).get('scale')
        return scale

    def feed_data(self, data):
        """Take a batch.

        Args:
            data (dict): ``lq``, optional ``gt``, ``scale`` (per sample; absent: :meth:`_default_scale`, else
                the GT-to-lq ratio), optional ``out_size`` (``[h, w]`` per sample: the output size; ``lq``
                is at output size when its size is that, else it is the low-res image; absent: ``lq`` is
                at output size exactly when the batch has ``scale``, as ``ContinuousScalePairedDataset``'s
                default) and optional ``grey``.
        """
        self._note_data_position(data)
        self.lq = data['lq'].to(self.device)
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
        elif hasattr(self, 'gt'):
            del self.gt
        self.batch_out_size = None
        if data.get('out_size') is not None:
            self.batch_out_size = tuple(int(n) for n in torch.as_tensor(data['out_size']).reshape(-1, 2)[0])
            self.lq_at_output = tuple(self.lq.shape[-2:]) == self.batch_out_size
        else:  # BasicSR's datasets give the low-res image
            self.lq_at_output = 'scale' in data
        if 'scale' in data:
            self.scale = data['scale']
        else:
            scale = self._default_scale()
            if scale is None:
                if 'gt' not in data:
                    raise ValueError('the batch has no "scale" and the dataset options set none: add "scale" '
                                     'to the dataset options')
                scale = data['gt'].shape[-2] / data['lq'].shape[-2]
            self.scale = float(scale)
        grey = data.get('grey')
        self.grey = [False] * self.lq.shape[0] if grey is None else [bool(g) for g in grey]
        self.pixels = (data['pixels'], torch.as_tensor(data['out_size']).reshape(-1, 2)) if 'pixels' in data else None

    def _out_size(self):
        if hasattr(self, 'gt'):
            return tuple(self.gt.shape[-2:])
        if self.batch_out_size is not None:
            return self.batch_out_size
        if self.lq_at_output:
            return tuple(self.lq.shape[-2:])
        return output_size(self.lq.shape[-2:], self._max_scale())

    def _max_scale(self):
        return float(torch.as_tensor(self.scale, dtype=torch.float64).max())

    def _check_input(self, net, out_size):
        if (contract(net).input_size == 'lr' and tuple(self.lq.shape[-2:]) == tuple(out_size)
                and self._max_scale() > 1):
            raise ValueError(f'network_g: {type(net).__name__} takes the low-res image, but the batch gives lq '
                             'at output size (ContinuousScalePairedDataset); use a dataset with low-res lq '
                             '(e.g. PairedImageDataset) or a network with input_size "output"')

    # -------------------------------------------------------------- training
    def optimize_parameters(self, current_iter):
        """One step with non-finite guard, optional gradient clipping and EMA."""
        bare = self.get_bare_model(self.net_g)
        terms = contract(bare)
        out_size = self.batch_out_size if self.pixels is not None else tuple(self.gt.shape[-2:])
        if self.cri_perceptual and self.pixels is not None:
            raise ValueError('perceptual_opt needs whole images; sampled GT pixels (sample_q) have none')
        self._check_input(bare, out_size)
        x = self.lq
        if terms.input_size == 'output' and tuple(x.shape[-2:]) != out_size:
            x = enlarge_to(x, self._max_scale(), out_size)

        self.optimizer_g.zero_grad()
        with autocast(self.device, self.train_amp):
            if self.pixels is not None:
                self.output = self.pixels_forward(bare, x)
            else:
                self.output = call_network(self.net_g, x, self.scale, out_size, terms)
        self.output = self.output.to(self.gt.dtype)  # the loss in fp32 (a no-op without amp)
        if self.output.shape != self.gt.shape:
            what = 'sampled GT pixels' if self.pixels is not None else 'gt'
            raise ValueError(f'network_g output is {tuple(self.output.shape)}, {what} {tuple(self.gt.shape)}')

        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, self.gt)
            l_total += l_pix
            loss_dict['l_pix'] = l_pix
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for name, value in (('l_percep', l_percep), ('l_style', l_style)):
                if value is not None:
                    l_total += value
                    loss_dict[name] = value

        # every rank always runs backward (DDP's reducer needs it) and takes the same decision: the loss
        # flag is reduced over ranks and the gradients are already averaged
        l_total.backward()
        finite = self._all_ranks_true(bool(torch.isfinite(l_total.detach()).all()))
        params = [p for p in self.net_g.parameters() if p.grad is not None]
        if self.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(params, **self.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        finite = finite and bool(torch.isfinite(norm))
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if terms.is_ode:  # the step's cost: evaluations of f in the forward solve
            self.log_dict['nfe'] = float(bare.ode.nfe)
        if not finite:
            self.optimizer_g.zero_grad()
            self._skip_step(current_iter, float(l_total.detach()), float(norm))
            return
        self.nonfinite_count = 0
        self.optimizer_g.step()
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def pixels_forward(self, bare, x):
        """The network's values at the fed batch's sampled GT pixels (``sample_q``: LIIF's training).

        Each sample's ``pixels`` index its own ``out_size`` (``row * W + col``); a batch that mixes scales
        (crop sizes) is re-indexed on the grid of its largest crop, whose rows and columns address every
        sample's pixels (the networks place a pixel by its row, column and the sample's scale). Called
        through ``self.net_g`` (the DDP wrapper when there is one), so gradients are reduced as for a whole
        image.

        Args:
            bare (nn.Module): The bare network; its ``forward`` must take ``pixels`` (Meta-SR, LIIF do).
            x (Tensor): (B, C, h, w) LR patches.

        Returns:
            Tensor: (B, C, Q).
        """
        if 'pixels' not in inspect.signature(bare.forward).parameters:
            raise ValueError(f'datasets:train:sample_q: {type(bare).__name__} cannot predict sampled pixels (its '
                             'forward takes no pixels; Meta-SR and LIIF do): remove sample_q')
        pixels, sizes = self.pixels
        width = sizes[:, 1:].to(pixels.device)
        grid = (int(sizes[:, 0].max()), int(sizes[:, 1].max()))
        pixels = (pixels // width * grid[1] + pixels % width).to(self.device)
        return self.net_g(x, self.scale, out_size=grid, pixels=pixels)

    def _all_ranks_true(self, flag):
        if not self.opt.get('dist'):
            return flag
        t = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def _skip_step(self, current_iter, loss, norm):
        self.nonfinite_count += 1
        logger = get_root_logger()
        logger.warning(f'iter {current_iter}: non-finite loss {loss} or gradient norm {norm}: step skipped '
                       f'({self.nonfinite_count} in a row; train:max_nonfinite = {self.max_nonfinite})')
        if self.nonfinite_count >= self.max_nonfinite:
            saved = sorted(glob.glob(osp.join(self.opt['path'].get('models', ''), 'net_g_*.pth')), key=os.path.getmtime)
            last = saved[-1] if saved else 'none saved yet'
            raise NonFiniteLossError(
                f'training stopped at iter {current_iter}: {self.nonfinite_count} non-finite losses or gradients '
                f'in a row (train:max_nonfinite = {self.max_nonfinite}). Nothing was saved after the last good '
                f'step; last checkpoint: {last}. Lower the learning rate or set train:grad_clip.')

    # ---------------------------------------------------------- exact resume
    def _note_data_position(self, data):
        pos = data.get('data_position')
        if pos is not None:  # [epoch, batch] per sample, the same for the whole batch
            epoch, batch = (int(v) for v in torch.as_tensor(pos).reshape(-1, 2)[0])
            self.data_position = (epoch, batch + 1)

    def save(self, epoch, current_iter):
        """Save as SRModel does; with exact resume every rank's random states go into the training state."""
        self._rng_states = None
        if current_iter != -1 and self.data_position is not None:
            self._rng_states = self._gathered_rng_states()
        super().save(epoch, current_iter)

    def _gathered_rng_states(self):
        import random

        import numpy as np
        own = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
        if self.device.type == 'cuda':
            own['cuda'] = torch.cuda.get_rng_state(self.device)
        if not self.opt.get('dist'):
            return [own]
        states = [None] * dist.get_world_size()
        dist.all_gather_object(states, {k: v.cpu() if torch.is_tensor(v) else v for k, v in own.items()})
        return states

    def _exact_resume_entries(self):
        """The training-state entries of exact resume (none for batches without a data position)."""
        if getattr(self, 'data_position', None) is None:
            return {}
        from nodesr_arch.data.exact_resume import STATE_KEY, state_entry
        train = self.opt['datasets']['train']
        return {STATE_KEY: state_entry(self.data_position, self.opt['manual_seed'], self.opt.get('world_size', 1),
                                       train['batch_size_per_gpu']),
                'rng_states': self._rng_states}

    def resume_training(self, resume_state):
        """Reload optimizers and schedulers; with exact resume also this rank's random states."""
        super().resume_training(resume_state)
        states = resume_state.get('rng_states')
        rank, world_size = get_dist_info()
        if not states or not self.opt['train'].get('exact_resume', True):
            return
        if len(states) != world_size:
            get_root_logger().warning(f'exact resume: the training state holds the random states of {len(states)} '
                                      f'processes, this run has {world_size}: they are not restored')
            return
        import random

        import numpy as np
        own = states[rank]
        py = own['python']
        random.setstate((py[0], tuple(py[1]), py[2]))
        npy = own['numpy']
        np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), *npy[2:]))
        torch.set_rng_state(own['torch'].cpu())
        if 'cuda' in own and self.device.type == 'cuda':
            torch.cuda.set_rng_state(own['cuda'].cpu(), self.device)

    # ----------------------------------------------------------- checkpoints
    def _remove_partial_saves(self):
        """Remove the temporary files of saves a killed run left (:func:`nodesr_arch.file_io.remove_stale_partials`;
        the experiment lock makes every such file a dead run's)."""
        folders = [self.opt['path'].get(key) for key in ('models', 'training_states')]
        removed = [name for folder in folders if folder and osp.isdir(folder)
                   for name in remove_stale_partials(folder, locked=True)]
        if removed:
            get_root_logger().warning(f'Removed {len(removed)} partial save(s) of a killed run: {removed}')

    def _save(self, obj, path, what):
        for attempt in range(3):
            try:
                atomic_torch_save(obj, path)
                return
            except OSError as e:
                if attempt == 2:
                    raise
                get_root_logger().warning(f'Save {what} error: {e}, remaining retry times: {2 - attempt}')
                time.sleep(1)

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """Save networks as BasicSR does (``{net_label}_{iter}.pth`` holding ``param_key``), atomically.

        Args:
            net (nn.Module | list[nn.Module]): Network(s) to be saved.
            net_label (str): Network label.
            current_iter (int): Current iteration (-1: ``latest``).
            param_key (str | list[str]): The parameter key(s), e.g. ``['params', 'params_ema']``.
        """
        if current_iter == -1:
            current_iter = 'latest'
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError('save_network: the lengths of net and param_key differ')
        save_dict = {}
        for net_, key_ in zip(nets, keys):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[key_] = attach_solver({(k[7:] if k.startswith('module.') else k): v.cpu()  # spandrel reads it
                                             for k, v in state_dict.items()}, self.get_bare_model(net_))
        self._save(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'), 'model')

    @master_only
    def save_training_state(self, epoch, current_iter):
        """Save ``{iter}.state`` for resuming, atomically and in plain Python numbers.

        Args:
            epoch (int): Current epoch.
            current_iter (int): Current iteration (-1: nothing is saved, as in BasicSR).
        """
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], **self._exact_resume_entries()}
        path = osp.join(self.opt['path']['training_states'], f'{current_iter}.state')
        self._save(to_python_numbers(state), path, 'training state')

    # ------------------------------------------------------------- inference
    def _eval_net(self):
        return self.get_bare_model(self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g)

    def _val_amp(self):
        return parse_amp((self.opt.get('val') or {}).get('amp'), 'val:amp')

    def test(self):
        """Run the bare (EMA if any) network on the fed batch; honours ``val: self_ensemble, tile, tile_pad, amp``."""
        net = self._eval_net()
        was_training = net.training
        net.eval()
        out_size = self._out_size()
        self._check_input(net, out_size)

        val_opt = self.opt.get('val') or {}
        tile, tiling = val_opt.get('tile'), None
        if tile:
            if not contract(net).tiles:
                raise ValueError(f'val:tile: {type(net).__name__} cannot tile (NODE-SR archs can)')
            pad = val_opt.get('tile_pad')  # None: the network's receptive radius (exact tiling)
            tiling = net.tiling_for(int(tile), None if pad is None else int(pad))

        def forward(x, size):
            return run_network(net, x, self.scale, out_size=size, amp=self._val_amp(), tiling=tiling)

        try:
            with torch.no_grad():
                if val_opt.get('self_ensemble'):
                    self.output = self_ensemble(forward, self.lq, out_size)
                else:
                    self.output = forward(self.lq, out_size)
        finally:
            if was_training:
                net.train()

    # ------------------------------------------------------------ validation
    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self._validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self._validation(dataloader, current_iter, tb_logger, save_img)

    def _rank_loader(self, dataloader):
        rank, world_size = get_dist_info()
        if world_size == 1:
            return dataloader
        subset = Subset(dataloader.dataset, range(rank, len(dataloader.dataset), world_size))
        return DataLoader(subset, batch_size=dataloader.batch_size or 1, shuffle=False, num_workers=0)

    def _validation(self, dataloader, current_iter, tb_logger, save_img):
        val_opt = self.opt['val']
        dataset_name = dataloader.dataset.opt['name']
        metric_opts = val_opt.get('metrics') or {}
        rank, _ = get_dist_info()
        net = self._eval_net()
        records = []
        loader = self._rank_loader(dataloader)
        self.set_scale = dataloader.dataset.opt.get('scale')
        pbar = tqdm(total=len(loader), unit='image') if val_opt.get('pbar') and rank == 0 else None
        try:
            for idx, val_data in enumerate(loader):
                self.feed_data(val_data)
                self.test()
                scales = torch.as_tensor(self.scale, dtype=torch.float64).flatten().tolist()
                for b in range(self.output.shape[0]):
                    name = osp.splitext(osp.basename(val_data['lq_path'][b]))[0]
                    s = scales[b] if len(scales) > 1 else scales[0]
                    rec = {'image': name, 'scale': s, 'metrics': {}}
                    if hasattr(self, 'gt') and metric_opts:
                        rec['metrics'] = image_metrics(self.output[b], self.gt[b], s, self.grey[b], metric_opts)
                    records.append(rec)
                    if save_img:
                        _write_png(self._image_path(dataset_name, name, current_iter), self.output[b])
                if idx == 0 and rank == 0:
                    self._warn_fixed_scale(net, dataset_name, scales)
                    self._log_trajectory(net, dataset_name, current_iter, tb_logger)
                del self.lq, self.output
                if hasattr(self, 'gt'):
                    del self.gt
                if pbar is not None:
                    pbar.update(1)
                    pbar.set_description(f'Test {name}')
        finally:
            self.set_scale = None
            if pbar is not None:
                pbar.close()
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()

        records = gather_records(records)
        if metric_opts and records and any(r['metrics'] for r in records):
            self._initialize_best_metric_results(dataset_name)
            self.metric_results = {
                m: sum(r['metrics'][m] for r in records) / len(records) for m in metric_opts
            }
            for metric, value in self.metric_results.items():
                self._update_best_metric_result(dataset_name, metric, value, current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        if not self.opt['is_train'] and rank == 0:
            self._add_summary(dataset_name, records)

    def _warn_fixed_scale(self, net, dataset_name, scales):
        """Say so when a fixed-scale network (an x2 EDSR) is validated at another scale: its output is resized."""
        factor = fixed_scale(net, channels=self.lq.shape[1])
        other = sorted({s for s in scales if factor is not None and abs(s - factor) > EPS})
        if other:
            get_root_logger().warning(f'{dataset_name}: {fixed_scale_message(type(net).__name__, factor, other)}')

    def _image_path(self, dataset_name, img_name, current_iter):
        folder = osp.join(self.opt['path']['visualization'], dataset_name)
        if self.opt['is_train']:
            return osp.join(folder, f'{img_name}_{current_iter}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(folder, f'{img_name}_{suffix}.png')

    def _log_trajectory(self, net, dataset_name, current_iter, tb_logger):
        traj = self.opt['val'].get('trajectory', True)
        s = float(torch.as_tensor(self.scale, dtype=torch.float64).flatten()[0])
        if not traj or s <= 1 or not contract(net).is_ode:
            return
        traj = traj if isinstance(traj, dict) else {}
        out_size = self._out_size()
        x = self.lq[:1]
        if tuple(x.shape[-2:]) != out_size:
            x = enlarge_to(x, s, out_size)
        x = center_crop(x, traj.get('max_size', 192))
        was_training = net.training
        net.eval()
        with torch.no_grad():
            states = trajectory_states(net, x, s, num=traj.get('num', 5))
        if was_training:
            net.train()
        strip = trajectory_strip(states)
        tag = f'trajectory/{dataset_name}'
        if tb_logger is not None:
            tb_logger.add_image(tag, strip, current_iter if isinstance(current_iter, int) else 0, dataformats='HWC')
        path = osp.join(self.opt['path']['visualization'], 'trajectory', f'{dataset_name}_{current_iter}.png')
        _write_png(path, strip)
        get_root_logger().info(f'Trajectory of {dataset_name} at t = {[round(t, 3) for t, _ in states]}: {path}')

    def _add_summary(self, dataset_name, records):
        metric_names = sorted({m for r in records for m in r['metrics']})
        scales = sorted({r['scale'] for r in records})
        self.summary[dataset_name] = {
            'scale': scales[0] if len(scales) == 1 else scales,
            'num_images': len(records),
            'metrics': {m: sum(r['metrics'][m] for r in records) / len(records) for m in metric_names},
            'images': {r['image']: r['metrics'] for r in records},
        }
        write_summary(self.opt['path']['results_root'], self.summary)
        get_root_logger().info(f"Metrics summary: {osp.join(self.opt['path']['results_root'], 'metrics.json')}")
