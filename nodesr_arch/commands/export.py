"""``nodesr export``: a NODE-SR model as an ONNX graph, the fixed-step solver unrolled, any H x W.

    nodesr export -o nodesr_x4.onnx --scale 4                 # the bundled model, scale fixed in the graph
    nodesr export -o nodesr.onnx --scale-input                # the scale as a second input, steps as nodesr infer
    nodesr export -o nodesr3.onnx --scale-input --steps 3     # ... 3 rk4 steps at every scale
    nodesr export -o rdn_x2.onnx --model experiments/NODERDN_DIV2K/models/net_g_latest.pth --scale 2

The graph takes ``x``: float32 (B, 3, H, W), RGB in [0, 1], the LR image already enlarged bicubically to
the output size (``I(s)``, as the network's own ``forward`` takes it; MATLAB bicubic:
``nodesr_arch.inference.enlarge_to``), and with ``--scale-input`` also ``scale``: float32 (B,), each >= 1.
With ``--scale-input`` and no ``--steps``, each sample takes the steps ``nodesr infer`` takes at its scale
(the model's ``step_size`` rule, computed in the graph), up to the count at ``--max-scale`` (default 4),
which the graph unrolls; larger scales take that count (the file's metadata says so). A graph unrolls at
most 100 steps (``nodesr_arch.unrolled.MAX_STEPS``). It returns ``sr`` (B, 3, H, W), unclipped. Batch,
height and width are dynamic. The export goes through
``torch.export`` (``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``); the solve is
:class:`nodesr_arch.unrolled.UnrolledNODE`. With onnxruntime installed the graph is then run at two sizes
and compared with the PyTorch model (torchdiffeq's solver); a maximum absolute difference above 1e-4
fails the command. Install the tools with ``pip install "nodesr_arch[onnx]"``.
"""
import argparse
import copy
import importlib.util
import os
import sys
import warnings

import numpy as np
import torch

TOLERANCE = 1e-4
INPUT_DOC = ('x: float32 (B, 3, H, W) RGB in [0, 1], the LR image enlarged with MATLAB bicubic to the output size '
             '(nodesr_arch.inference.enlarge_to){scale}; output sr: (B, 3, H, W), unclipped; H and W multiples of '
             '{multiple}')


def export_onnx(net, path, scale=None, num_steps=None, method=None, opset=None, metadata=None, max_scale=None):
    """Write ``net``'s solve, unrolled, as an ONNX graph with dynamic batch, height and width.

    Args:
        net (NODEBase): A NODE-SR network, fp32, on the CPU.
        path (str): The ``.onnx`` file to write.
        scale (float | None): Scale fixed in the graph; None: the scale is the graph's second input.
        num_steps (int | None), method (str | None), max_scale (float | None): See
            :class:`nodesr_arch.unrolled.UnrolledNODE`.
        opset (int | None): ONNX opset. Default: the exporter's.
        metadata (dict | None): More ``metadata_props`` to store in the file.

    Returns:
        UnrolledNODE: The module that was exported (its ``num_steps``, ``method``, ``scale``).

    Raises:
        ImportError: onnx or onnxscript is missing.
        ValueError: See :class:`nodesr_arch.unrolled.UnrolledNODE`.
    """
    from nodesr_arch.unrolled import UnrolledNODE

    module = UnrolledNODE(net, scale, num_steps, method, max_scale).eval()
    for name in ('onnx', 'onnxscript'):  # after the settings are checked: a wrong setting is named first
        if importlib.util.find_spec(name) is None:
            raise ImportError(f'{name} is not installed: pip install "nodesr_arch[onnx]"')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    k = module.size_multiple
    batch = torch.export.Dim('batch', min=1)
    height, width = (torch.export.Dim(n, min=2) for n in ('height', 'width'))
    if k > 1:  # padding to a multiple of k would be a data-dependent choice: the graph takes multiples of k
        height, width = k * torch.export.Dim('height_k', min=1), k * torch.export.Dim('width_k', min=1)
    x = torch.rand(1, 3, 16 * k, 16 * k)
    args, names, shapes = (x, ), ['x'], [{0: batch, 2: height, 3: width}]
    if scale is None:
        args, names, shapes = (x, torch.tensor([2.0])), names + ['scale'], shapes + [{0: batch}]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings('ignore', message='.*axis name.*will not be used')  # x and scale share 'batch'
        program = torch.onnx.export(module, args, dynamo=True, input_names=names, output_names=['sr'],
                                    dynamic_shapes=tuple(shapes), opset_version=opset, verbose=False)
    program.save(path)
    _add_metadata(path, {
        'nodesr.scale': 'input' if scale is None else f'{module.scale:g}',
        'nodesr.method': module.method,
        'nodesr.num_steps': str(module.num_steps) if module.step_size is None else steps_rule(module),
        'nodesr.size_multiple': str(k),
        'nodesr.io': INPUT_DOC.format(scale='' if scale is not None else '; scale: float32 (B,), each >= 1',
                                      multiple=k),
        **(metadata or {}),
    })
    return module


