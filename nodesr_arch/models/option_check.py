"""Start-up checks of a BasicSR option YAML, run before anything is written.

Checked: what NODE-SR adds (its keys, the pairing of model, datasets and network) and what must be refused
before BasicSR makes or archives the experiment folder: an unknown registry type, a network that cannot be
built, missing data, a dataset its constructor refuses (each of this package's datasets is built here, once:
BasicSR takes it, :func:`take_built_dataset`), a key BasicSR reads only after the folder
(:data:`READ_AFTER_FOLDERS`), a value it would fail on there without naming the key. The file itself and the
experiment name are :func:`~nodesr_arch.option_files.read_option_file`'s. Each message names the key
(``datasets:train:dataroot_gt: ...``).
"""
import difflib
import inspect
import numbers
import os

import torch

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
from nodesr_arch.archs.contract import contract
from nodesr_arch.file_io import list_images
from nodesr_arch.option_files import OptionFileError, read_option_file
from nodesr_arch.scales import check_scale


class OptionError(OptionFileError):
    """An option YAML is wrong; the message names the key."""


def read_options(argv, is_train=True):
    """Read ``-opt`` (with ``--force_yml`` and ``--debug`` applied as BasicSR does) and check it.

    Args:
        argv (list[str]): Command-line arguments.
        is_train (bool): Check for training (True) or testing.

    Returns:
        dict: The options.

    Raises:
        OptionError: The file is missing or unreadable, or an option is wrong.
    """
    try:
        opt = read_option_file(argv)
    except OptionFileError as e:
        raise OptionError(str(e)) from None
    if opt is None:
        raise OptionError('-opt: missing (the option YAML)')
    check_options(opt, is_train=is_train)
    return opt


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_scale(key, value):
    if not _is_number(value):
        raise OptionError(f'{key}: the scale must be a finite number >= 1, got {value!r}')
    try:
        check_scale(value, name='the scale')
    except ValueError as e:
        raise OptionError(f'{key}: {e}') from None


def _check_paths(key, value, must_be_dir=True):
    paths = value if isinstance(value, (list, tuple)) else [value]
    for p in paths:
        if not isinstance(p, str):
            raise OptionError(f'{key}: expected a path, got {p!r}')
        p = os.path.expanduser(p)
        ok = os.path.isdir(p) if must_be_dir else os.path.isfile(p)
        if not ok:
            kind = 'folder' if must_be_dir else 'file'
            raise OptionError(f"{key}: {kind} '{p}' does not exist (relative paths start at {os.getcwd()})")


def _check_network(key, net_opt):
    """Check that BasicSR can build ``net_opt``; returns the architecture class.

    The arguments are bound to the constructor's signature first (a clear message for a wrong key), then
    the network is built on the meta device (no weights allocated); an architecture whose constructor
    cannot run there (SwinIR, ECBSR) is built for real on the CPU instead, so the check only rejects what
    BasicSR's ``build_network`` cannot build either.
    """
    if not isinstance(net_opt, dict) or 'type' not in net_opt:
        raise OptionError(f'{key}: must be a mapping with a "type"')
    if net_opt['type'] not in ARCH_REGISTRY:
        raise OptionError(f"{key}:type: unknown architecture '{net_opt['type']}' (not in BasicSR's ARCH_REGISTRY)")
    cls = ARCH_REGISTRY.get(net_opt['type'])
    kwargs = {k: v for k, v in net_opt.items() if k != 'type'}
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as e:
        raise OptionError(f"{key}: {net_opt['type']}: {e}") from None
    except ValueError:  # no signature to read (a C extension): the builds below tell
        pass
    try:
        with torch.device('meta'):
            cls(**kwargs)
        return cls
    except Exception:  # noqa: BLE001  (the real build below decides)
        pass
    try:
        cls(**kwargs)
    except Exception as e:  # noqa: BLE001  (any failure of BasicSR's own build_network is the message)
        raise OptionError(f"{key}: BasicSR cannot build {net_opt['type']}: {type(e).__name__}: {e}") from None
    return cls


def _is_positive_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _check_frequency(key, value):
    """A frequency in iterations: BasicSR takes ``current_iter % value`` from the first iteration on, after the
    folders, where 0 or a string fails without naming the key; so it must be a number >= 1."""
    if not _is_number(value) or not 1 <= value < float('inf'):
        raise OptionError(f'{key}: must be a number of iterations >= 1, got {value!r}')


