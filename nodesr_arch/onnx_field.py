"""The field ``f`` of a NODE-SR network in onnxruntime: exported alone, cached, run as a drop-in module.

``f`` is exported once per network (dynamic batch, height and width; the scale channel is one of its input
channels) and cached in ``$XDG_CACHE_HOME/nodesr_arch`` (else ``~/.cache/nodesr_arch``) under a hash of its
structure and weights, with the timings of :func:`measured_times` beside it, so a second load neither exports
nor measures again. :mod:`nodesr_arch.runtime` decides when it is used.
"""
import contextlib
import copy
import hashlib
import io
import json
import os
import platform
import time
import warnings

import numpy as np
import torch
from torch import nn

from nodesr_arch.file_io import atomic_write

#: What to install for the onnxruntime runtime (one line in every error that needs it).
EXTRA_HINT = 'pip install "nodesr_arch[onnx]"'


def require_onnxruntime():
    """Import what the onnxruntime runtime needs (onnxruntime; onnx and onnxscript to export).

    Raises:
        ImportError: One clear line naming the missing package and the extra to install.
    """
    for name in ('onnxruntime', 'onnx', 'onnxscript'):
        try:
            __import__(name)
        except ImportError:
            raise ImportError(f'runtime onnxruntime needs {name}, which is not installed: {EXTRA_HINT}') from None


#: Side of the random input on which :func:`measured_times` times one evaluation of ``f`` in each runtime.
PROBE_SIDE = 128


