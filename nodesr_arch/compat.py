"""BasicSR 1.4.2 on today's torch, torchvision and Python: the global fixes it cannot run without, and NODE-SR's
registration in BasicSR's registries (:func:`register`, on demand).

:mod:`nodesr_arch.hook` (run by ``nodesr_arch_hook.pth`` at interpreter start-up) calls :func:`before_import`
and :func:`after_import` when BasicSR's modules are first imported, whoever imports them (``python -m
basicsr.train``, BasicSR's ``train.py``, a project ``train.py`` that imports ``basicsr`` first, or ``import
nodesr_arch``); NODE-SR's archs, datasets and models are imported only when an option file or a registry
lookup names one of its types, or when ``nodesr_arch`` was imported before ``basicsr``. Without the hook
(``NODESR_ARCH_HOOK=0``), ``import nodesr_arch`` before ``basicsr`` applies the same fixes (:func:`apply`).

The fixes apply only to the BasicSR they were written for: version 1.4.2 (PyPI's, BasicSR's master and
``basicsr-fixed``) with the functions they replace where they expect them (:func:`basicsr_fit`, read from its
files); the import shims only where its code needs them (master and basicsr-fixed need no fix 1). Another
BasicSR gets none, and one line on stderr says so.

The fixes are global because BasicSR 1.4.2 cannot run on today's stack without them; everything NODE-SR
alone needs lives in ``NODESRModel`` and changes no other model:

1. ``torchvision.transforms.functional_tensor`` is gone (torchvision >= 0.17); ``basicsr.data.degradations``
   imports it (XPixelGroup/BasicSR#533, #650). Aliased to ``torchvision.transforms._functional_tensor`` when
   it is imported (a finder last on ``sys.meta_path``: nothing of torch is imported before BasicSR).
2. Python >= 3.12 has no ``distutils``; ``basicsr.archs.arch_util`` imports it (BasicSR#656). setuptools,
   a runtime dependency of this package, provides the shim.
3. Resume (BasicSR#538): ``train.load_resume_state`` maps the state to ``torch.cuda.current_device()``
   (fails without CUDA) and looks for ``--auto_resume`` states relative to the working directory instead
   of the run's root; when it finds none, ``make_exp_dirs`` archives the real experiment. Replaced in the
   namespace of BasicSR's ``train_pipeline`` (the ``basicsr.train`` module, or ``__main__`` when BasicSR's
   ``train.py`` runs as a script) when it calls ``parse_options``.
4. Distributed without CUDA (BasicSR#626): ``dist_util._init_dist_pytorch``/``_init_dist_slurm`` divide
   by ``torch.cuda.device_count()`` (gloo is used instead when there is no GPU), ``BaseModel.model_to_device``
   passes CUDA ``device_ids`` to DDP (omitted on CPU), and ``torch.distributed.launch`` passes
   ``--local-rank`` where ``parse_options`` expects ``--local_rank``. With CUDA, BasicSR's own code runs.
5. ``parse_options`` expands ``~`` in ``dataroot_gt`` with ``os.path.expanduser``, which raises on a list of
   roots (several GT folders or LMDBs in one dataset); lists are expanded item by item. Nothing changes for
   option files BasicSR accepts today.
6. Registration on demand: ``ARCH_REGISTRY``, ``DATASET_REGISTRY`` and ``MODEL_REGISTRY`` import
   ``nodesr_arch`` when asked for one of its names (:data:`PLUGIN_TYPES`) that is not registered yet, and
   ``parse_options`` checks an option file that names one (``nodesr_arch.models.option_check``) before
   BasicSR makes any folder. Lookups of every other name are unchanged. The check builds NODE-SR's datasets
   (their constructors refuse wrong options before the folders exist; BasicSR builds datasets only after
   ``make_exp_dirs``); ``build_dataset`` is rebound in the namespace of BasicSR's ``train.py`` and ``test.py``
   (as fix 3 rebinds names) to take the dataset the check built from equal options, so none is built twice.
7. Option files are parsed with a safe YAML loader that keeps key order (``options.ordered_yaml``):
   BasicSR's full loader builds Python objects from ``!!python/...`` tags, so opening a shared option
   file could run code. Files without such tags load exactly as before; a file with one is refused.
8. Option files and ``--force_yml`` that could destroy or run something are refused, with one line and exit
   status 2, before BasicSR makes any folder (:mod:`nodesr_arch.option_files`): an experiment name that is not one
   folder name (``../../victim`` made ``mkdir_and_rename`` archive a folder outside ``experiments/``), a file
   that is not a regular file or is over ``MAX_OPTION_FILE_BYTES``, YAML whose aliases expand beyond
   ``MAX_YAML_NODES`` nodes, a key given twice in one mapping, and a ``--force_yml`` entry whose value is
   not YAML or whose key is not a plain name (BasicSR passes values starting with ``[`` to ``eval`` and
   the key to ``exec``). Values are read as YAML; ``--force_yml manual_seed=N`` takes effect (BasicSR seeds before it
   applies the entries, so the run is seeded again).
9. Exact resume (reported as xinntao/Real-ESRGAN#799, which trains with BasicSR's pipeline): ``train_pipeline``
   restarts the current epoch on resume, ``EnlargedSampler`` seeds its shuffle with the epoch alone
   (``manual_seed`` does not change the data order) and ``worker_init_fn`` seeds each worker alike at every
   epoch, so a resumed run replays batches and every epoch repeats the last one's crops. The sampler is
   made inside ``train_pipeline`` and never reaches the model, so ``EnlargedSampler`` and
   ``build_dataloader`` are rebound in the namespace of BasicSR's ``train.py`` (with fix 3): for runs of a
   model class with ``supports_exact_resume`` (``NODESRModel``) whose ``train: exact_resume`` is not false,
   the training loader uses :mod:`nodesr_arch.data.exact_resume`; for every other run the rebound names
   call BasicSR's own with the same arguments.
"""
import importlib
import os
import sys
import types

from nodesr_arch.basicsr_source import basicsr_fit
from nodesr_arch.option_files import (OptionFileError, force_yml_keys, force_yml_value, read_option_file,
                                      safe_yaml_loader)
from nodesr_arch.registry import PLUGIN_TYPES

_PLUGIN_NAMES = frozenset(n for names in PLUGIN_TYPES.values() for n in names)

_APPLIED = set()
_ORIGINALS = {}


def _key(owner, name):
    return (owner.__name__ if isinstance(owner, types.ModuleType) else owner, name)


def _patch(owner, name, make):
    """Replace ``owner.name`` by ``make(original)`` once, remembering BasicSR's original for :func:`original`."""
    key = _key(owner, name)
    if key in _ORIGINALS:
        return
    _ORIGINALS[key] = getattr(owner, name)
    setattr(owner, name, make(_ORIGINALS[key]))


def original(owner, name):
    """BasicSR's own ``owner.name`` from before it was patched (tests run the broken path with it).

    Args:
        owner (module | type): E.g. ``basicsr.train`` or ``BaseModel``.
        name (str): Attribute name.
    """
    return _ORIGINALS.get(_key(owner, name), getattr(owner, name))


_SAID = []


def fits():
    """True if this BasicSR gets the fixes; otherwise says once, on stderr, that none is applied and why."""
    fit = basicsr_fit()
    if fit.reason is None:
        return True
    if fit.root is not None and not _SAID:
        _SAID.append(fit)
        print(f'nodesr_arch: the BasicSR at {fit.root} is not the one its compatibility fixes were written for '
              f'({fit.reason}); none is applied', file=sys.stderr)
    return False


# ---- 1, 2: import shims ---------------------------------------------------------------------------------------


class _FunctionalTensorAlias:
    """A ``sys.meta_path`` finder, last on the path, for ``torchvision.transforms.functional_tensor``: asked only
    when no other finder has the module (torchvision >= 0.17), it answers with ``_functional_tensor``. Nothing
    is imported before BasicSR asks for it."""

    NAME = 'torchvision.transforms.functional_tensor'

    def find_spec(self, name, path=None, target=None):
        if name != self.NAME:
            return None
        import importlib.util
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return importlib.import_module('torchvision.transforms._functional_tensor')

    def exec_module(self, module):
        pass


def fix_functional_tensor():
    """Fix 1: alias ``torchvision.transforms.functional_tensor`` when it is imported (BasicSR#533, #650)."""
    if not any(isinstance(f, _FunctionalTensorAlias) for f in sys.meta_path):
        sys.meta_path.append(_FunctionalTensorAlias())


def fix_distutils():
    """Fix 2: make ``import distutils`` work on Python >= 3.12 via setuptools' shim (BasicSR#656)."""
    try:
        importlib.import_module('distutils.version')
    except ImportError:
        import setuptools  # noqa: F401  (installs the distutils shim as a side effect)
        importlib.import_module('distutils.version')


def fix_imports():
    """Fixes 1 and 2, needed before ``basicsr`` is imported, where this BasicSR needs them (:func:`basicsr_fit`)."""
    fit = basicsr_fit()
    if 'functional_tensor' in fit.needs:
        fix_functional_tensor()
    if 'distutils' in fit.needs:
        fix_distutils()


# ---- 3: resume --------------------------------------------------------------------------------------------------


def _map_location(opt):
    import torch
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        device_id = torch.cuda.current_device()
        return lambda storage, loc: storage.cuda(device_id)
    return 'cpu'


def resume_states(opt):
    """This run's ``*.state`` files in its ``training_states`` (root-anchored), newest first."""
    state_dir = opt['path'].get('training_states') or os.path.join(
        opt.get('root_path', os.getcwd()), 'experiments', opt['name'], 'training_states')
    if not os.path.isdir(state_dir):
        return []
    iters = sorted((int(n[:-len('.state')]) for n in os.listdir(state_dir)
                    if n.endswith('.state') and n[:-len('.state')].isdigit()), reverse=True)
    return [os.path.join(state_dir, f'{i}.state') for i in iters]


_AUTO_RESUME = [False]


def _load_state(path, opt):
    """A training state and a check that the checkpoint it resumes from (``models/net_g_ITER.pth``) loads."""
    import torch
    state = torch.load(path, map_location=_map_location(opt), weights_only=True)
    models = opt['path'].get('models')
    if models:
        net = os.path.join(models, f"net_g_{state['iter']}.pth")
        torch.load(net, map_location='cpu', weights_only=True, mmap=True)
    return state


def load_resume_state(opt):
    """Fix 3: CPU-safe, root-anchored replacement for ``basicsr.train.load_resume_state`` (BasicSR#538).

    With ``--auto_resume``, a newest state that does not load (or whose checkpoint does not) is skipped with
    a warning for the previous complete one, as a kill during a save can leave it.

    Args:
        opt (dict): Parsed options (``auto_resume``, ``path: resume_state, training_states, models``).

    Returns:
        dict | None: The training state, mapped to the run's device.
    """
    import warnings

    from basicsr.utils.misc import check_resume
    _AUTO_RESUME[0] = bool(opt.get('auto_resume'))
    _RUN['resume_state'] = None
    if not opt['auto_resume']:
        path = opt['path'].get('resume_state')
        if not path:
            return None
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path:resume_state: training state '{path}' does not exist")
        state = _load_state(path, dict(opt, path={}))
        check_resume(opt, state['iter'])
        _RUN['resume_state'] = state
        return state
    for path in resume_states(opt):
        try:
            state = _load_state(path, opt)
        except Exception as e:  # noqa: BLE001  (truncated or corrupt: any unpickling error)
            warnings.warn(f'--auto_resume: {path} (or its checkpoint) does not load ({type(e).__name__}: {e}); '
                          'trying the previous training state')
            continue
        opt['path']['resume_state'] = path
        check_resume(opt, state['iter'])
        _RUN['resume_state'] = state
        return state
    return None


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


def _is_basicsr_pipeline(namespace, kind):
    """True if ``namespace`` holds BasicSR's ``train.py`` (``kind`` 'train') or ``test.py`` ('test'), imported as
    ``basicsr.train`` or run as a script."""
    basicsr = sys.modules.get('basicsr')
    path = namespace.get('__file__')
    if basicsr is None or not path or f'{kind}_pipeline' not in namespace:
        return False
    own = os.path.join(os.path.dirname(basicsr.__file__), f'{kind}.py')
    return os.path.realpath(path) == os.path.realpath(own)


