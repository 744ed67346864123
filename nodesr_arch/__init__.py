"""NODE-SR (Park & Kim, ICASSP 2022) for BasicSR.

Importing this package is light (no BasicSR, no torch). It registers the architectures, datasets and models
in BasicSR's registries, with the BasicSR compatibility fixes (``nodesr_arch_compat``) applied first: at
once if BasicSR is imported already, else when BasicSR is imported (a ``sys.meta_path`` finder,
``nodesr_arch_hook``, installed here even with ``NODESR_ARCH_HOOK=0``). :func:`register` does it on request.
"""
import sys

import nodesr_arch_hook
from nodesr_arch.version import __version__  # noqa: F401


def register():
    """Apply the BasicSR compatibility fixes and register NODE-SR's archs, datasets and models (imports BasicSR).

    Safe to call any number of times.
    """
    import nodesr_arch_compat
    nodesr_arch_compat.apply()
    import nodesr_arch.archs  # noqa: F401  (each *_arch.py, *_dataset.py, *_model.py registers on import)
    import nodesr_arch.data  # noqa: F401
    import nodesr_arch.models  # noqa: F401
    from nodesr_arch.registry import ARCH_REGISTRY, DATASET_REGISTRY
    ARCH_REGISTRY.forward()
    DATASET_REGISTRY.forward()


if 'basicsr' in sys.modules:
    register()
else:
    nodesr_arch_hook.install(force=True)