def _check_dataset(phase, d, check_paths=True):
    key = f'datasets:{phase}'
    if not isinstance(d, dict):  # what the checks below read
        raise OptionError(f'{key}: must be a mapping')
    if d.get('type') not in DATASET_REGISTRY:
        raise OptionError(f"{key}:type: unknown dataset '{d.get('type')}' (not in BasicSR's DATASET_REGISTRY)")
    if d['type'] in ('ContinuousScalePairedDataset', 'PairedImageDataset') and d.get('dataroot_gt') is None:
        raise OptionError(f"{key}:dataroot_gt: missing (the {d['type']}'s ground-truth folder or LMDB)")
    backend = (d.get('io_backend') or {}).get('type', 'disk')
    for root in ('dataroot_gt', 'dataroot_lq'):
        if d.get(root) is not None and backend != 'memcached' and check_paths:
            _check_paths(f'{key}:{root}', d[root])
    if d.get('meta_info_file') is not None and check_paths:
        _check_paths(f'{key}:meta_info_file', d['meta_info_file'], must_be_dir=False)
    if d.get('scale') is not None:
        _check_scale(f'{key}:scale', d['scale'])
    if d.get('scale_range') is not None:
        rng = d['scale_range']
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise OptionError(f'{key}:scale_range: must be [min, max], got {rng!r}')
        for v in rng:
            _check_scale(f'{key}:scale_range', v)
        if rng[0] > rng[1]:
            raise OptionError(f'{key}:scale_range: min {rng[0]} is above max {rng[1]}')
    step = d.get('scale_step')
    if step is not None and (not _is_number(step) or not 0 <= step < float('inf')):
        raise OptionError(f'{key}:scale_step: must be a number >= 0 (0: continuous scales), got {step!r}')
    # a patch side other than a positive integer: ContinuousScalePairedDataset reads gt_size 0 as whole images,
    # BasicSR's paired_random_crop fails at the first batch, after the folders, without naming the key
    if d.get('gt_size') is not None and not _is_positive_int(d['gt_size']):
        raise OptionError(f"{key}:gt_size: must be a positive integer (the training patch side), got {d['gt_size']!r}")
    if phase == 'train' and 'batch_size_per_gpu' in d and not _is_positive_int(d['batch_size_per_gpu']):
        raise OptionError(f"{key}:batch_size_per_gpu: must be a positive integer, got {d['batch_size_per_gpu']!r}")
    if d['type'] == 'ContinuousScalePairedDataset':
        _check_continuous_keys(key, d, phase)


def _check_continuous_keys(key, d, phase):
    """``ContinuousScalePairedDataset`` sections: every key one it (or BasicSR's loader) reads, so a misspelt
    ``sample_q`` does not silently train another mode; the other rules of its options are its constructor's
    (:func:`_check_dataset_contents` builds it)."""
    from nodesr_arch.data.continuous_scale_dataset import LOADER_KEYS, OPTION_KEYS
    known = OPTION_KEYS | LOADER_KEYS
    for k in d:
        if k not in known:
            near = difflib.get_close_matches(str(k), sorted(known), n=1)
            hint = f' (did you mean {near[0]}?)' if near else ''
            raise OptionError(f'{key}:{k}: not an option of ContinuousScalePairedDataset{hint}')
    if phase.split('_')[0] != 'train' and d.get('sample_q') is not None:  # the constructor ignores it there
        raise OptionError(f'{key}:sample_q: a training option (LIIF samples GT pixels in training only)')


def _count_images(d):
    """Number of images a dataset's ``dataroot_gt`` (disk, or its meta-info file) holds; None if unknown."""
    if (d.get('io_backend') or {}).get('type', 'disk') != 'disk' or d.get('dataroot_gt') is None:
        return None
    if d.get('meta_info_file') is not None:
        files = d['meta_info_file'] if isinstance(d['meta_info_file'], (list, tuple)) else [d['meta_info_file']]
        count = 0
        for meta in files:
            with open(meta) as f:
                count += sum(1 for line in f if line.strip())
        return count
    roots = d['dataroot_gt'] if isinstance(d['dataroot_gt'], (list, tuple)) else [d['dataroot_gt']]
    return sum(len(list_images(root)) for root in roots)  # roots ~-expanded by the caller, as BasicSR does


_BUILT = []  # (dataset options, dataset) the last check_options built, for BasicSR's build_dataset


def take_built_dataset(dataset_opt):
    """The dataset the last :func:`check_options` built from options equal to ``dataset_opt`` (once), so BasicSR's
    pipeline builds it no second time (compatibility fix 6 rebinds its ``build_dataset``).

    Args:
        dataset_opt (dict): A dataset's options as BasicSR's ``parse_options`` made them.

    Returns:
        torch.utils.data.Dataset | None: The dataset, or None if the check built none from these options.
    """
    for i, (built_opt, dataset) in enumerate(_BUILT):
        if built_opt == dataset_opt:
            del _BUILT[i]
            return dataset
    return None


