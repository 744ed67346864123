"""Model loading below :mod:`nodesr_arch.api`: which files a model spec names (bundled weights, a checkpoint and its
option YAML, or an option YAML and its checkpoint), reading them safely, and building the network from BasicSR's
registry."""
import copy
import glob
import os

import torch

from nodesr_arch.option_files import OptionFileError, read_yaml

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights')
DEFAULT_MODEL = 'NODEVDSR_S'


def bundled_models():
    """Names of the models shipped in ``nodesr_arch/weights`` (a ``NAME.pth`` with its ``NAME.yml``)."""
    names = []
    for pth in sorted(glob.glob(os.path.join(WEIGHTS_DIR, '*.pth'))):
        stem = os.path.splitext(pth)[0]
        if os.path.isfile(stem + '.yml'):
            names.append(os.path.basename(stem))
    return names


def _read_yaml(path):
    try:
        opt = read_yaml(path, what='model YAML')
    except OptionFileError as e:
        raise ValueError(str(e)) from None
    if not isinstance(opt, dict):
        raise ValueError(f'{path}: not an option YAML (expected a mapping)')
    return opt


def _find_options(ckpt):
    """The option YAML describing checkpoint ``ckpt``: its sidecar, or the BasicSR experiment's copy."""
    stem = os.path.splitext(ckpt)[0]
    tried = [stem + '.yml', stem + '.yaml']
    models_dir = os.path.dirname(os.path.abspath(ckpt))
    if os.path.basename(models_dir) == 'models':  # experiments/NAME/models/net_g_X.pth
        exp_root = os.path.dirname(models_dir)
        tried += sorted(glob.glob(os.path.join(exp_root, '*.yml')) + glob.glob(os.path.join(exp_root, '*.yaml')))
    for path in tried:
        if os.path.isfile(path):
            opt = _read_yaml(path)
            if isinstance(opt.get('network_g'), dict):
                return path, opt
    raise FileNotFoundError(f'{ckpt}: no option YAML with network_g found for this checkpoint (looked for '
                            f'{", ".join(tried)}); give the training option YAML instead, or put '
                            f'{stem}.yml holding "network_g: {{type: ..., ...}}" beside it')


def _resolve(spec):
    """Return (name, network_g options, checkpoint path, param_key, option YAML path) for a model spec."""
    if spec is None:
        spec = DEFAULT_MODEL
    spec = os.fspath(spec)
    if not os.path.exists(spec) and os.sep not in spec and not os.path.splitext(spec)[1]:
        pth = os.path.join(WEIGHTS_DIR, spec + '.pth')
        if not os.path.isfile(pth):
            have = bundled_models()
            raise FileNotFoundError(f'no bundled model {spec!r} (in {WEIGHTS_DIR}: '
                                    f'{", ".join(have) if have else "none"}); pass a checkpoint or option YAML')
        spec = pth
    if not os.path.isfile(spec):
        raise FileNotFoundError(f'model file not found: {spec}')
    ext = os.path.splitext(spec)[1].lower()
    if ext in ('.yml', '.yaml'):
        opt = _read_yaml(spec)
        if not isinstance(opt.get('network_g'), dict):
            raise ValueError(f'{spec}: no network_g section')
        path_opt = opt.get('path') or {}
        if not isinstance(path_opt, dict):
            raise ValueError(f'{spec}: path must be a mapping (path: {{pretrain_network_g: ...}}), got {path_opt!r}')
        ckpt = path_opt.get('pretrain_network_g')
        if ckpt is not None and not isinstance(ckpt, str):
            raise ValueError(f'{spec}: path.pretrain_network_g must be a file path, got {ckpt!r}')
        name = str(opt.get('name') or os.path.splitext(os.path.basename(spec))[0])
        if not ckpt:
            latest = os.path.join('experiments', str(name), 'models', 'net_g_latest.pth')
            if not os.path.isfile(latest):
                raise FileNotFoundError(f'{spec}: path.pretrain_network_g is not set and {latest} does not '
                                        'exist; train first or give the checkpoint')
            ckpt = latest
        elif not os.path.isabs(ckpt) and not os.path.isfile(ckpt):
            beside = os.path.join(os.path.dirname(os.path.abspath(spec)), ckpt)
            ckpt = beside if os.path.isfile(beside) else ckpt
        if not os.path.isfile(ckpt):
            raise FileNotFoundError(f'{spec}: checkpoint {ckpt} not found')
        return name, opt['network_g'], ckpt, path_opt.get('param_key_g'), spec
    source, opt = _find_options(spec)
    name = str(opt.get('name') or os.path.splitext(os.path.basename(spec))[0])
    path_opt = opt.get('path') or {}
    return name, opt['network_g'], spec, path_opt.get('param_key_g') if isinstance(path_opt, dict) else None, source


def _load_state_dict(ckpt, param_key=None):
    """The state dict of checkpoint ``ckpt``, ``module.`` prefixes stripped.

    From ``param_key`` when given, falling back to ``params`` when it is absent (as BasicSR's
    ``load_network`` does); else ``params_ema`` when present (as BasicSR's test options ask), then
    ``params``; else the file itself when it is a bare state dict.
    """
    try:
        state = torch.load(ckpt, map_location='cpu', weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which
        raise ValueError(f'{ckpt}: cannot read checkpoint: {_checkpoint_error(e, ckpt)}') from None
    if isinstance(state, dict):
        keys = [param_key, 'params'] if param_key else ['params_ema', 'params']
        for key in keys:
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
        else:
            if param_key:
                raise ValueError(f'{ckpt}: no {param_key!r} in the checkpoint (keys: {list(state)})')
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'{ckpt}: not a state dict or BasicSR checkpoint ({{"params": state_dict}})')
    return {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}


