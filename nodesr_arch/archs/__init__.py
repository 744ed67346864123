"""Architectures. Every ``*_arch.py`` module here is imported so its classes register in ``ARCH_REGISTRY``, the
way ``basicsr/archs/__init__.py`` does it (through :mod:`nodesr_arch.registry`, so without importing BasicSR)."""
import importlib
import os
from os import path as osp

arch_folder = osp.dirname(osp.abspath(__file__))
arch_filenames = [osp.splitext(v)[0] for v in os.listdir(arch_folder) if v.endswith('_arch.py')]
_arch_modules = [importlib.import_module(f'nodesr_arch.archs.{name}') for name in sorted(arch_filenames)]
