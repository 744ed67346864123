"""NODE-SR (Park & Kim, ICASSP 2022) for BasicSR.

Importing this package is light (no BasicSR, no torch). It registers the architectures, datasets and models
in BasicSR's registries, with the BasicSR compatibility fixes (:mod:`nodesr_arch.compat`) applied first: at
once if BasicSR is imported already, else when BasicSR is imported (a ``sys.meta_path`` finder,
:mod:`nodesr_arch.hook`, installed here even with ``NODESR_ARCH_HOOK=0``). :func:`register` does it on request.
"""
import sys

from nodesr_arch import hook
from nodesr_arch.version import __version__  # noqa: F401


def register():
    """Apply the BasicSR compatibility fixes and register NODE-SR's archs, datasets and models (imports BasicSR).

    Safe to call any number of times.
    """
    from nodesr_arch import compat
    compat.register()


if 'basicsr' in sys.modules:
    register()
else:
    hook.install(force=True)