def _build_network(net_opt, source):
    """BasicSR's ``build_network(net_opt)``, with an error naming the option file when it cannot.

    NODE-SR's own types are built from :mod:`nodesr_arch.registry` as ``build_network`` would (the class called
    with the other options), so loading them imports no BasicSR; any other type goes to BasicSR.
    """
    import nodesr_arch.archs  # noqa: F401  (registers the plugin's archs)
    from nodesr_arch.registry import ARCH_REGISTRY as OURS
    arch = net_opt.get('type')
    if isinstance(arch, str) and arch in OURS:
        def build():
            return OURS.get(arch)(**copy.deepcopy({k: v for k, v in net_opt.items() if k != 'type'}))
    else:
        registry = OURS.basicsr_registry(load=True)
        from basicsr.archs import build_network

        # checked first: BasicSR's registry prints a line of its own before raising for an unknown name
        if not isinstance(arch, str) or not (arch in registry or f'{arch}_basicsr' in registry):
            problem = 'has no type' if arch is None else f'type {arch!r} is not an architecture BasicSR knows'
            known = ', '.join(sorted(k for k in registry.keys() if 'NODE' in k)[:4])
            raise ValueError(f'{source}: network_g {problem} (e.g. {known}, EDSR)')

        def build():
            return build_network(dict(net_opt))
    try:
        return build()
    except (TypeError, ValueError, KeyError, RuntimeError, AssertionError) as e:
        raise ValueError(f'{source}: cannot build network_g {net_opt}: {type(e).__name__}: {e}') from None


def _checkpoint_error(e, path):
    """Why ``torch.load(path, weights_only=True)`` failed, in a line: what the file is, not the unpickler's
    internals (``pop from empty list``).

    torch's own message advises retrying with ``weights_only=False``, which runs any code the file holds:
    that advice is not passed on.
    """
    import re
    text = str(e)
    if isinstance(e, OSError):
        return e.strerror or text
    if isinstance(e, EOFError):
        return 'the file is empty or truncated'
    found = re.search(r'unsupported GLOBAL (\S+) whose module \S+ is blocked', text, re.IGNORECASE)
    if found:
        return (f'it holds a pickled call of {found.group(1)} (code, not weights): refused, nothing was run; '
                'only weights are loaded (a state dict or BasicSR\'s {"params": ...})')
    found = re.search(r'Unsupported global: GLOBAL (\S+)', text)
    if found:
        return (f'it holds Python objects ({found.group(1)}) besides tensors (a whole pickled model?); only '
                'weights are loaded (a state dict or BasicSR\'s {"params": ...}), since unpickling objects can '
                'run code')
    return f'not a valid PyTorch checkpoint ({_file_kind(path)}); expected a .pth written by torch.save'


#: First bytes of files that are often mistaken for checkpoints.
_MAGIC = ((b'\x89PNG', 'a PNG image'), (b'\xff\xd8\xff', 'a JPEG image'), (b'GIF8', 'a GIF image'),
          (b'\x1f\x8b', 'a gzip archive'), (b'\x7fELF', 'a program'), (b'%PDF', 'a PDF document'),
          (b'PK\x03\x04', 'a zip archive torch cannot read: corrupt, truncated or not written by torch.save'),
          (b'\x80', 'a pickle torch cannot read: corrupt or truncated'))


def _file_kind(path):
    """What a file that torch cannot load looks like, from its first bytes."""
    try:
        with open(path, 'rb') as f:
            head = f.read(64)
    except OSError:
        return 'unreadable'
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) > 8 and head[8:10] == b'{"':
        return 'a safetensors file, not a torch.save checkpoint'
    try:
        sample = head.decode('utf-8')
    except UnicodeDecodeError:  # maybe cut inside a character: text is still text
        sample = head[:-3].decode('utf-8', errors='replace')
    if sample and all(c.isprintable() or c in '\r\n\t' for c in sample) and '\ufffd' not in sample:
        return f'a text file starting {sample.splitlines()[0][:40]!r}'
    return 'binary data of another kind'


def load_network(spec=None):
    """Build the network a model spec names and load its weights (see :func:`nodesr_arch.api.load_model`).

    Args:
        spec (str | None): None, a bundled model's name, a ``.pth`` checkpoint or an option YAML.

    Returns:
        tuple: ``name`` (str), ``net`` (nn.Module, weights loaded, on the CPU), ``net_opt`` (dict: network_g).

    Raises:
        FileNotFoundError: The spec, its checkpoint or its option YAML is missing.
        ValueError: A file that is not what it should be, or weights that do not fit the network.
    """
    name, net_opt, ckpt, param_key, source = _resolve(spec)
    net = _build_network(net_opt, source)
    state = _load_state_dict(ckpt, param_key)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f'{ckpt}: weights do not fit network_g {net_opt}: {e}') from None
    return name, net, net_opt
