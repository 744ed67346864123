"""Models. Every ``*_model.py`` module here is imported so it registers in ``MODEL_REGISTRY``."""
import importlib
from os import path as osp

from basicsr.utils import scandir

model_folder = osp.dirname(osp.abspath(__file__))
model_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(model_folder) if v.endswith('_model.py')]
_model_modules = [importlib.import_module(f'nodesr_arch.models.{name}') for name in sorted(model_filenames)]
