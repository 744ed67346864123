"""Architectures. Every ``*_arch.py`` module here is imported so its classes register in BasicSR's
``ARCH_REGISTRY``, the way ``basicsr/archs/__init__.py`` does it."""
import importlib
from os import path as osp

from basicsr.utils import scandir

arch_folder = osp.dirname(osp.abspath(__file__))
arch_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(arch_folder) if v.endswith('_arch.py')]
_arch_modules = [importlib.import_module(f'nodesr_arch.archs.{name}') for name in sorted(arch_filenames)]
