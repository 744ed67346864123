"""Pack the training and evaluation images for the GPU training run (scripts/gpu_train.sh) into one small folder.

The device machine receives the working tree plus the carried paths, 64 MiB in all. T91 + BSD200 as PNG hold
61 MB; recompressed as lossless WebP (pixel-identical, checked on every image) and without the images whose short
side is under ``--min-side`` (the training patch; 57 of T91's 91 are under 200 px) they fit beside the code and
the wheels. Set5 and Set14 (the evaluation) are packed the same way, all images kept.

    python scripts/pack_train_data.py --src ../shared/data --dest .gpudata [--min-side 200] [--format webp]

Layout written (the folder names the option files of options/train/*_gpu.yml expect):
``DEST/train/{BSD200,T91}/HR``, ``DEST/benchmark/{Set5,Set14}/HR`` and ``DEST/pack.json`` (sources, counts,
bytes). The folder is written beside DEST first and renamed into place at the end, so an interrupted run
leaves no half-packed DEST; an existing DEST is replaced only with ``--force``.
"""
import argparse
import json
import os
import shutil
import sys

import cv2
import numpy as np

from nodesr_arch.file_io import list_images

SETS = {'train': ('BSD200', 'T91'), 'benchmark': ('Set5', 'Set14')}
ENCODE = {'webp': ('.webp', [cv2.IMWRITE_WEBP_QUALITY, 101]),  # quality > 100: lossless
          'png': ('.png', [cv2.IMWRITE_PNG_COMPRESSION, 9])}


def pack_image(src, dest_stem, fmt):
    """Write ``src`` losslessly as ``dest_stem`` + the format's extension; return the bytes written.

    Raises:
        ValueError: the file does not decode, or its re-encoding does not decode to the same pixels.
    """
    img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot decode {src}')
    ext, params = ENCODE[fmt]
    if fmt == 'webp' and (img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3):
        ext, params = ENCODE['png']  # WebP holds 8-bit RGB here: 16-bit, grey (the dataset's `grey`) and RGBA stay PNG
    ok, buf = cv2.imencode(ext, img, params)
    back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
    if back is None or back.shape != img.shape or not np.array_equal(back, img):
        raise ValueError(f'{src}: the {ext} encoding is not pixel-identical')
    with open(dest_stem + ext, 'wb') as f:
        f.write(buf.tobytes())
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
    tmp = dest.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    report = {'src': os.path.abspath(src), 'format': fmt, 'min_side': min_side, 'sets': {}}
    try:
        for group, names in SETS.items():
            for name in names:
                folder = os.path.join(src, group, name, 'HR')
                if not os.path.isdir(folder):
                    raise FileNotFoundError(f'no {folder}')
                out = os.path.join(tmp, group, name, 'HR')
                os.makedirs(out)
                kept = dropped = src_bytes = dest_bytes = 0
                for path in list_images(folder):
                    h, w = cv2.imread(path, cv2.IMREAD_UNCHANGED).shape[:2]
                    if group == 'train' and min(h, w) < min_side:
                        dropped += 1
                        continue
                    stem = os.path.join(out, os.path.splitext(os.path.basename(path))[0])
                    dest_bytes += pack_image(path, stem, fmt)
                    src_bytes += os.path.getsize(path)
                    kept += 1
                report['sets'][f'{group}/{name}'] = {'images': kept, 'dropped': dropped, 'src_bytes': src_bytes,
                                                     'bytes': dest_bytes}
        report['bytes'] = sum(s['bytes'] for s in report['sets'].values())
        with open(os.path.join(tmp, 'pack.json'), 'w') as f:
            json.dump(report, f, indent=1)
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