def fix_train_namespace(namespace):
    """Fix 3 (BasicSR#538): rebind ``load_resume_state``, ``make_exp_dirs`` and ``mkdir_and_rename`` in the
    namespace of BasicSR's ``train.py``; fix 6: ``build_dataset``; fix 9: ``EnlargedSampler`` and
    ``build_dataloader``.

    ``python -m basicsr.train`` and ``python .../basicsr/train.py`` run a second copy of that module as
    ``__main__``, whose functions no module attribute reaches; its ``train_pipeline`` calls
    ``parse_options`` first, which calls this with the caller's globals.

    Args:
        namespace (dict): The module globals of BasicSR's ``train.py``.
    """
    from basicsr.utils.dist_util import master_only
    if namespace.get('load_resume_state') is load_resume_state:
        return
    _ORIGINALS.setdefault((namespace['__name__'], 'load_resume_state'), namespace['load_resume_state'])
    namespace['load_resume_state'] = load_resume_state
    namespace['make_exp_dirs'] = master_only(_keep_existing_on_auto_resume(namespace['make_exp_dirs']))
    namespace['mkdir_and_rename'] = _keep_existing_on_auto_resume(namespace['mkdir_and_rename'])
    fix_build_dataset(namespace)
    for name, wrap in (('EnlargedSampler', _exact_sampler), ('build_dataloader', _exact_loader)):  # fix 9
        if name in namespace:
            namespace[name] = wrap(namespace[name])


# ---- 9: exact resume -------------------------------------------------------------------------------------------

_RUN = {}  # this process's training run: its options (parse_options) and the state it resumes from


def exact_resume(opt):
    """Fix 9: True if the run's model class supports exact resume and ``train: exact_resume`` is not false.

    Looks the class up without importing anything: only a registered plugin model can say yes.
    """
    from basicsr.utils.registry import MODEL_REGISTRY
    cls = MODEL_REGISTRY._obj_map.get(opt.get('model_type'))
    train = opt.get('train') or {}
    return bool(getattr(cls, 'supports_exact_resume', False)) and train.get('exact_resume', True) is not False


def _exact_sampler(original):

    def EnlargedSampler(dataset, num_replicas, rank, ratio=1):
        opt = _RUN.get('opt')
        if opt is None or not opt.get('is_train') or not exact_resume(opt):
            return original(dataset, num_replicas, rank, ratio)
        from nodesr_arch.data.exact_resume import train_sampler
        return train_sampler(opt, _RUN.get('resume_state'), dataset, num_replicas, rank, ratio)

    EnlargedSampler.__wrapped__ = original
    return EnlargedSampler


def _exact_loader(original):

    def build_dataloader(dataset, dataset_opt, num_gpu=1, dist=False, sampler=None, seed=None):
        mod = sys.modules.get('nodesr_arch.data.exact_resume')
        if mod is None or not isinstance(sampler, mod.ResumableSampler):
            return original(dataset, dataset_opt, num_gpu, dist, sampler, seed)
        import torch
        loader = original(mod.SeededSamples(dataset), dataset_opt, num_gpu, dist, sampler, seed)
        # the loader's own generator: a new epoch's iterator no longer draws from the model's torch stream
        loader.generator = torch.Generator().manual_seed(mod.derived_seed(sampler.seed))
        return loader

    build_dataloader.__wrapped__ = original
    return build_dataloader


# ---- 4: distributed without CUDA ------------------------------------------------------------------------------


def _cuda_devices():
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _init_gloo(**kwargs):
    """A gloo process group, destroyed at exit: left to interpreter teardown, gloo's worker threads can
    abort a finished run ('terminate called without an active exception', exit -6)."""
    import atexit

    import torch.distributed as dist
    dist.init_process_group(backend='gloo', **kwargs)
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())


def _gloo_pytorch(original):

    def _init_dist_pytorch(backend='nccl', **kwargs):
        if _cuda_devices():
            return original(backend, **kwargs)
        _init_gloo(**kwargs)

    return _init_dist_pytorch


def _gloo_slurm(original):

    def _init_dist_slurm(backend='nccl', port=None):
        if _cuda_devices():
            return original(backend, port)
        import subprocess

        node_list = os.environ['SLURM_NODELIST']
        if port is not None:
            os.environ['MASTER_PORT'] = str(port)
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ.setdefault('MASTER_ADDR', subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1'))
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        _init_gloo()

    return _init_dist_slurm


def _ddp_on_cpu(original):

    def model_to_device(self, net):
        if not self.opt['dist'] or self.device.type == 'cuda':
            return original(self, net)
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(
            net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))

    return model_to_device


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


# ---- 5: a list of dataroots -------------------------------------------------------------------------------------