def steps_rule(module):
    """The step rule of a graph whose steps follow the scale, in words (metadata and ``nodesr export``'s line)."""
    span = 'sqrt(s - 1)' if module.time == 'sqrt' else '(s - 1)'
    return (f'ceil({span} / {module.step_size:g}) at scale s, as nodesr infer; at most {module.num_steps} '
            f'(x{module.max_scale:g}; larger scales take {module.num_steps}, fewer than nodesr infer)')


def _add_metadata(path, props):
    import onnx

    model = onnx.load(path)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, path)


def reference_network(net, module):
    """A copy of ``net`` solving as ``module`` does (its method and step count) with torchdiffeq.

    At a fixed scale, ``num_steps`` equal steps are the grid the network's own ``step_size`` gives there;
    a graph whose steps follow the scale keeps the network's ``step_size``.
    """
    if module.step_size is not None:
        return copy.deepcopy(net).set_ode(method=module.method)
    return copy.deepcopy(net).set_ode(method=module.method, num_steps=max(1, module.num_steps))


def check_onnx(path, net, module, sizes=((1, 48, 40), (2, 37, 53))):
    """Largest absolute difference between the ONNX graph (onnxruntime) and the PyTorch network.

    Args:
        path (str): The exported file.
        net (NODEBase): The network, run with torchdiffeq's solver at the settings of ``module``.
        module (UnrolledNODE): What :func:`export_onnx` returned.
        sizes (tuple[tuple[int, int, int]]): (B, H, W) of the random inputs (rounded up to the size multiple).

    Returns:
        float: The maximum absolute difference over all sizes.
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    ref = reference_network(net, module)
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    k = module.size_multiple
    for b, h, w in sizes:
        x = torch.rand(b, 3, -(-h // k) * k, -(-w // k) * k, generator=gen)
        top = module.max_scale or 4
        scale = module.scale if module.scale is not None else 1 + (top - 1) * torch.rand(b, generator=gen)
        feed = {'x': x.numpy()}
        if module.scale is None:
            feed['scale'] = scale.numpy()
        out = session.run(None, feed)[0]
        with torch.no_grad():  # one sample at a time: a batch of torchdiffeq takes its largest scale's steps
            expected = torch.cat([ref(x[i:i + 1], scale if module.scale is not None else scale[i:i + 1])
                                  for i in range(b)]).numpy()
        worst = max(worst, float(np.abs(out - expected).max()))
    return worst


def build_parser():
    p = argparse.ArgumentParser(prog='nodesr export', description=__doc__.split('\n\n')[0].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    p.add_argument('-o', '--output', required=True, help='the .onnx file to write')
    p.add_argument('--model', default=None,
                   help='checkpoint (.pth), option YAML or bundled model name (default: the bundled NODEVDSR_S)')
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument('--scale', type=float, help='the scale, fixed in the graph (any real >= 1)')
    which.add_argument('--scale-input', action='store_true',
                       help='the scale as the graph\'s second input "scale" (B,); steps as nodesr infer takes them '
                       'up to --max-scale, or --steps at every scale')
    p.add_argument('--steps', type=int, default=None,
                   help="solver steps, at most 100 (default: the model's count at --scale; with --scale-input, "
                   "the model's count at each sample's scale)")
    p.add_argument('--max-scale', type=float, default=4.0,
                   help="with --scale-input and no --steps: the largest scale whose step count the graph holds "
                   "(default 4)")
    p.add_argument('--method', default=None, help="fixed-step method: rk4, euler, midpoint, heun2, heun3 "
                   "(default: the model's)")
    p.add_argument('--opset', type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument('--no-check', action='store_true', help='do not compare the graph with PyTorch in onnxruntime')
    p.add_argument('-f', '--force', action='store_true', help='overwrite the output')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f'nodesr export: error: {e}', file=sys.stderr)
        return 1


def run(args):
    """Run ``nodesr export`` with parsed arguments."""
    from nodesr_arch.api import load_model

    if os.path.exists(args.output) and not args.force:
        raise ValueError(f'{args.output} exists; not overwritten (use --force)')
    up = load_model(args.model)
    if not up.is_ode:
        raise ValueError(f'{up.name} ({type(up.net).__name__}) is not a NODE model; '
                         'nodesr export writes NODE-SR solves')
    net = up.net.to(memory_format=torch.contiguous_format)
    module = export_onnx(net, args.output, None if args.scale_input else args.scale, args.steps, args.method,
                         args.opset, metadata={'nodesr.model': up.name}, max_scale=args.max_scale)
    what = 'scale input' if module.scale is None else f'x{module.scale:g}'
    steps = f' x {module.num_steps} steps' if module.step_size is None else f', steps {steps_rule(module)}'
    print(f'wrote {args.output}: {up.name}, {what}, {module.method}{steps}, dynamic batch x H x W'
          + (f' (multiples of {module.size_multiple})' if module.size_multiple > 1 else ''))
    if args.no_check:
        return 0
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('onnxruntime is not installed: the graph was not checked (pip install "nodesr_arch[onnx]")')
        return 0
    diff = check_onnx(args.output, net, module)
    print(f'onnxruntime vs PyTorch: max abs difference {diff:.2e} (tolerance {TOLERANCE:g})')
    if diff > TOLERANCE:
        print(f'nodesr export: error: the graph differs from the PyTorch model by {diff:.2e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
