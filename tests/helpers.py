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
