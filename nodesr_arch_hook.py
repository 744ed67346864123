"""Start-up hook of ``nodesr_arch``: applies ``nodesr_arch_compat``'s fixes when BasicSR is first imported.

``nodesr_arch_hook.pth``, installed into site-packages with the project, runs :func:`install` at
interpreter start-up. It only puts a finder on ``sys.meta_path`` (no import, well under a millisecond):
nothing else of the plugin, and nothing heavy, loads until a program imports ``basicsr``. Then BasicSR's
own entry points (``python -m basicsr.train``, ``python .../basicsr/train.py``, a project ``train.py``
that imports ``basicsr`` first) run on today's stack and find NODE-SR's types. Set ``NODESR_ARCH_HOOK`` to
``0``, ``false``, ``no`` or ``off`` to turn it off. A BasicSR the fixes were not written for gets none
(``nodesr_arch_compat.basicsr_fit``); a ``.pth`` left behind by an uninstall does nothing.
"""
import os
import sys

HOOK_ENV = 'NODESR_ARCH_HOOK'
#: BasicSR modules with a fix to apply when they are first imported (see ``nodesr_arch_compat``).
WATCHED = frozenset(('basicsr', 'basicsr.utils.registry', 'basicsr.utils.options', 'basicsr.utils.dist_util',
                     'basicsr.models.base_model'))


class _FixingLoader:
    """Wraps a watched module's loader: the fixes run before and after the module executes."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            import nodesr_arch_compat
        except ImportError:  # half uninstalled: BasicSR imports as it would without the plugin
            return self.loader.exec_module(module)
        nodesr_arch_compat.before_import(module.__name__)
        self.loader.exec_module(module)
        nodesr_arch_compat.after_import(module.__name__)

    def __getattr__(self, name):  # get_code, get_source, is_package... for runpy and tracebacks
        return getattr(self.loader, name)


class BasicSRImportHook:
    """A ``sys.meta_path`` finder that wraps the loaders of the :data:`WATCHED` BasicSR modules."""

    def find_spec(self, name, path=None, target=None):
        if name not in WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if hasattr(spec.loader, 'exec_module'):
                    spec.loader = _FixingLoader(spec.loader)
                return spec
        return None


def hook_off():
    """True if ``NODESR_ARCH_HOOK`` turns the hook off: ``0``, ``false``, ``no`` or ``off`` (any case, spaces
    around allowed)."""
    return os.environ.get(HOOK_ENV, '').strip().lower() in ('0', 'false', 'no', 'off')


def install(force=False):
    """Put :class:`BasicSRImportHook` first on ``sys.meta_path`` (once); nothing when :func:`hook_off`.

    If BasicSR is imported already, the fixes are applied at once instead.

    Args:
        force (bool): Install even when :func:`hook_off` (``import nodesr_arch`` asks for the fixes and
            its registration whatever the start-up hook does).
    """
    off = hook_off() and not force
    if off or any(isinstance(f, BasicSRImportHook) for f in sys.meta_path):
        return
    if 'basicsr' in sys.modules:
        import nodesr_arch_compat
        nodesr_arch_compat.apply()
        return
    sys.meta_path.insert(0, BasicSRImportHook())
