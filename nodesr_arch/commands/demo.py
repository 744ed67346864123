"""``nodesr demo``: the bundled model against bicubic on scikit-image's pictures, no data needed.

Each picture is shrunk at several scales with the Meta-SR protocol (MATLAB bicubic, 8-bit LR), enlarged
back with the model and with bicubic, and measured (PSNR/SSIM on Y, border ``ceil(s)``): the pictures
are a dataset of ``nodesr benchmark``'s :func:`~nodesr_arch.commands.benchmark.evaluate`, and the tables,
CSV files and plot are its (:mod:`nodesr_arch.commands.benchmark_report`). Writes the images, a
trajectory strip of the ODE states, the PSNR-vs-scale plot and the tables.
"""
import argparse
import os
import shlex
import sys
import time

import numpy as np

DEFAULT_IMAGES = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera')
DEFAULT_SCALES = (1.5, 2.0, 2.5, 3.0, 4.0)
DATASET = 'scikit-image'  # the pictures' dataset name in the tables and CSV files


def load_picture(name, crop=192):
    """A scikit-image sample picture as float32 (H, W, 3) RGB in [0, 1] (centre crop), and whether grey.

    Args:
        name (str): A function of ``skimage.data`` (astronaut, chelsea, coffee, rocket, camera, ...).
        crop (int | None): Centre crop to at most this many pixels per side (None: whole picture).
    """
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if not callable(loader) or name.startswith('_'):
        raise ValueError(f'skimage.data has no picture {name!r}')
    img = np.asarray(loader())
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f'skimage.data.{name} is not an 8-bit picture ({img.dtype}, shape {img.shape})')
    grey = img.ndim == 2
    img = np.repeat(img[..., None], 3, axis=2) if grey else img[..., :3]
    if crop:
        h, w = img.shape[:2]
        ch, cw = min(h, crop), min(w, crop)
        top, left = (h - ch) // 2, (w - cw) // 2
        img = img[top:top + ch, left:left + cw]
    return img.astype(np.float32) / 255.0, grey


def _scales_arg(text):
    try:
        scales = [float(s) for s in text.replace(',', ' ').split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a list of numbers, e.g. 1.5,2,3') from None
    if not scales or any(not np.isfinite(s) or s <= 1 for s in scales):
        raise argparse.ArgumentTypeError(f'scales must be numbers > 1, got {text!r}')
    return scales


def build_parser():
    p = argparse.ArgumentParser(prog='nodesr demo',
                                description='Run the bundled NODE-SR model against bicubic on scikit-image pictures.')
    p.add_argument('--model', default=None, help='checkpoint, option YAML or bundled name (default: NODEVDSR_S)')
    p.add_argument('--compare', action='append', default=[], metavar='MODEL',
                   help='another model to add to the table (e.g. VDSRt_S); repeatable')
    p.add_argument('--out', default='nodesr_demo', help='output folder (default: ./nodesr_demo)')
    p.add_argument('--images', default=','.join(DEFAULT_IMAGES),
                   help=f'skimage.data pictures, comma separated (default: {",".join(DEFAULT_IMAGES)})')
    p.add_argument('--scales', type=_scales_arg, default=list(DEFAULT_SCALES),
                   help='scales, comma separated (default: 1.5,2,2.5,3,4)')
    p.add_argument('--crop', type=int, default=192, help='centre crop size in pixels (0: whole pictures)')
    p.add_argument('--trajectory', type=int, default=5, metavar='K', help='states in the trajectory strip')
    p.add_argument('--device', default='auto', help='cpu, cuda, ... (default: auto)')
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return run(args, command='nodesr demo ' + ' '.join(shlex.quote(a) for a in argv))
    except (ValueError, FileNotFoundError) as e:
        print(f'nodesr demo: error: {e}', file=sys.stderr)
        return 1


def run(args, command=None):
    """Run the demo with parsed arguments; returns 0.

    Args:
        args (argparse.Namespace): :func:`build_parser`'s arguments.
        command (str | None): The command line, kept in ``results.md`` and ``run.json``.
    """
    from nodesr_arch.api import load_model
    from nodesr_arch.commands.benchmark import Bicubic, evaluate
    from nodesr_arch.commands.benchmark_report import gain_table, paper_table, write_results
    from nodesr_arch.data.scale_space import metasr_pair
    from nodesr_arch.file_io import to_pixels, write_image
    from nodesr_arch.inference import trajectory_strip

    start = time.time()
    names = [n.strip() for n in args.images.split(',') if n.strip()]
    pictures = {n: load_picture(n, args.crop or None) for n in names}  # fail early on a bad name
    models = [load_model(spec, device=args.device) for spec in [args.model] + args.compare]
    methods = [('bicubic', Bicubic())] + [(m.name, m) for m in models]
    if len({n for n, _ in methods}) != len(methods):
        raise ValueError(f'two methods share a name: {[n for n, _ in methods]}')
    os.makedirs(args.out, exist_ok=True)
    for name, (hr, grey) in pictures.items():
        img = to_pixels(hr)
        write_image(os.path.join(args.out, f'{name}_hr.png'), img[..., 0] if grey else img)

    def save(row, sr, grey):
        img = to_pixels(sr)
        path = os.path.join(args.out, f"{row['image']}_x{row['scale']:g}_{row['model']}.png")
        write_image(path, img[..., 0] if grey else img)

    # the pictures are 8-bit: 255 levels, as read_image gives for 8-bit files
    dataset = (DATASET, [(n, hr, grey, 255) for n, (hr, grey) in pictures.items()], None)
    per_image = []
    rows = evaluate(methods, [dataset], args.scales, 'metasr', per_image=per_image, progress=False, on_image=save)
    paths = write_results(rows, args.out, command, 'metasr', per_image)
    table = paper_table(rows, DATASET, max_columns=12)
    gain = gain_table(rows, DATASET, max_columns=12)

    strip_path = None
    model = models[0]
    if model.is_ode and args.trajectory >= 2:
        name = names[0]
        hr, _ = pictures[name]
        s = max(args.scales)
        lr, _, out_size = metasr_pair(hr, s)
        _, states = model.super_resolve(lr, s, out_size=out_size, trajectory=args.trajectory)
        strip = trajectory_strip(states)
        strip_path = os.path.join(args.out, f'{name}_x{s:g}_trajectory.png')
        write_image(strip_path, strip)

    print(f'nodesr demo: {len(names)} pictures ({", ".join(names)}), centre crop {args.crop or "none"}, '
          f'Meta-SR protocol, PSNR / SSIM on Y (grey pictures: grey channel), border ceil(s), mean over the '
          'pictures; best PSNR in bold\n')
    print('\n'.join(table))
    if gain:
        print('\nPSNR gain over bicubic (dB):\n')
        print('\n'.join(gain))
    out = os.path.abspath(args.out)
    print(f'\nwrote to {out}:')
    print(f'  images         {len(per_image)} enlarged pictures: NAME_xSCALE_METHOD.png (and NAME_hr.png)')
    print(f'  tables         {os.path.abspath(paths[1])}, results.csv (means), per_image.csv (per picture)')
    print(f'  plot           {os.path.join(out, "psnr_vs_scale.png")}')
    if strip_path:
        print(f'  trajectory     {os.path.abspath(strip_path)} (ODE states from t={max(args.scales):g} to 1)')
    print(f'done in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
