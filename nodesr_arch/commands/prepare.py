"""``nodesr prepare``: training LMDBs and benchmark LR sets.

    nodesr prepare lmdb INPUT_DIR OUTPUT.lmdb [--extract [--crop-size 480 --step 240 --thresh-size 0]]
    nodesr prepare lr --data DIR [DIR ...] --scales 2 3 4 1.1:4.0:0.1 [--protocol metasr]

``lmdb`` writes with BasicSR's own ``make_lmdb_from_imgs`` (keys = file stems, ``meta_info.txt``), after
optional sub-image extraction as BasicSR's ``scripts/data_preparation/extract_subimages.py`` does it.
``lr`` writes ``<dataset>/LR_bicubic/X{scale:.2f}/<name>.png`` under a benchmark protocol, so other
frameworks can be evaluated on identical inputs. Nothing existing is overwritten without ``--force``, and
outputs are built under a temporary name and renamed when complete (:func:`nodesr_arch.file_io.atomic_write`).
"""
import argparse
import os
import sys
from multiprocessing import Pool

import cv2
import numpy as np
from PIL import Image

import nodesr_arch  # noqa: F401  (BasicSR compatibility fixes before basicsr is imported)
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from nodesr_arch.data.scale_space import PROTOCOLS, make_pair, parse_scales
from nodesr_arch.file_io import (ImageReadError, ImageWriteError, atomic_write, list_images, read_image,
                                 resolve_dataset, to_pixels, write_image)


class PrepareError(Exception):
    """A refusal or bad input; the message says what to do."""


def _check_free(path, force):
    if os.path.exists(path) and not force:
        raise PrepareError(f'{path} already exists; pass --force to replace it')


def _read(path):
    try:
        return read_image(path)
    except (FileNotFoundError, ImageReadError):
        raise PrepareError(f'cannot read image {path}') from None


def _write(path, img, params=()):
    try:
        write_image(path, img, params=params)
    except (OSError, ImageWriteError):
        raise PrepareError(f'cannot write {path}') from None


def _starts(n, crop_size, step, thresh_size):
    """Crop origins along one axis, as BasicSR's extract_subimages (an axis shorter than a crop: one crop)."""
    if n <= crop_size:
        return [0]
    starts = list(range(0, n - crop_size + 1, step))
    if n - (starts[-1] + crop_size) > thresh_size:
        starts.append(n - crop_size)
    return starts


