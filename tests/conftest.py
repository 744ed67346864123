"""Fixtures shared by the test files: the device the device tests run on, and the ``gpu`` marker.

``device`` is the CPU, and CUDA in tests marked ``gpu`` (setup.cfg): the default run leaves those out,
``pytest -m gpu`` runs them and only them (``scripts/gpu_check.sh`` on a GPU machine), and where torch
sees no CUDA device they are skipped.
"""
import os

import pytest
import torch

# the suite runs the networks in PyTorch (subprocesses too) unless a test asks for another runtime
# (tests/test_runtime.py): 'auto' would export and time every tiny test model into the user's cache
os.environ.setdefault('NODESR_RUNTIME', 'torch')


def pytest_collection_modifyitems(config, items):
    """Skip the ``gpu`` tests where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='gpu: no CUDA device here')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope='session', params=['cpu', pytest.param('cuda', marks=pytest.mark.gpu)])
def device(request):
    """The device under test: the CPU, or (``gpu`` tests) the current CUDA device."""
    if request.param == 'cuda':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


@pytest.fixture
def ieee_fp32():
    """Plain float32 convolutions and matrix products (no TF32) while the test runs, so results on a GPU
    compare with the CPU's at float32 tolerance; the previous flags are restored afterwards."""
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul
