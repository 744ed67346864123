"""Export a training checkpoint as a bundled model: ``nodesr_arch/weights/NAME.pth`` + ``NAME.yml``.

Keeps only the weights the model uses at inference, in BasicSR's layout: with EMA (``params_ema`` in
the checkpoint) the EMA weights under ``params_ema`` and, as the same tensors (stored once), under
``params``, so every BasicSR loader gets the weights the docs measure whatever ``param_key`` it asks
for (``load_network``'s default is ``params``, the test options' ``params_ema``); without EMA the
weights under ``params`` alone. The training checkpoint keeps the raw weights for fine-tuning. Beside
the weights it writes a YAML with the network options, where the weights came from and what each key
holds.

    python scripts/export_weights.py --opt options/train/train_NODEVDSR_S_bundled.yml \
        --ckpt experiments/NODEVDSR_S_bundled/models/net_g_2000.pth --name NODEVDSR_S

``--update PTH ...`` rewrites files exported by an earlier version of this script in this layout,
tensors unchanged (their sidecar's ``checkpoint: ... (params_ema)`` says they hold EMA weights).
"""
import argparse
import os

import torch
import yaml

import nodesr_arch  # noqa: F401  (applies the BasicSR compatibility fixes)
from basicsr.archs import build_network
from nodesr_arch.file_io import write_bytes
from nodesr_arch.models.checkpoint import atomic_torch_save
from nodesr_arch.option_files import plain_data, read_yaml
from nodesr_arch.solver_metadata import attach_solver

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, 'nodesr_arch', 'weights')
EMA_NOTE = 'params_ema: the EMA weights; params: the same tensors (stored once)'
PLAIN_NOTE = 'params: the trained weights (no EMA)'


def bundle(params, ema):
    """The dict saved for ``params`` (a state dict): both BasicSR keys with EMA weights, else ``params``."""
    return {'params': params, 'params_ema': params} if ema else {'params': params}


def check_fits(network_g, params):
    """Build ``network_g`` and load ``params`` strictly; return the network and its parameter count."""
    net = build_network(dict(network_g))
    net.load_state_dict(params, strict=True)
    return net, sum(p.numel() for p in net.parameters())


def export(opt_path, ckpt, name, out, note=''):
    """Write ``out/NAME.pth`` and ``out/NAME.yml`` from a BasicSR training checkpoint."""
    opt = read_yaml(opt_path)
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    key = 'params_ema' if 'params_ema' in state else 'params'
    params = {k[7:] if k.startswith('module.') else k: v for k, v in state[key].items()}
    net, count = check_fits(opt['network_g'], params)
    params = attach_solver(params, net)  # the solver and the options no shape shows, for spandrel
    os.makedirs(out, exist_ok=True)
    atomic_torch_save(bundle(params, key == 'params_ema'), os.path.join(out, f'{name}.pth'))
    meta = {
        'name': name,
        'network_g': plain_data(opt['network_g']),
        'trained_with': f'nodesr train -opt {os.path.relpath(opt_path)}',
        'checkpoint': f'{os.path.basename(ckpt)} ({key})',
        'parameters': count,
    }
    if note:
        meta['note'] = note
    meta['weights'] = EMA_NOTE if key == 'params_ema' else PLAIN_NOTE
    write_bytes(os.path.join(out, f'{name}.yml'), yaml.safe_dump(meta, sort_keys=False))
    print(f'wrote {out}/{name}.pth ({count} parameters, {key}) and {name}.yml')


def update(pth):
    """Rewrite an exported ``NAME.pth`` (and its sidecar's ``weights`` line) in the current layout."""
    sidecar = os.path.splitext(pth)[0] + '.yml'
    meta = read_yaml(sidecar, what='sidecar YAML')
    ema = str(meta.get('checkpoint', '')).endswith('(params_ema)')
    state = torch.load(pth, map_location='cpu', weights_only=True)
    params = state['params_ema' if 'params_ema' in state else 'params']
    check_fits(meta['network_g'], params)
    atomic_torch_save(bundle(params, ema), pth)
    meta['weights'] = EMA_NOTE if ema else PLAIN_NOTE
    write_bytes(sidecar, yaml.safe_dump(plain_data(meta), sort_keys=False))
    print(f'rewrote {pth} ({", ".join(bundle(params, ema))}) and {os.path.basename(sidecar)}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--opt', help='training option YAML (its network_g is used)')
    parser.add_argument('--ckpt', help='BasicSR checkpoint net_g_*.pth')
    parser.add_argument('--name', help='bundled model name, e.g. NODEVDSR_S')
    parser.add_argument('--note', default='', help='one line on how it was trained')
    parser.add_argument('--out', default=WEIGHTS_DIR)
    parser.add_argument('--update', nargs='+', metavar='PTH', help='rewrite exported files in the current layout')
    args = parser.parse_args()
    if args.update:
        for pth in args.update:
            update(pth)
        return
    if not (args.opt and args.ckpt and args.name):
        parser.error('--opt, --ckpt and --name are required (unless --update)')
    export(args.opt, args.ckpt, args.name, args.out, args.note)


if __name__ == '__main__':
    main()