def field_slot(net):
    """Where ``net`` keeps ``f``: ``(owner, attribute, input channels)``, or None for a network without one.

    NODE-SR networks (``net.ode.field.func``), the one-shot ``+t`` networks (``net.func``) and VDSR
    (``net.body``); BasicSR's own networks have none and always run in PyTorch.
    """
    from nodesr_arch.archs.node_util import NODEBase, OneShotBase
    from nodesr_arch.archs.vdsr_arch import VDSR

    if isinstance(net, NODEBase):
        owner, attr = net.ode.field, 'func'
    elif isinstance(net, OneShotBase):
        owner, attr = net, 'func'
    elif isinstance(net, VDSR):
        owner, attr = net, 'body'
    else:
        return None
    convs = [m for m in getattr(owner, attr).modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return None
    return owner, attr, convs[0].in_channels


def field_hash(func):
    """A hex digest of ``func``'s structure (its repr) and every parameter and buffer's name, dtype, shape and
    bytes: equal for the same network with the same weights, different when a weight changes."""
    digest = hashlib.sha256(repr(func).encode())
    digest.update(f'torch {torch.__version__}'.encode())
    for name, tensor in sorted(func.state_dict().items()):
        t = tensor.detach().to('cpu').contiguous()
        digest.update(f'{name} {t.dtype} {tuple(t.shape)}'.encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return digest.hexdigest()[:32]


def cache_dir():
    """The folder of exported fields: ``$XDG_CACHE_HOME/nodesr_arch``, else ``~/.cache/nodesr_arch``."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'nodesr_arch')


def export_field(func, in_channels, path, size_multiple=1):
    """Write ``func`` ((B, C, H, W) -> (B, C', H, W)) as an ONNX graph with dynamic batch, height and width.

    Args:
        func (nn.Module): The field, fp32, on the CPU (a copy is exported; ``func`` is left as it is).
        in_channels (int): Its input channels (the scale channel included).
        path (str): The ``.onnx`` file, written atomically.
        size_multiple (int): Height and width ``f`` is given are multiples of this.
    """
    module = copy.deepcopy(func).to('cpu', memory_format=torch.contiguous_format).float().eval()
    k = max(int(size_multiple), 1)
    dims = [torch.export.Dim('batch', min=1)] + [k * torch.export.Dim(n, min=2) if k > 1 else
                                                 torch.export.Dim(n, min=2) for n in ('height', 'width')]
    x = torch.rand(1, in_channels, 16 * k, 16 * k)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        program = torch.onnx.export(module, (x,), dynamo=True, input_names=['x'], output_names=['y'],
                                    dynamic_shapes=({0: dims[0], 2: dims[1], 3: dims[2]},), verbose=False)
    atomic_write(path, program.save)


def cached_field(func, in_channels, size_multiple=1):
    """The cached ONNX graph of ``func`` (exported first if absent) and whether this call exported it."""
    folder = cache_dir()
    path = os.path.join(folder, f'field-{field_hash(func)}.onnx')
    if os.path.isfile(path):
        return path, False
    os.makedirs(folder, exist_ok=True)
    export_field(func, in_channels, path, size_multiple)
    return path, True


class OnnxField(nn.Module):
    """``f`` evaluated by onnxruntime on the CPU, a drop-in for the PyTorch module in the solve.

    One session per thread count, made when first needed with ``torch.get_num_threads()`` intra-op threads,
    so ``torch.set_num_threads`` governs both runtimes. Inputs smaller than the graph allows (a side under 2
    pixels) and calls that need gradients go to the PyTorch module.

    Args:
        path (str): The exported graph (:func:`cached_field`).
        func (nn.Module): The PyTorch field it was exported from (kept, not registered as a submodule).
        size_multiple (int): The graph takes sides that are multiples of this.
    """

    def __init__(self, path, func, size_multiple=1):
        super().__init__()
        require_onnxruntime()
        self.path = path
        self.size_multiple = max(int(size_multiple), 1)
        object.__setattr__(self, 'torch_func', func)
        self._sessions = {}

    def session(self, threads=None):
        import onnxruntime

        threads = threads or torch.get_num_threads()
        if threads not in self._sessions:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._sessions[threads] = onnxruntime.InferenceSession(self.path, options,
                                                                   providers=['CPUExecutionProvider'])
        return self._sessions[threads]

    def forward(self, x):
        h, w = x.shape[-2:]
        if (x.requires_grad and torch.is_grad_enabled()) or min(h, w) < 2 or x.device.type != 'cpu' or (
                h % self.size_multiple or w % self.size_multiple):
            return self.torch_func(x)
        feed = np.ascontiguousarray(x.detach().to(torch.float32).numpy())
        return torch.from_numpy(self.session().run(None, {'x': feed})[0]).to(x.dtype)

    def __deepcopy__(self, memo):
        return self  # a read-only graph: copies of the network share it


def with_field(net, field):
    """A copy of ``net`` that evaluates ``field`` as its ``f`` (``f``'s PyTorch weights are not copied)."""
    owner, attr, _ = field_slot(net)
    return copy.deepcopy(net, {id(getattr(owner, attr)): field})


def measured_times(path, func, field, in_channels, rounds=3):
    """Seconds per evaluation of ``f`` on a :data:`PROBE_SIDE`-pixel input in each runtime, interleaved
    (ABAB) so that a loaded machine slows both alike; cached beside the graph per CPU and thread count.

    Returns:
        dict: ``{'torch': s, 'onnxruntime': s, 'side': pixels}``.
    """
    key = f'{_cpu_name() or platform.machine()}, threads={torch.get_num_threads()}'
    record_path = path[:-len('.onnx')] + '.json'
    try:
        with open(record_path) as f:
            records = json.load(f)
        if isinstance(records, dict) and isinstance(records.get(key), dict):
            return records[key]
    except (OSError, ValueError):
        records = {}
    k = field.size_multiple
    x = torch.rand(1, in_channels, -(-PROBE_SIDE // k) * k, -(-PROBE_SIDE // k) * k, generator=torch.Generator()
                   .manual_seed(0)).contiguous(memory_format=torch.channels_last)
    fns = {'torch': func, 'onnxruntime': field}
    totals = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn(x)  # warm-up
        for _ in range(rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(x)
                totals[name].append(time.perf_counter() - start)
    result = {name: sorted(ts)[len(ts) // 2] for name, ts in totals.items()}
    result['side'] = x.shape[-1]
    records = dict(records if isinstance(records, dict) else {}, **{key: result})
    try:
        atomic_write(record_path, lambda tmp: _write_json(tmp, records))
    except OSError:
        pass  # a read-only cache only costs a measurement next time
    return result


def _write_json(path, data):
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)


def _cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), '')
    except OSError:
        return ''
