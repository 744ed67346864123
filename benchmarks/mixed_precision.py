"""Benchmark 7: what bf16 costs in PSNR and gains in time, and why the ODE state stays fp32.

The bundled model on a benchmark set (mod-crop, Y channel, border = scale) at each scale, three ways:
fp32; ``amp: bf16`` as shipped (f under bf16 autocast, the ODE state and the solver's sums in fp32);
and everything in bf16 (weights, input and so the ODE state: what ``net.bfloat16()`` would give). Time is
the network's total over the set, the three precisions interleaved image by image, so a loaded machine
slows them alike.

    python -m benchmarks.mixed_precision --data ../shared/data/benchmark/Set5 --scales 2 4
"""
import argparse
import time

import numpy as np
import torch

from benchmarks.common import machine
from nodesr_arch.api import load_model
from nodesr_arch.data.scale_space import enlarge, make_pair
from nodesr_arch.file_io import list_images, read_image, resolve_dataset
from nodesr_arch.metrics import image_metrics

MODES = ('fp32', 'amp bf16 (fp32 state)', 'all bf16 (bf16 state)')


def run(net, x, scale, mode):
    """The network's output in fp32 under ``mode``."""
    if mode == MODES[1]:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return net(x, scale).float()
    if mode == MODES[2]:
        return net.bfloat16()(x.bfloat16(), scale).float()
    return net.float()(x, scale)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', required=True, help='a dataset folder (with HR/ inside) or an HR folder')
    parser.add_argument('--scales', type=float, nargs='+', default=[2.0, 4.0])
    parser.add_argument('--model', default=None, help='default: the bundled NODEVDSR_S')
    args = parser.parse_args()
    print(machine())
    name, hr_dir, _ = resolve_dataset(args.data)
    images = [read_image(p, as_float=True) for p in list_images(hr_dir)]
    net = load_model(args.model).net
    print(f'\n{name}, {len(images)} images, mod-crop, PSNR (dB, Y) / network time (s)\n')
    print('| scale | ' + ' | '.join(MODES) + ' | amp - fp32 (dB) | all bf16 - fp32 (dB) |')
    print('|---' * (len(MODES) + 3) + '|')
    for s in args.scales:
        psnr = {m: [] for m in MODES}
        seconds = dict.fromkeys(MODES, 0.0)
        for img, grey, levels in images:
            lr, gt, out = make_pair(img, s, 'modcrop', True, levels)
            x = torch.from_numpy(enlarge(lr, s, out).transpose(2, 0, 1).copy())[None]
            x = x.contiguous(memory_format=torch.channels_last)
            for mode in MODES:
                start = time.perf_counter()
                with torch.inference_mode():
                    y = run(net, x, s, mode)
                seconds[mode] += time.perf_counter() - start
                psnr[mode].append(image_metrics(y[0].numpy().transpose(1, 2, 0), gt, s, grey)['psnr'])
        mean = {m: float(np.mean(v)) for m, v in psnr.items()}
        cells = [f'{mean[m]:.4f} / {seconds[m]:.2f}' for m in MODES]
        print(f'| x{s:g} | ' + ' | '.join(cells) + f' | {mean[MODES[1]] - mean[MODES[0]]:+.4f} | '
              f'{mean[MODES[2]] - mean[MODES[0]]:+.4f} |')


if __name__ == '__main__':
    main()
