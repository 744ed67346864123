"""Export a training checkpoint as a bundled model: ``nodesr_arch/weights/NAME.pth`` + ``NAME.yml``.

Keeps only the weights the model uses at inference (the EMA weights when present, saved as
``params``) and writes beside them a YAML with the network options and where the weights came from.

    python scripts/export_weights.py --opt options/train/train_NODEVDSR_S_bundled.yml \
        --ckpt experiments/NODEVDSR_S_bundled/models/net_g_2000.pth --name NODEVDSR_S
"""
import argparse
import os

import torch
import yaml

import nodesr_arch  # noqa: F401  (applies the BasicSR compatibility fixes)
from basicsr.archs import build_network
from nodesr_arch.models.checkpoint import atomic_torch_save

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, 'nodesr_arch', 'weights')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--opt', required=True, help='training option YAML (its network_g is used)')
    parser.add_argument('--ckpt', required=True, help='BasicSR checkpoint net_g_*.pth')
    parser.add_argument('--name', required=True, help='bundled model name, e.g. NODEVDSR_S')
    parser.add_argument('--note', default='', help='one line on how it was trained')
    parser.add_argument('--out', default=WEIGHTS_DIR)
    args = parser.parse_args()
    with open(args.opt) as f:
        opt = yaml.safe_load(f)
    state = torch.load(args.ckpt, map_location='cpu', weights_only=True)
    key = 'params_ema' if 'params_ema' in state else 'params'
    params = {k[7:] if k.startswith('module.') else k: v for k, v in state[key].items()}
    net = build_network(dict(opt['network_g']))
    net.load_state_dict(params, strict=True)  # the weights fit the options
    os.makedirs(args.out, exist_ok=True)
    atomic_torch_save({'params': params}, os.path.join(args.out, f'{args.name}.pth'))
    meta = {
        'name': args.name,
        'network_g': opt['network_g'],
        'trained_with': f'nodesr train -opt {os.path.relpath(args.opt)}',
        'checkpoint': f'{os.path.basename(args.ckpt)} ({key})',
        'parameters': sum(p.numel() for p in net.parameters()),
    }
    if args.note:
        meta['note'] = args.note
    with open(os.path.join(args.out, f'{args.name}.yml'), 'w') as f:
        yaml.safe_dump(meta, f, sort_keys=False)
    print(f"wrote {args.out}/{args.name}.pth ({meta['parameters']} parameters, {key}) and {args.name}.yml")


if __name__ == '__main__':
    main()
