"""Small helpers shared by the tests (append only)."""
import os

import torch
import yaml


def save_tiny_model(folder, arch='NODEVDSR', name=None, seed=0, key='params', ode=None):
    """Save a tiny randomly initialised model (4 features, 3 layers) as ``NAME.pth`` + sidecar ``NAME.yml``.

    The last conv gets small random weights (it starts at zero), so the model is not the identity.

    Returns:
        str: The checkpoint path.
    """
    import nodesr_arch  # noqa: F401  (compat fixes first, then registers the archs)
    from basicsr.archs import build_network

    name = name or f'tiny_{arch}'
    opt = {'type': arch, 'num_feat': 4, 'num_layer': 3}
    if arch.startswith('NODE'):
        opt['ode'] = dict(ode or {'method': 'rk4', 'step_size': 1.0})
    torch.manual_seed(seed)
    net = build_network(dict(opt))
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.normal_(last.weight, 0, 0.01)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + '.pth')
    torch.save({key: net.state_dict()}, path)
    with open(os.path.join(folder, name + '.yml'), 'w') as f:
        yaml.safe_dump({'name': name, 'network_g': opt}, f)
    return path


def randomized(net, seed=0, std=0.1):
    """Give every parameter of ``net`` a random N(0, std) value (tiny nets start as the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return net


def _one_thread():
    """Tiny tensors: one torch thread is faster, and much faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_thread_fixture():
    """An autouse fixture running each test of the module on one thread:
    ``one_thread = one_thread_fixture()`` at module level."""
    import pytest
    return pytest.fixture(autouse=True)(_one_thread)


def write_images(folder, sizes, grey=(), prefix='img'):
    """Write PNG crops of scikit-image pictures, one per ``(h, w)`` in ``sizes``.

    Args:
        folder (str): Output folder (made if missing).
        sizes (list[tuple[int, int]]): Image sizes.
        grey (tuple[int]): Indices of images written as 1-channel files.
        prefix (str): File name prefix; files are ``{prefix}{i}.png``.

    Returns:
        list[str]: The paths.
    """
    import cv2
    from skimage import data

    pictures = [data.astronaut(), data.coffee(), data.chelsea()]
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(sizes):
        pic = pictures[i % len(pictures)][(i * 13) % 50:, (i * 29) % 70:]
        img = cv2.resize(pic, (w, h), interpolation=cv2.INTER_AREA)
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if i in grey else img[..., ::-1]
        path = os.path.join(folder, f'{prefix}{i}.png')
        cv2.imwrite(path, img)
        paths.append(path)
    return paths


def load_script(relpath):
    """Import a script of the repository (``benchmarks/x.py``, ``scripts/x.py``) by its path from the root."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), relpath)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_basicsr_model(folder, opt, name, seed=0):
    """Save a BasicSR registry network built from ``opt`` (e.g. a tiny EDSR) as ``NAME.pth`` + ``NAME.yml``.

    Returns:
        str: The checkpoint path.
    """
    import nodesr_arch  # noqa: F401
    from basicsr.archs import build_network

    torch.manual_seed(seed)
    net = build_network(dict(opt))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + '.pth')
    torch.save({'params': net.state_dict()}, path)
    with open(os.path.join(folder, name + '.yml'), 'w') as f:
        yaml.safe_dump({'name': name, 'network_g': dict(opt)}, f)
    return path


TINY_EDSR_X2 = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_block': 1, 'upscale': 2}


#: Code for a subprocess that runs BasicSR alone, with only the import shims (fixes 1, 2) without which it cannot be
#: imported at all: importing ``nodesr_arch.compat`` imports the package, which installs its hook; taken off again.
BASICSR_ALONE = '''\
import sys
from nodesr_arch import compat
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != 'BasicSRImportHook']
compat.fix_imports()
'''