class _ListAwarePath:
    """``os.path`` whose ``expanduser`` also maps lists, for ``dataroot_gt: [folder1, folder2]``."""

    def __getattr__(self, name):
        return getattr(os.path, name)

    @staticmethod
    def expanduser(path):
        if isinstance(path, (list, tuple)):
            return [os.path.expanduser(p) for p in path]
        return os.path.expanduser(path)


# ---- 6: NODE-SR on demand -------------------------------------------------------------------------------------


def names_plugin(opt):
    """True if the options name a type of ``nodesr_arch`` (or its ``crop_border: scale``) anywhere."""
    if isinstance(opt, dict):
        for key, value in opt.items():
            if key in ('type', 'model_type') and isinstance(value, str) and value in _PLUGIN_NAMES:
                return True
            if key == 'crop_border' and value == 'scale':
                return True
            if names_plugin(value):
                return True
    elif isinstance(opt, list):
        return any(names_plugin(v) for v in opt)
    return False


def _built_once(original):

    def build_dataset(dataset_opt):
        check = sys.modules.get('nodesr_arch.models.option_check')
        dataset = check.take_built_dataset(dataset_opt) if check is not None else None
        return original(dataset_opt) if dataset is None else dataset

    build_dataset.__wrapped__ = original
    return build_dataset


def fix_build_dataset(namespace):
    """Fix 6: rebind ``build_dataset`` in the namespace of BasicSR's ``train.py`` or ``test.py`` to take the datasets
    the option check built (``option_check.take_built_dataset``).

    Args:
        namespace (dict): The module globals of BasicSR's ``train.py`` or ``test.py``.
    """
    if 'build_dataset' in namespace and not hasattr(namespace['build_dataset'], '__wrapped__'):
        namespace['build_dataset'] = _built_once(namespace['build_dataset'])


_CHECKED_ARGV = []


def mark_checked(argv):
    """``nodesr train``/``test`` read and checked these arguments' options and now runs BasicSR's pipeline: the next
    :func:`check_plugin_options` (its ``parse_options``) reads the file no second time.

    Args:
        argv (list[str]): The arguments checked.
    """
    _CHECKED_ARGV[:] = [list(argv)]


def check_plugin_options(argv, is_train):
    """Check an option file before BasicSR makes any folder (fixes 6 and 8).

    Every option file gets the checks of fix 8 (``option_files.read_option_file``); one that names NODE-SR types
    also gets ``nodesr_arch.models.option_check``'s, imported only then (a lookup of a NODE-SR type in a
    BasicSR registry registers them, fix 6). Other option files are left to BasicSR as they are.

    Args:
        argv (list[str]): Command-line arguments (``-opt X.yml`` ...).
        is_train (bool): Training or test options.

    Raises:
        SystemExit: Exit status 2 with one line naming the wrong option.
    """
    if [list(argv)] == _CHECKED_ARGV:
        _CHECKED_ARGV.clear()  # once: the file may change before another run in this process
        return  # nodesr train/test read and checked them
    prog = os.path.basename(sys.argv[0]) or 'basicsr'
    try:
        opt = read_option_file(argv)
    except OptionFileError as e:
        print(f'{prog}: error: {e}', file=sys.stderr)
        raise SystemExit(2) from None
    if opt is None or not names_plugin(opt):
        return  # BasicSR's parser reports a missing -opt
    from nodesr_arch.models.option_check import OptionError, check_options
    try:
        check_options(opt, is_train=is_train)
    except OptionError as e:
        print(f'{prog}: error: {e}', file=sys.stderr)
        raise SystemExit(2) from None


def _checked_parse_options(original):

    def parse_options(root_path, is_train=True):
        sys.argv = normalize_argv(sys.argv)  # fix 4
        caller = sys._getframe(1).f_globals
        if _is_basicsr_pipeline(caller, 'train'):
            fix_train_namespace(caller)  # fixes 3, 6, 9
        elif _is_basicsr_pipeline(caller, 'test'):
            fix_build_dataset(caller)  # fix 6
        check_plugin_options(sys.argv[1:], is_train)  # fixes 6, 8
        opt, args = original(root_path, is_train)
        if any(force_yml_keys(entry) == ['manual_seed'] for entry in args.force_yml or []):  # fix 8
            from basicsr.utils import set_random_seed
            set_random_seed(opt['manual_seed'] + opt['rank'])
        _RUN['opt'] = opt  # fix 9
        return opt, args

    parse_options.__wrapped__ = original
    return parse_options