def _extract_worker(args):
    path, out_dir, crop_size, step, thresh_size, compress_level = args
    img = _read(path)
    name, ext = os.path.splitext(os.path.basename(path))
    h, w = img.shape[:2]
    index = 0
    for y in _starts(h, crop_size, step, thresh_size):
        for x in _starts(w, crop_size, step, thresh_size):
            index += 1
            crop = np.ascontiguousarray(img[y:y + crop_size, x:x + crop_size, ...])
            out = os.path.join(out_dir, f'{name}_s{index:03d}{ext}')
            _write(out, crop, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    return index


def extract_subimages(input_dir, out_dir, crop_size=480, step=240, thresh_size=0, n_thread=1, compress_level=3):
    """Cut every image of ``input_dir`` into ``crop_size`` squares every ``step`` pixels.

    Same crops and names (``{stem}_s{index:03d}{ext}``) as BasicSR's ``extract_subimages.py``; a
    remainder wider than ``thresh_size`` gets one more crop flush with the edge.

    Args:
        input_dir (str): Folder of images.
        out_dir (str): Destination folder (created; must not exist).
        crop_size (int): Sub-image size. Default: 480.
        step (int): Stride. Default: 240.
        thresh_size (int): Smallest remainder that gets its own crop. Default: 0.
        n_thread (int): Worker processes. Default: 1.
        compress_level (int): PNG compression level. Default: 3.

    Returns:
        int: Number of sub-images written.
    """
    paths = list_images(input_dir)
    if not paths:
        raise PrepareError(f'no images in {input_dir}')
    os.makedirs(out_dir)
    jobs = [(p, out_dir, crop_size, step, thresh_size, compress_level) for p in paths]
    if n_thread > 1:
        with Pool(n_thread) as pool:
            counts = pool.map(_extract_worker, jobs)
    else:
        counts = [_extract_worker(job) for job in jobs]
    return sum(counts)


def _map_size(paths):
    """An LMDB map size that surely fits the images (raw size from headers; virtual, so generous is free)."""
    total = 0
    for p in paths:
        with Image.open(p) as im:
            total += im.size[0] * im.size[1] * 8  # up to 4 channels of 16 bits
    return int(total * 1.2) + (64 << 20)


def make_lmdb(input_dir, lmdb_path, force=False, compress_level=1):
    """LMDB of every image in ``input_dir`` with BasicSR's ``make_lmdb_from_imgs`` (keys: file stems).

    Args:
        input_dir (str): Folder of images.
        lmdb_path (str): Output, ending in ``.lmdb``.
        force (bool): Replace an existing ``lmdb_path``. Default: False.
        compress_level (int): PNG level inside the LMDB. Default: 1.
    """
    if not lmdb_path.endswith('.lmdb'):
        raise PrepareError(f"the LMDB path must end with '.lmdb': {lmdb_path}")
    _check_free(lmdb_path, force)
    paths = list_images(input_dir)
    if not paths:
        raise PrepareError(f'no images in {input_dir}')
    names = [os.path.basename(p) for p in paths]
    keys = [os.path.splitext(n)[0] for n in names]
    seen = {}
    for name, key in zip(names, keys):
        if not key.isascii() or ' ' in key:
            raise PrepareError(f'{name}: LMDB keys must be ASCII without spaces')
        if key in seen:
            raise PrepareError(f'{seen[key]} and {name} would share the LMDB key {key!r}')
        seen[key] = name
    map_size = _map_size(paths)
    atomic_write(lmdb_path, lambda tmp: make_lmdb_from_imgs(input_dir, tmp, names, keys, compress_level=compress_level,
                                                            map_size=map_size))
    return len(keys)


def _write_lr_set(folder, paths, s, protocol):
    """Make ``folder`` and write the LR image of each of ``paths`` into it."""
    os.makedirs(folder)
    for p in paths:
        img, grey, levels = read_image(p, as_float=True)
        lr, _, _ = make_pair(img, s, protocol, True, levels)
        lr = to_pixels(lr, np.uint8 if levels == 255 else np.uint16)
        _write(os.path.join(folder, os.path.splitext(os.path.basename(p))[0] + '.png'), lr[..., 0] if grey else lr)


def make_lr_sets(datasets, scales, protocol='metasr', out=None, force=False):
    """Write benchmark LR images: ``<root>/LR_bicubic/X{scale:.2f}/<stem>.png`` for each dataset and scale.

    Args:
        datasets (list[str]): ``DIR`` or ``NAME=DIR`` (see :func:`nodesr_arch.file_io.resolve_dataset`).
        scales (list[float]): Scales.
        protocol (str): 'metasr' (default) or 'modcrop'.
        out (str | None): Write to ``out/<name>/LR_bicubic/...`` instead of next to the HR folder.
        force (bool): Replace existing scale folders. Default: False.

    Returns:
        list[str]: The folders written.
    """
    plans = []
    for spec in datasets:
        name, hr_dir, root = resolve_dataset(spec)
        base = os.path.join(out, name) if out else root
        paths = list_images(hr_dir)
        if not paths:
            raise PrepareError(f'no images in {hr_dir}')
        for s in scales:
            folder = os.path.join(base, 'LR_bicubic', f'X{s:.2f}')
            _check_free(folder, force)
            plans.append((paths, s, folder))
    written = []
    for paths, s, folder in plans:
        atomic_write(folder, lambda tmp: _write_lr_set(tmp, paths, s, protocol))
        written.append(folder)
        print(f'{folder}: {len(paths)} images (x{s:g}, {protocol})')
    return written


def build_parser():
    parser = argparse.ArgumentParser(prog='nodesr prepare', description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='what', required=True)
    p = sub.add_parser('lmdb', help='LMDB of a GT folder (optionally cut into sub-images first)')
    p.add_argument('input', help='folder of GT images (e.g. DIV2K/DIV2K_train_HR)')
    p.add_argument('output', help='LMDB path ending in .lmdb')
    p.add_argument('--extract', action='store_true', help='cut into sub-images first (for DIV2K-sized images)')
    p.add_argument('--sub-dir', help='where sub-images go (default: INPUT_sub)')
    p.add_argument('--crop-size', type=int, default=480)
    p.add_argument('--step', type=int, default=240)
    p.add_argument('--thresh-size', type=int, default=0)
    p.add_argument('--n-thread', type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument('--compress-level', type=int, default=1, help='PNG level inside the LMDB')
    p.add_argument('--force', action='store_true', help='replace an existing LMDB / sub-image folder')
    p = sub.add_parser('lr', help='benchmark LR sets at any scales (LR_bicubic/X{scale:.2f}/)')
    p.add_argument('--data', nargs='+', required=True, help='dataset folders (DIR with HR/, an HR folder, '
                   'or NAME=DIR)')
    p.add_argument('--scales', nargs='+', required=True, help='numbers and/or lo:hi:step ranges')
    p.add_argument('--protocol', choices=sorted(PROTOCOLS), default='metasr')
    p.add_argument('--out', help='write under OUT/<name>/ instead of next to the HR folder')
    p.add_argument('--force', action='store_true', help='replace existing scale folders')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.what == 'lmdb':
            source = args.input
            if args.extract:
                if args.crop_size < 1 or args.step < 1:
                    raise PrepareError('--crop-size and --step must be positive')
                sub_dir = args.sub_dir or os.path.normpath(args.input) + '_sub'
                _check_free(sub_dir, args.force)
                _check_free(args.output, args.force)
                n = atomic_write(os.path.normpath(sub_dir), lambda tmp: extract_subimages(
                    args.input, tmp, args.crop_size, args.step, args.thresh_size, args.n_thread))
                print(f'{sub_dir}: {n} sub-images')
                source = sub_dir
            n = make_lmdb(source, args.output, args.force, args.compress_level)
            print(f'{args.output}: {n} images')
        else:
            make_lr_sets(args.data, parse_scales(args.scales), args.protocol, args.out, args.force)
    except (PrepareError, ValueError, FileNotFoundError) as e:
        print(f'nodesr prepare: error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
