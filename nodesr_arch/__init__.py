"""NODE-SR (Park & Kim, ICASSP 2022) for BasicSR.

Importing this package applies the BasicSR compatibility fixes (``nodesr_arch_compat``; the import hook
installed with the package has usually applied them already), then registers the architectures, datasets
and models in BasicSR's registries.
"""
import nodesr_arch_compat

nodesr_arch_compat.apply()

from nodesr_arch.archs import *  # noqa: F401,F403,E402
from nodesr_arch.data import *  # noqa: F401,F403,E402
from nodesr_arch.models import *  # noqa: F401,F403,E402
from nodesr_arch.version import __version__  # noqa: E402,F401
