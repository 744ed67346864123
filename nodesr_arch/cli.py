"""Alias of :mod:`nodesr_arch.commands.cli` for ``nodesr`` launchers written by installs before the move
(their console script imports ``nodesr_arch.cli:main``)."""
import sys

from nodesr_arch.commands.cli import main  # noqa: F401

if __name__ == '__main__':
    sys.exit(main())
