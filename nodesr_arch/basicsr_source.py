"""BasicSR's files, read without importing BasicSR: which BasicSR is installed (:func:`basicsr_root`) and
whether it is the one the compatibility fixes were written for (:func:`basicsr_fit`), and one of its modules
run on its own (:func:`basicsr_module`).

``import basicsr.utils.matlab_functions`` runs ``basicsr/__init__.py``, which imports every BasicSR module
(torchvision models included, seconds of start-up), though that file needs only numpy and torch. The inference
path reuses BasicSR's code this way. Ground floor: the standard library only.
"""
import collections
import importlib
import importlib.util
import os
import re
import sys

#: The BasicSR release the fixes were written for (BasicSR's master and ``basicsr-fixed``, the maintained fork of
#: 1.4.2, report it too and share its layout).
BASICSR_VERSION = '1.4.2'
#: What the fixes replace, per file below ``basicsr/``: a BasicSR without one of them has another layout.
_LAYOUT = {
    'utils/registry.py': ('ARCH_REGISTRY', 'DATASET_REGISTRY', 'MODEL_REGISTRY'),
    'utils/options.py': ('def parse_options', 'def ordered_yaml', 'osp.expanduser'),
    'utils/dist_util.py': ('def _init_dist_pytorch', 'def _init_dist_slurm'),
    'models/base_model.py': ('def model_to_device', ),
    'train.py': ('def load_resume_state', 'def train_pipeline'),
}
#: Each import shim (fixes 1, 2) and the text of BasicSR's file that needs it: master and basicsr-fixed import
#: ``torchvision.transforms.functional`` and need no alias.
_SHIMS = {
    'functional_tensor': ('data/degradations.py', 'torchvision.transforms.functional_tensor'),
    'distutils': ('archs/arch_util.py', 'distutils'),
}


#: What to say when no BasicSR is installed (the project installs it through an extra: setup.py).
BASICSR_MISSING = 'BasicSR is not installed: pip install "nodesr_arch[basicsr]" (or "nodesr_arch[basicsr-fixed]")'


class BasicSRFit(collections.namedtuple('BasicSRFit', 'root version reason needs')):
    """Whether the BasicSR at ``root`` is the one the fixes were written for.

    Attributes:
        root (str | None): The ``basicsr`` package folder (None: BasicSR is not installed).
        version (str | None): Its ``basicsr/version.py`` ``__version__``.
        reason (str | None): Why the fixes do not apply to it; None when they do.
        needs (frozenset[str]): The import shims it needs (``'functional_tensor'``, ``'distutils'``).
    """


_FITS = {}


def _read(root, relative):
    try:
        with open(os.path.join(root, *relative.split('/')), encoding='utf-8') as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def basicsr_root():
    """The folder of the ``basicsr`` package that is (or would be) imported, found without importing it."""
    module = sys.modules.get('basicsr')
    spec = getattr(module, '__spec__', None) if module is not None else None
    if spec is None:
        try:
            spec = importlib.util.find_spec('basicsr')
        except (ImportError, ValueError):
            spec = None
    locations = list(getattr(spec, 'submodule_search_locations', None) or ())
    return locations[0] if locations else None


def basicsr_fit(root=None):
    """Check, from its files (nothing is imported), whether this BasicSR is the one the fixes were written for:
    version :data:`BASICSR_VERSION` with the functions they replace where they expect them.

    Args:
        root (str | None): A ``basicsr`` package folder; default :func:`basicsr_root`.

    Returns:
        BasicSRFit: The answer, cached per folder.
    """
    root = root or basicsr_root()
    if root in _FITS:
        return _FITS[root]
    version = reason = None
    needs = frozenset()
    if root is None:
        reason = 'BasicSR is not installed'
    else:
        match = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", _read(root, 'version.py') or '', re.M)
        version = match.group(1) if match else None
        missing = [f'{relative} ({", ".join(n for n in names if n not in text)})'
                   for relative, names in _LAYOUT.items() for text in [_read(root, relative) or '']
                   if not all(n in text for n in names)]
        if version != BASICSR_VERSION:
            reason = f'version {version or "unknown"}, not {BASICSR_VERSION}'
        elif missing:
            reason = 'another layout: ' + '; '.join(missing) + ' not found'
        else:
            needs = frozenset(shim for shim, (relative, text) in _SHIMS.items()
                              if text in (_read(root, relative) or ''))
    _FITS[root] = BasicSRFit(root, version, reason, needs)
    return _FITS[root]


_LOADED = {}


def basicsr_module(name):
    """BasicSR's module ``name``: the real one when BasicSR is imported, else its file executed on its own.

    The file is found through ``importlib.util.find_spec('basicsr')`` (which does not import the package) and
    executed as the private module ``nodesr_arch.basicsr_source.<name>``, so ``sys.modules`` never holds a
    ``basicsr.*`` module without its package. Only modules that import nothing of BasicSR qualify.

    Args:
        name (str): A dotted module name below ``basicsr``, e.g. ``'basicsr.utils.matlab_functions'``.

    Returns:
        module: The module.

    Raises:
        ImportError: BasicSR is not installed (one line saying how to install it).
    """
    if 'basicsr' in sys.modules:
        return importlib.import_module(name)
    if name not in _LOADED:
        root = basicsr_root()
        if root is None:
            raise ImportError(BASICSR_MISSING)
        path = os.path.join(root, *name.split('.')[1:]) + '.py'
        spec = importlib.util.spec_from_file_location(f'{__name__}.{name}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[name] = module
    return _LOADED[name]