def _check_dataset_contents(opt, phase, d):
    """Build this package's datasets (their constructors check folders, protocol, patch sizes and LR-patch mode;
    BasicSR then takes the built one, :func:`take_built_dataset`) and count BasicSR's datasets' images, so a
    refused dataset, an empty folder or a batch larger than the data stops here, before BasicSR makes or
    archives the experiment folder: it builds its datasets only after that."""
    key = f'datasets:{phase}'
    d = dict(d, phase=phase.split('_')[0])
    if opt.get('scale') is not None:  # what BasicSR's parse_options does: the top-level scale, ~ expanded
        d['scale'] = opt['scale']
    for root in ('dataroot_gt', 'dataroot_lq'):
        if isinstance(d.get(root), str):
            d[root] = os.path.expanduser(d[root])
        elif isinstance(d.get(root), (list, tuple)):
            d[root] = [os.path.expanduser(p) for p in d[root]]
    if d['type'] == 'ContinuousScalePairedDataset':
        try:
            dataset = DATASET_REGISTRY.get(d['type'])(d)
        except (ValueError, OSError, KeyError) as e:
            raise OptionError(f'{key}: {e}') from None
        _BUILT.append((d, dataset))
        count = len(dataset)
    else:
        try:
            count = _count_images(d)
        except OSError as e:
            raise OptionError(f'{key}: {e}') from None
    if count == 0:
        raise OptionError(f"{key}:dataroot_gt: no images in {d['dataroot_gt']}")
    batch = d.get('batch_size_per_gpu')
    if phase == 'train' and count is not None and _is_positive_int(batch):
        # BasicSR's loader drops the last partial batch: its epochs would be empty and the run loop forever
        world = int(os.environ.get('WORLD_SIZE', '1'))
        samples = count * d.get('dataset_enlarge_ratio', 1)
        if batch * world > samples:
            per = f' x {world} processes' if world > 1 else ''
            raise OptionError(f'{key}:batch_size_per_gpu: {batch}{per} is more than the '
                              f'{samples} samples an epoch holds ({count} images x dataset_enlarge_ratio '
                              f"{d.get('dataset_enlarge_ratio', 1)}): no full batch, nothing would be trained")


#: The keys BasicSR 1.4.2's train_pipeline (True) and test_pipeline (False) read only after making or archiving
#: the experiment folder, where their KeyError would come. A training ``val`` section also needs ``val_freq`` and
#: ``save_img``.
READ_AFTER_FOLDERS = {
    True: ('datasets:train:batch_size_per_gpu', 'datasets:train:num_worker_per_gpu', 'train:total_iter',
           'train:optim_g', 'train:scheduler', 'logger:print_freq', 'logger:save_checkpoint_freq',
           'logger:use_tb_logger'),
    False: ('val:save_img',),
}


def _check_present(opt, keys):
    for key in keys:
        node, parts = opt, key.split(':')
        for i, k in enumerate(parts):
            if not isinstance(node, dict) or k not in node:
                raise OptionError(f"{':'.join(parts[:i + 1])}: missing")
            node = node[k]


def _check_train(opt):
    """NODE-SR's training keys, and the values of BasicSR's that fail only after the folders, naming no key."""
    train = opt['train']
    if not _is_number(train['total_iter']) or train['total_iter'] < 1:  # BasicSR's int(total_iter) fails unnamed
        raise OptionError(f"train:total_iter: must be a positive number, got {train['total_iter']!r}")
    clip = train.get('grad_clip')
    max_norm = clip.get('max_norm') if isinstance(clip, dict) else clip
    if clip is not None and (not _is_number(max_norm) or max_norm < 0):
        raise OptionError(f'train:grad_clip: must be a max norm > 0 (or {{max_norm, norm_type}}), got {clip!r}')
    lr = train['optim_g'].get('lr') if isinstance(train['optim_g'], dict) else None
    if not _is_number(lr) or not 0 < lr < float('inf'):  # YAML reads 1e-4 as a string; torch's error names no key
        raise OptionError(f'train:optim_g:lr: must be a positive number, got {lr!r}')
    nf = train.get('max_nonfinite', 10)
    if not _is_positive_int(nf):
        raise OptionError(f'train:max_nonfinite: must be an integer >= 1, got {nf!r}')
    if not isinstance(train.get('exact_resume', True), bool):
        raise OptionError(f"train:exact_resume: must be true or false, got {train['exact_resume']!r}")
    for k in ('print_freq', 'save_checkpoint_freq'):
        _check_frequency(f'logger:{k}', opt['logger'][k])


