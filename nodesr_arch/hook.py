"""Start-up hook of ``nodesr_arch``: applies :mod:`nodesr_arch.compat`'s fixes when BasicSR is first imported.

``nodesr_arch_hook.pth``, installed into site-packages with the project, runs this file and its :func:`install`
at interpreter start-up. It only puts a finder on ``sys.meta_path`` (standard library, well under a
millisecond); it runs the file without importing the package, so ``nodesr_arch`` stays unimported until a
program imports it (then NODE-SR registers as soon as BasicSR is imported) or imports ``basicsr`` (then only
the fixes load, and NODE-SR registers on demand). BasicSR's own entry points (``python -m basicsr.train``,
``python .../basicsr/train.py``, a project ``train.py`` that imports ``basicsr`` first) run on today's stack and
find NODE-SR's types. Set ``NODESR_ARCH_HOOK`` to ``0``, ``false``, ``no`` or ``off`` to turn it off. A BasicSR
the fixes were not written for gets none (``nodesr_arch.basicsr_source.basicsr_fit``); a ``.pth`` left
behind by an uninstall does nothing.
"""
import _thread
import os
import sys

HOOK_ENV = 'NODESR_ARCH_HOOK'
#: The values of :data:`HOOK_ENV` that turn the hook off (any case, spaces around allowed).
OFF_VALUES = ('0', 'false', 'no', 'off')
#: BasicSR modules with a fix to apply when they are first imported (see :mod:`nodesr_arch.compat`).
WATCHED = frozenset(('basicsr', 'basicsr.utils.registry', 'basicsr.utils.options', 'basicsr.utils.dist_util',
                     'basicsr.models.base_model'))
#: The name of the finder class in every copy of this hook (another install's, the top-level
#: ``nodesr_arch_hook`` of earlier installs): such finders never ask each other.
FINDER = 'BasicSRImportHook'

_RESOLVING = set()  # (thread, module) this finder is resolving: a finder that asks it back is answered None


def _compat():
    try:
        from nodesr_arch import compat
    except ImportError:  # half uninstalled: BasicSR imports as it would without the plugin
        return None
    return compat


class _FixingLoader:
    """Wraps a watched module's loader: the fixes run before and after the module executes.

    Args:
        loader: The module's own loader.
        compat (module): :mod:`nodesr_arch.compat`.
        plugin_first (bool): ``nodesr_arch`` was imported before this module (``basicsr``) was looked up.
    """

    def __init__(self, loader, compat, plugin_first=False):
        self.loader = loader
        self.compat = compat
        self.plugin_first = plugin_first

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.compat.before_import(module.__name__)
        self.loader.exec_module(module)
        self.compat.after_import(module.__name__, self.plugin_first)

    def __getattr__(self, name):  # get_code, get_source, is_package... for runpy and tracebacks
        return getattr(self.loader, name)


class BasicSRImportHook:
    """A ``sys.meta_path`` finder that wraps the loaders of the :data:`WATCHED` BasicSR modules.

    It asks the other finders for the module's spec, skipping every copy of itself (:data:`FINDER`), and
    answers None to a finder that asks it back while it resolves that module, so that two installs side by side
    (or any finder that asks ``sys.meta_path`` in turn) do not recurse.
    """

    def find_spec(self, name, path=None, target=None):
        key = (_thread.get_ident(), name)
        if name not in WATCHED or key in _RESOLVING:
            return None
        _RESOLVING.add(key)
        try:
            spec = _other_finders_spec(name, path, target)
        finally:
            _RESOLVING.discard(key)
        if spec is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        plugin_first = name == 'basicsr' and 'nodesr_arch' in sys.modules  # before _compat() imports the package
        compat = _compat()
        if compat is not None:
            spec.loader = _FixingLoader(spec.loader, compat, plugin_first)
        return spec


def _other_finders_spec(name, path, target):
    for finder in list(sys.meta_path):
        if type(finder).__name__ == FINDER or not hasattr(finder, 'find_spec'):
            continue
        spec = finder.find_spec(name, path, target)
        if spec is not None:
            return spec
    return None


def hook_off():
    """True if ``NODESR_ARCH_HOOK`` turns the hook off: one of :data:`OFF_VALUES` (any case, spaces around
    allowed)."""
    return os.environ.get(HOOK_ENV, '').strip().lower() in OFF_VALUES


def finder_file():
    """The file of the hook whose finder is first on ``sys.meta_path`` (this one, another install's), or None."""
    for finder in sys.meta_path:
        if type(finder).__name__ == FINDER:
            return type(finder).find_spec.__code__.co_filename
    return None


def install(force=False):
    """Put :class:`BasicSRImportHook` first on ``sys.meta_path`` unless a finder of this module is there (the
    start-up's copy or the package's); nothing when :func:`hook_off`.

    If BasicSR is imported already, the fixes are applied at once instead.

    Args:
        force (bool): Install even when :func:`hook_off` (``import nodesr_arch`` asks for the fixes and
            its registration whatever the start-up hook does).
    """
    off = hook_off() and not force
    if off or any(type(f).__name__ == FINDER and type(f).__module__ == __name__ for f in sys.meta_path):
        return
    if 'basicsr' in sys.modules:
        compat = _compat()
        if compat is not None:
            compat.apply()
        return
    sys.meta_path.insert(0, BasicSRImportHook())
