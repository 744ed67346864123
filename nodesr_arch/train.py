"""``python -m nodesr_arch.train -opt X.yml``: the BasicSR habit (and ``torchrun -m nodesr_arch.train``) kept as
an alias of :mod:`nodesr_arch.commands.train`, which the option files and docs name."""
import sys

from nodesr_arch.commands.train import main  # noqa: F401

if __name__ == '__main__':
    sys.exit(main())