def _check_val(opt, is_train):
    val = opt.get('val')
    if val is None:
        return
    if not isinstance(val, dict):  # what the checks below read
        raise OptionError('val: must be a mapping')
    if is_train:
        _check_present(opt, ('val:val_freq', 'val:save_img'))
        _check_frequency('val:val_freq', val['val_freq'])
    tile = val.get('tile')
    if tile is not None and not _is_positive_int(tile):
        raise OptionError(f'val:tile: must be a positive integer (or ~ for no tiling), got {tile!r}')
    pad = val.get('tile_pad')
    if pad is not None and (not isinstance(pad, int) or isinstance(pad, bool) or pad < 0):
        raise OptionError(f'val:tile_pad: must be an integer >= 0, got {pad!r}')
    for name, m in (val.get('metrics') or {}).items():
        if not isinstance(m, dict) or 'type' not in m:  # BasicSR's KeyError 'type' comes at the first validation
            raise OptionError(f'val:metrics:{name}: must be a mapping with a "type"')
        cb = m.get('crop_border', 0)
        if cb != 'scale' and (not isinstance(cb, int) or isinstance(cb, bool) or cb < 0):
            raise OptionError(f"val:metrics:{name}:crop_border: must be an integer >= 0 or 'scale', got {cb!r}")


def _check_scale_feeding(opt, model_cls, arch_cls):
    """NODE-SR's scale-aware parts need a model that feeds the scale: :class:`NODESRModel` (or a subclass)."""
    from nodesr_arch.models.nodesr_model import NODESRModel
    if issubclass(model_cls, NODESRModel):
        return
    model_type = opt.get('model_type', 'SRModel')
    hint = 'use model_type: NODESRModel'
    if contract(arch_cls).takes_scale:
        raise OptionError(f"network_g:type: {opt['network_g']['type']} takes the scale (forward(x, scale)), which "
                          f'{model_type} does not feed; {hint}')
    for phase, d in opt['datasets'].items():
        if d.get('type') == 'ContinuousScalePairedDataset':
            raise OptionError(f'datasets:{phase}:type: ContinuousScalePairedDataset gives lq at output size with a '
                              f'per-sample scale, which {model_type} ignores; {hint}')
    for name, m in ((opt.get('val') or {}).get('metrics') or {}).items():
        if isinstance(m, dict) and m.get('crop_border') == 'scale':
            raise OptionError(f"val:metrics:{name}:crop_border: 'scale' (ceil of each image's scale) is a "
                              f'NODESRModel option, {model_type} would pass it to the metric as is; {hint} or give '
                              'an integer')


def _check_top_level_scale(opt, model_cls):
    """BasicSR copies a top-level ``scale`` into every dataset: refuse it where it would change a set's scale."""
    from nodesr_arch.models.nodesr_model import NODESRModel
    if 'scale' not in opt or not issubclass(model_cls, NODESRModel):
        return
    changed = []
    for phase, d in opt['datasets'].items():
        if d.get('scale_range') is not None:
            changed.append(f"datasets:{phase} (scale_range {list(d['scale_range'])})")
        elif d.get('scale') is not None and d['scale'] != opt['scale']:
            changed.append(f"datasets:{phase} (scale {d['scale']})")
    if changed:
        raise OptionError(f"scale: {opt['scale']} at the top level: BasicSR copies it into every dataset, so it "
                          f"would override {', '.join(changed)}; remove it (NODESRModel takes each set's own "
                          'scale)')


def _check_batch_scales(opt, arch_cls, is_train):
    """A network that takes one scale per batch (``mixed_scales = False``: Meta-SR) trained on scales drawn
    per sample stops here, not at its first step."""
    d = (opt.get('datasets') or {}).get('train')
    if not is_train or getattr(arch_cls, 'mixed_scales', True) or not isinstance(d, dict):
        return
    if d.get('type') != 'ContinuousScalePairedDataset' or d.get('scale_per_batch'):
        return
    from nodesr_arch.data.continuous_scale_dataset import train_scale_range
    lo, hi = train_scale_range(d)
    if lo != hi:
        raise OptionError(f"datasets:train:scale_per_batch: {opt['network_g']['type']} takes one scale per batch "
                          f'(it predicts one set of upsampling weights per scale), but scales {lo}-{hi} are drawn '
                          'per sample: set scale_per_batch: true')


