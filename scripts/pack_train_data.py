"""Pack the training and evaluation images for the GPU training run (scripts/gpu_train.sh) into one small folder.

The device machine receives the working tree plus the carried paths, 64 MiB in all. T91 + BSD200 as PNG hold
61 MB; recompressed as lossless WebP (pixel-identical, checked on every image) and without the images whose short
side is under ``--min-side`` (the training patch; 57 of T91's 91 are under 200 px) they fit beside the code and
the wheels. Set5 and Set14 (the evaluation) are packed the same way, all images kept.

    python scripts/pack_train_data.py --src ../shared/data --dest .gpudata [--min-side 200] [--format webp]

Layout written (the folder names the option files of options/train/*_gpu.yml expect):
``DEST/train/{BSD200,T91}/HR``, ``DEST/benchmark/{Set5,Set14}/HR`` and ``DEST/pack.json`` (sources, counts,
bytes). The folder is written beside DEST first and renamed into place at the end
(:func:`nodesr_arch.file_io.atomic_write`), so an interrupted run leaves no half-packed DEST; an existing DEST is
replaced only with ``--force``.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

from nodesr_arch import file_io
from nodesr_arch.file_io import list_images

SETS = {'train': ('BSD200', 'T91'), 'benchmark': ('Set5', 'Set14')}
ENCODE = {'webp': ('.webp', [cv2.IMWRITE_WEBP_QUALITY, 101]),  # quality > 100: lossless
          'png': ('.png', [cv2.IMWRITE_PNG_COMPRESSION, 9])}


def pack_image(src, img, dest_stem, fmt):
    """Write ``src``'s image losslessly as ``dest_stem`` + the format's extension; return the bytes written.

    Args:
        src (str): The image file, for messages.
        img (ndarray): Its pixels, as :func:`nodesr_arch.file_io.read_image` gives them.
        dest_stem (str): The output path without extension.
        fmt (str): 'webp' or 'png'.

    Raises:
        ValueError: its re-encoding does not decode to the same pixels.
    """
    ext, params = ENCODE[fmt]
    if fmt == 'webp' and (img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3):
        ext, params = ENCODE['png']  # WebP holds 8-bit RGB here: 16-bit, grey (the dataset's `grey`) and RGBA stay PNG
    try:
        buf = file_io.encode_image(ext, img, params)
        back = file_io.decode_image(buf, src)
    except ValueError:  # ImageWriteError, ImageReadError
        back = None
    if back is None or back.shape != img.shape or not np.array_equal(back, img):
        raise ValueError(f'{src}: the {ext} encoding is not pixel-identical')
    file_io.write_bytes(dest_stem + ext, buf)
    return len(buf)


def pack(src, dest, min_side=200, fmt='webp', force=False):
    """Pack ``src/{train,benchmark}/<set>/HR`` into ``dest`` (see the module docstring).

    Args:
        src (str): The data folder holding ``train/`` and ``benchmark/``.
        dest (str): The folder to write.
        min_side (int): Training images whose short side is under this are left out (0: keep all).
        fmt (str): 'webp' (lossless) or 'png'.
        force (bool): Replace an existing ``dest``.

    Returns:
        dict: What ``pack.json`` holds.
    """
    if os.path.exists(dest) and not force:
        raise FileExistsError(f'{dest} exists (use --force to replace it)')
    report = {'src': os.path.abspath(src), 'format': fmt, 'min_side': min_side, 'sets': {}}

    def write(tmp):
        for group, names in SETS.items():
            for name in names:
                folder = os.path.join(src, group, name, 'HR')
                if not os.path.isdir(folder):
                    raise FileNotFoundError(f'no {folder}')
                out = os.path.join(tmp, group, name, 'HR')
                os.makedirs(out)
                kept = dropped = src_bytes = dest_bytes = 0
                for path in list_images(folder):
                    try:
                        img = file_io.read_image(path)
                    except file_io.ImageReadError:
                        raise ValueError(f'cannot decode {path}') from None
                    if group == 'train' and min(img.shape[:2]) < min_side:
                        dropped += 1
                        continue
                    stem = os.path.join(out, os.path.splitext(os.path.basename(path))[0])
                    dest_bytes += pack_image(path, img, stem, fmt)
                    src_bytes += os.path.getsize(path)
                    kept += 1
                report['sets'][f'{group}/{name}'] = {'images': kept, 'dropped': dropped, 'src_bytes': src_bytes,
                                                     'bytes': dest_bytes}
        report['bytes'] = sum(s['bytes'] for s in report['sets'].values())
        file_io.write_bytes(os.path.join(tmp, 'pack.json'), json.dumps(report, indent=1))

    file_io.atomic_write(os.path.normpath(dest), write)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', required=True,
                        help='data folder with train/{BSD200,T91}/HR, benchmark/{Set5,Set14}/HR')
    parser.add_argument('--dest', default='.gpudata', help='folder to write (default .gpudata, ignored by git)')
    parser.add_argument('--min-side', type=int, default=200, help='leave out training images with a shorter side')
    parser.add_argument('--format', choices=sorted(ENCODE), default='webp')
    parser.add_argument('--force', action='store_true', help='replace an existing DEST')
    args = parser.parse_args(argv)
    try:
        report = pack(args.src, args.dest, args.min_side, args.format, args.force)
    except (OSError, ValueError) as e:
        print(f'pack_train_data: {e}', file=sys.stderr)
        return 2
    for name, s in report['sets'].items():
        dropped = f" ({s['dropped']} under {args.min_side} px left out)" if name.startswith('train/') else ''
        print(f"{name}: {s['images']} images{dropped}, "
              f"{s['src_bytes'] / 2**20:.1f} MiB -> {s['bytes'] / 2**20:.1f} MiB")
    print(f"pack_train_data: {report['bytes'] / 2**20:.1f} MiB in {args.dest}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
