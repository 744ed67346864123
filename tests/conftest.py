"""Fixtures shared by the test files: the device the device tests run on.

``NODESR_TEST_DEVICE`` picks it (default ``cpu``), e.g. ``NODESR_TEST_DEVICE=cuda pytest tests/test_device.py``
on a GPU machine. Asking for a device this machine does not have is an error, not a skip, so a GPU run
cannot pass by testing nothing.
"""
import os

import pytest
import torch

DEVICE_ENV = 'NODESR_TEST_DEVICE'
# the suite runs the networks in PyTorch (subprocesses too) unless a test asks for another runtime
# (tests/test_runtime.py): 'auto' would export and time every tiny test model into the user's cache
os.environ.setdefault('NODESR_RUNTIME', 'torch')


def device_under_test():
    """The torch device named by ``NODESR_TEST_DEVICE`` (default ``cpu``).

    Returns:
        torch.device: The device.

    Raises:
        pytest.UsageError: The name is not a torch device or the device cannot hold a tensor here.
    """
    name = os.environ.get(DEVICE_ENV, 'cpu').strip() or 'cpu'
    try:
        device = torch.device(name)
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError) as e:
        raise pytest.UsageError(f'{DEVICE_ENV}={name!r} is not usable here: {str(e).splitlines()[0]}') from None
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    return device


@pytest.fixture(scope='session')
def device():
    """The device under test (``NODESR_TEST_DEVICE``, default ``cpu``)."""
    return device_under_test()


@pytest.fixture
def ieee_fp32():
    """Plain float32 convolutions and matrix products (no TF32) while the test runs, so results on a GPU
    compare with the CPU's at float32 tolerance; the previous flags are restored afterwards."""
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul
