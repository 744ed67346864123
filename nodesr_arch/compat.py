"""Compatibility fixes for BasicSR 1.4.2 on today's torch, torchvision, numpy and Python.

Every fix BasicSR needs lives here, names the upstream issue it works around, and is applied by
:func:`apply` when ``nodesr_arch`` is imported. The import-time fixes (1, 2) run before BasicSR is
imported; the others patch BasicSR functions in place, so BasicSR's own trainer picks them up.

1. torchvision >= 0.17 removed ``torchvision.transforms.functional_tensor``, which
   ``basicsr/data/degradations.py`` imports (XPixelGroup/BasicSR#533, #650).
2. Python >= 3.12 has no ``distutils``; ``basicsr/archs/arch_util.py`` imports it. setuptools (a runtime
   dependency of this package) ships a ``distutils`` shim that we activate (BasicSR#656).
3. ``basicsr.train.load_resume_state`` maps the state to ``torch.cuda.current_device()`` (fails on CPU),
   looks for ``--auto_resume`` states in ``experiments/`` relative to the working directory instead of
   the run's root, and when it finds nothing ``make_exp_dirs`` archives the real experiment (BasicSR#538).
4. ``--launcher pytorch``/``slurm`` without CUDA divides by ``torch.cuda.device_count()`` and
   ``model_to_device`` passes CUDA ``device_ids`` to DDP; ``torch.distributed.launch`` passes
   ``--local-rank`` where BasicSR parses ``--local_rank`` (BasicSR#626).
5. ``SRModel.test`` runs the DDP wrapper on rank 0 only, which can hang on buffer broadcasts; validation
   must run the bare network (BasicSR#477).
6. torch >= 2.6 ``torch.load`` is weights-only: numpy scalars in a saved training state do not load
   (BasicSR#650 family). Training states are saved as plain Python numbers. Checkpoints and states are
   also written atomically (temporary file, then rename) so a kill never leaves a truncated file.
7. ``parse_options`` expands ``~`` in ``dataroot_gt`` with ``os.path.expanduser``, which fails on a list
   of roots; the agreed dataset interface allows one.
"""
import importlib
import os
import sys
import tempfile

_APPLIED = set()
_ORIGINALS = {}


def _patch(owner, name, new):
    """Set ``owner.name = new``, remembering BasicSR's original for :func:`original`."""
    _ORIGINALS.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, new)


def original(owner, name):
    """BasicSR's own ``owner.name`` from before :func:`apply` patched it (tests run the broken path).

    Args:
        owner (module | type): E.g. ``basicsr.train`` or ``SRModel``.
        name (str): Attribute name.
    """
    return _ORIGINALS.get((owner, name), getattr(owner, name))


def fix_functional_tensor():
    """Fix 1: alias ``torchvision.transforms.functional_tensor`` (BasicSR#533, #650)."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = importlib.import_module('torchvision.transforms._functional_tensor')


def fix_distutils():
    """Fix 2: make ``import distutils`` work on Python >= 3.12 via setuptools' shim (BasicSR#656)."""
    try:
        importlib.import_module('distutils.version')
    except ImportError:
        import setuptools  # noqa: F401  (installs the distutils shim as a side effect)
        importlib.import_module('distutils.version')


def _map_location(opt):
    import torch
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        device_id = torch.cuda.current_device()
        return lambda storage, loc: storage.cuda(device_id)
    return 'cpu'


def find_resume_state(opt):
    """Path of the latest ``*.state`` in this run's ``training_states`` (root-anchored), or None."""
    state_dir = opt['path'].get('training_states') or os.path.join(
        opt.get('root_path', os.getcwd()), 'experiments', opt['name'], 'training_states')
    if not os.path.isdir(state_dir):
        return None
    iters = []
    for name in os.listdir(state_dir):
        stem = name[:-len('.state')] if name.endswith('.state') else None
        if stem is not None and stem.isdigit():
            iters.append(int(stem))
    return os.path.join(state_dir, f'{max(iters)}.state') if iters else None


def load_resume_state(opt):
    """Fix 3: CPU-safe, root-anchored replacement for ``basicsr.train.load_resume_state`` (BasicSR#538)."""
    import torch
    from basicsr.utils.misc import check_resume
    if opt['auto_resume']:
        path = find_resume_state(opt)
        if path is not None:
            opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
    if not path:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path:resume_state: training state '{path}' does not exist")
    state = torch.load(path, map_location=_map_location(opt), weights_only=True)
    check_resume(opt, state['iter'])
    return state


def _keep_existing_on_auto_resume(func):
    """Fix 3: with ``--auto_resume`` an existing folder is continued in place, never archived."""

    def wrapper(opt_or_path, *args, **kwargs):
        if _AUTO_RESUME[0]:
            if isinstance(opt_or_path, dict):
                for key, path in opt_or_path['path'].items():
                    if key in ('experiments_root', 'models', 'training_states', 'log', 'visualization',
                               'results_root'):
                        os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(opt_or_path, exist_ok=True)
            return None
        return func(opt_or_path, *args, **kwargs)

    wrapper.__wrapped__ = func
    return wrapper


_AUTO_RESUME = [False]


def fix_resume():
    """Fix 3 (BasicSR#538): patch ``basicsr.train`` resume and experiment-folder handling."""
    import basicsr.train as bt
    from basicsr.utils.dist_util import master_only


    def patched_load(opt):
        _AUTO_RESUME[0] = bool(opt.get('auto_resume'))
        return load_resume_state(opt)

    _patch(bt, 'load_resume_state', patched_load)
    _patch(bt, 'make_exp_dirs', master_only(_keep_existing_on_auto_resume(bt.make_exp_dirs)))
    _patch(bt, 'mkdir_and_rename', _keep_existing_on_auto_resume(bt.mkdir_and_rename))


def _init_dist_pytorch(backend='nccl', **kwargs):
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend, **kwargs)


def _init_dist_slurm(backend='nccl', port=None):
    import subprocess

    import torch
    import torch.distributed as dist
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['RANK'] = str(proc_id)
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        num_gpus = torch.cuda.device_count()
        os.environ['LOCAL_RANK'] = str(proc_id % num_gpus)
        torch.cuda.set_device(proc_id % num_gpus)
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend)


def _model_to_device(self, net):
    import torch
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        find_unused = self.opt.get('find_unused_parameters', False)
        if self.device.type == 'cuda':
            net = DistributedDataParallel(
                net, device_ids=[torch.cuda.current_device()], find_unused_parameters=find_unused)
        else:
            net = DistributedDataParallel(net, find_unused_parameters=find_unused)
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def normalize_argv(argv):
    """Fix 4: rewrite ``--local-rank`` (torch.distributed.launch) to BasicSR's ``--local_rank``."""
    out = []
    for arg in argv:
        if arg == '--local-rank':
            arg = '--local_rank'
        elif arg.startswith('--local-rank='):
            arg = '--local_rank=' + arg.split('=', 1)[1]
        out.append(arg)
    return out


def fix_distributed():
    """Fix 4 (BasicSR#626): CPU/gloo distributed init, DDP without CUDA device ids, ``--local-rank``."""
    import basicsr.utils.dist_util as du
    from basicsr.models.base_model import BaseModel
    _patch(du, '_init_dist_pytorch', _init_dist_pytorch)
    _patch(du, '_init_dist_slurm', _init_dist_slurm)
    _patch(BaseModel, 'model_to_device', _model_to_device)
    import basicsr.utils.options as bo
    parse = bo.parse_options

    def parse_options(root_path, is_train=True):
        sys.argv = normalize_argv(sys.argv)
        return parse(root_path, is_train)

    for module_name in ('basicsr.utils.options', 'basicsr.train', 'basicsr.test'):
        _patch(importlib.import_module(module_name), 'parse_options', parse_options)


class _ListAwarePath:
    """``os.path`` whose ``expanduser`` also maps lists, for ``dataroot_gt: [folder1, folder2]``."""

    def __getattr__(self, name):
        return getattr(os.path, name)

    @staticmethod
    def expanduser(path):
        if isinstance(path, (list, tuple)):
            return [os.path.expanduser(p) for p in path]
        return os.path.expanduser(path)


def fix_list_dataroots():
    """Fix 7: ``parse_options`` calls ``osp.expanduser(dataroot_gt)``, which fails on a list of roots
    (several GT folders or LMDBs in one dataset, e.g. BSD200 + T91)."""
    import basicsr.utils.options as bo
    _patch(bo, 'osp', _ListAwarePath())


def _sr_test_bare(self):
    import torch
    if hasattr(self, 'net_g_ema'):
        net = self.get_bare_model(self.net_g_ema)
        net.eval()
        with torch.no_grad():
            self.output = net(self.lq)
    else:
        net = self.get_bare_model(self.net_g)
        net.eval()
        with torch.no_grad():
            self.output = net(self.lq)
        net.train()


def fix_validation_bare_network():
    """Fix 5 (BasicSR#477): ``SRModel.test`` runs the bare network, never the DDP wrapper."""
    from basicsr.models.sr_model import SRModel
    _patch(SRModel, 'test', _sr_test_bare)


def to_python_numbers(obj):
    """Fix 6: replace numpy scalars and arrays (recursively) by plain Python numbers and lists."""
    from collections import defaultdict

    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):  # keys too: a MultiStepLR's milestones Counter may have numpy keys
        items = {to_python_numbers(k): to_python_numbers(v) for k, v in obj.items()}
        return items if type(obj) in (dict, defaultdict) else type(obj)(items)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_python_numbers(v) for v in obj)
    return obj


def atomic_torch_save(obj, path):
    """Write ``obj`` with ``torch.save`` to a temporary file in the same folder, then rename it.

    A kill at any moment leaves either the previous complete file or the new complete file.

    Args:
        obj: Object to save.
        path (str): Destination path.
    """
    import torch
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the mode a plain open() would
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _save_network(self, net, net_label, current_iter, param_key='params'):
    if current_iter == -1:
        current_iter = 'latest'
    save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError('save_network: the lengths of net and param_key differ')
    save_dict = {}
    for net_, key_ in zip(nets, keys):
        state_dict = self.get_bare_model(net_).state_dict()
        save_dict[key_] = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in state_dict.items()}
    atomic_torch_save(save_dict, save_path)


def _save_training_state(self, epoch, current_iter):
    if current_iter == -1:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [], 'schedulers': []}
    for o in self.optimizers:
        state['optimizers'].append(o.state_dict())
    for s in self.schedulers:
        state['schedulers'].append(s.state_dict())
    state = to_python_numbers(state)
    atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def fix_saving():
    """Fix 6: training states hold plain Python numbers (torch >= 2.6 weights-only load) and all saves
    are atomic."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.dist_util import master_only
    _patch(BaseModel, 'save_network', master_only(_save_network))
    _patch(BaseModel, 'save_training_state', master_only(_save_training_state))


def apply():
    """Apply every fix once. Called by ``import nodesr_arch`` before BasicSR is imported."""
    if 'all' in _APPLIED:
        return
    fix_functional_tensor()
    fix_distutils()
    fix_resume()
    fix_distributed()
    fix_validation_bare_network()
    fix_saving()
    fix_list_dataroots()
    _APPLIED.add('all')
