"""Datasets. Every ``*_dataset.py`` module here is imported so it registers in ``DATASET_REGISTRY`` (through
:mod:`nodesr_arch.registry`, so without importing BasicSR)."""
import importlib
import os
from os import path as osp

data_folder = osp.dirname(osp.abspath(__file__))
dataset_filenames = [osp.splitext(v)[0] for v in os.listdir(data_folder) if v.endswith('_dataset.py')]
_dataset_modules = [importlib.import_module(f'nodesr_arch.data.{name}') for name in sorted(dataset_filenames)]
