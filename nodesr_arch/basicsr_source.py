"""One of BasicSR's modules without all of BasicSR: ``import basicsr.utils.matlab_functions`` runs
``basicsr/__init__.py``, which imports every BasicSR module (torchvision models included, seconds of start-up),
though that file needs only numpy and torch. The inference path reuses BasicSR's code this way."""
import importlib
import importlib.util
import os
import sys

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
        import nodesr_arch_compat
        root = nodesr_arch_compat.basicsr_root()
        if root is None:
            raise ImportError(nodesr_arch_compat.BASICSR_MISSING)
        path = os.path.join(root, *name.split('.')[1:]) + '.py'
        spec = importlib.util.spec_from_file_location(f'{__name__}.{name}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[name] = module
    return _LOADED[name]