def _on_demand(registry):

    def get(name, suffix='basicsr'):
        if name in _PLUGIN_NAMES and name not in registry:
            register()
        return type(registry).get(registry, name, suffix)

    return get


# ---- 7, 8: safe option files (the reading is nodesr_arch.option_files') -----------------------------------


def _safe_ordered_yaml(original):

    def ordered_yaml():
        return safe_yaml_loader(), original()[1]

    return ordered_yaml


# ---- applying the fixes -----------------------------------------------------------------------------------------


def _once(name, func):
    if name not in _APPLIED:
        _APPLIED.add(name)
        func()


def fix_options():
    """Fixes 3-8 in ``basicsr.utils.options``, before ``basicsr.train``/``basicsr.test`` bind ``parse_options``."""
    import basicsr.utils.options as bo
    _patch(bo, 'parse_options', _checked_parse_options)
    _patch(bo, 'osp', lambda osp: _ListAwarePath())
    _patch(bo, 'ordered_yaml', _safe_ordered_yaml)
    _patch(bo, '_postprocess_yml_value', lambda _: force_yml_value)
    for name in ('basicsr.train', 'basicsr.test'):  # bound already when the hook was off
        if hasattr(sys.modules.get(name), 'parse_options'):
            _patch(sys.modules[name], 'parse_options', lambda _: bo.parse_options)


def fix_dist_util():
    """Fix 4 in ``basicsr.utils.dist_util``."""
    import basicsr.utils.dist_util as du
    _patch(du, '_init_dist_pytorch', _gloo_pytorch)
    _patch(du, '_init_dist_slurm', _gloo_slurm)


def fix_base_model():
    """Fix 4 in ``basicsr.models.base_model``."""
    from basicsr.models.base_model import BaseModel
    _patch(BaseModel, 'model_to_device', _ddp_on_cpu)


def fix_registries():
    """Fix 6: the registries import ``nodesr_arch`` when asked for one of its names."""
    import basicsr.utils.registry as reg
    for name in PLUGIN_TYPES:
        registry = getattr(reg, name)
        _patch(registry, 'get', lambda _, registry=registry: _on_demand(registry))


_AFTER_IMPORT = {
    'basicsr.utils.registry': fix_registries,
    'basicsr.utils.options': fix_options,
    'basicsr.utils.dist_util': fix_dist_util,
    'basicsr.models.base_model': fix_base_model,
}


def before_import(name):
    """Called by :mod:`nodesr_arch.hook` before BasicSR's module ``name`` is first executed."""
    if name == 'basicsr' and fits():
        _once('imports', fix_imports)


def after_import(name, plugin_first=False):
    """Called by :mod:`nodesr_arch.hook` once BasicSR's module ``name`` has been executed.

    Once all of ``basicsr`` is, NODE-SR registers if ``nodesr_arch`` was imported before it (it imports no
    BasicSR itself); otherwise it registers on demand (fix 6). A BasicSR that :func:`fits` not gets no fix.

    Args:
        name (str): The module.
        plugin_first (bool): ``nodesr_arch`` was imported before ``basicsr`` (the hook looks before it imports
            this module, which imports the package).
    """
    if name in _AFTER_IMPORT and fits():
        _once(name, _AFTER_IMPORT[name])
    if name == 'basicsr' and plugin_first:
        register()


def apply():
    """Apply every fix once (:func:`register` calls this; the hook applies the same on import), to the
    BasicSR they were written for only (:func:`fits`)."""
    if not fits():
        return
    _once('imports', fix_imports)
    for module, fix in _AFTER_IMPORT.items():
        importlib.import_module(module)
        _once(module, fix)


def register():
    """Apply the fixes (:func:`apply`) and register NODE-SR's archs, datasets and models in BasicSR's registries
    (imports BasicSR): ``nodesr_arch.register()``, the hook and the on-demand lookups (fix 6) call it.

    Safe to call any number of times.
    """
    apply()
    import nodesr_arch.archs  # noqa: F401  (each *_arch.py, *_dataset.py, *_model.py registers on import)
    import nodesr_arch.data  # noqa: F401
    import nodesr_arch.models  # noqa: F401
    from nodesr_arch.registry import ARCH_REGISTRY, DATASET_REGISTRY
    ARCH_REGISTRY.forward()
    DATASET_REGISTRY.forward()