def _check_val_tiling(opt, arch_cls):
    """``val: tile`` for a network that cannot be tiled stops here, not at the first validation: Meta-SR and
    LIIF (``can_tile = False``) bound their memory with chunks of output pixels instead; BasicSR's networks
    have no ``set_tiling``."""
    tile = opt['val'].get('tile') if isinstance(opt.get('val'), dict) else None
    if tile is None or contract(arch_cls).tiles:
        return
    name = opt['network_g']['type']
    if hasattr(arch_cls, 'set_tiling'):
        raise OptionError(f'val:tile: {name} does not tile: it evaluates its output in chunks of eval_chunk pixels, '
                          'so its memory is bounded already; remove val:tile (network_g:eval_chunk sets the chunk)')
    raise OptionError(f'val:tile: {name} has no set_tiling (NODE-SR archs have it); remove val:tile')


def _check_amp(opt, is_train):
    """``train: amp`` and ``val: amp``: a known precision that autocast really runs on the device used."""
    from nodesr_arch.amp import check_amp_device, parse_amp
    use_gpu = opt.get('num_gpu') != 0 and torch.cuda.is_available()
    for section in (('train', 'val') if is_train else ('val',)):
        if not isinstance(opt.get(section), dict):
            continue
        key = f'{section}:amp'
        try:
            dtype = parse_amp(opt[section].get('amp'), key, training=section == 'train')
            check_amp_device(dtype, 'cuda' if use_gpu else 'cpu', key)
        except ValueError as e:
            raise OptionError(str(e)) from None


def check_options(opt, is_train=True, check_paths=True):
    """Check what NODE-SR adds to an option file, and what BasicSR would trip over after making the experiment
    folders. The experiment name is :func:`~nodesr_arch.option_files.read_option_file`'s to check.

    Args:
        opt (dict): Options as read from the YAML.
        is_train (bool): Training (True) or testing options.
        check_paths (bool): Also check that data folders, files and weights exist, and build this package's
            datasets. Default: True.

    Raises:
        OptionError: With the offending key, e.g. ``datasets:val_1:scale: the scale must be >= 1, got 0.5``.
    """
    model_type = opt.get('model_type', 'SRModel')
    if model_type not in MODEL_REGISTRY:
        raise OptionError(f"model_type: unknown model '{model_type}' (not in BasicSR's MODEL_REGISTRY; a model of "
                          "another package, e.g. Real-ESRGAN's, registers when that package is imported)")
    # num_gpu and path: BasicSR's parse_options fails on them after nodesr train took its lock in experiments/,
    # and a wrong num_gpu only where the model or loader use it, with torch's error naming no key
    num_gpu = opt.get('num_gpu')
    if num_gpu != 'auto' and (not isinstance(num_gpu, int) or isinstance(num_gpu, bool) or num_gpu < 0):
        raise OptionError(f"num_gpu: must be an integer >= 0 or 'auto', got {num_gpu!r}")
    if _is_positive_int(num_gpu) and not torch.cuda.is_available():
        raise OptionError(f'num_gpu: {num_gpu} but no CUDA GPU is available; use num_gpu: 0 to run on the CPU')
    if not isinstance(opt.get('path'), dict):
        raise OptionError('path: missing (a mapping, e.g. {pretrain_network_g: ~, resume_state: ~})')
    if 'scale' in opt:
        _check_scale('scale', opt['scale'])
    arch_cls = _check_network('network_g', opt.get('network_g'))
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict) or not datasets:  # what the checks below read
        raise OptionError('datasets: missing')
    _BUILT.clear()
    for phase, d in datasets.items():
        if is_train and phase != 'train' and phase.split('_')[0] != 'val':  # BasicSR refuses it after the folders
            raise OptionError(f"datasets:{phase}: phase '{phase}' must be train or val* in a training")
        _check_dataset(phase, d, check_paths)
        if check_paths and (is_train or phase != 'train'):
            _check_dataset_contents(opt, phase, d)
    model_cls = MODEL_REGISTRY.get(model_type)
    _check_scale_feeding(opt, model_cls, arch_cls)
    _check_top_level_scale(opt, model_cls)
    for k, v in opt['path'].items():
        if v is not None and check_paths and ('pretrain_network' in k or k == 'resume_state'):
            _check_paths(f'path:{k}', v, must_be_dir=False)
    _check_present(opt, READ_AFTER_FOLDERS[is_train])
    if is_train:
        _check_train(opt)
    _check_val(opt, is_train)
    _check_val_tiling(opt, arch_cls)
    _check_batch_scales(opt, arch_cls, is_train)
    _check_amp(opt, is_train)
