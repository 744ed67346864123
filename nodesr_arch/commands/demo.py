"""``nodesr demo``: the bundled model against bicubic on scikit-image's pictures, no data needed.

Each picture is shrunk at several scales with the Meta-SR protocol (MATLAB bicubic, 8-bit LR), enlarged
back with the model and with bicubic, and measured (PSNR/SSIM on Y, border ``ceil(s)``). Writes the
images, a trajectory strip of the ODE states, a PSNR-vs-scale plot and a CSV table.
"""
import argparse
import csv
import io
import os
import sys
import time

import numpy as np

DEFAULT_IMAGES = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera')
DEFAULT_SCALES = (1.5, 2.0, 2.5, 3.0, 4.0)


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


def format_table(rows, names):
    """Markdown table: one row per scale, PSNR/SSIM per method averaged over the pictures, and each
    model's PSNR gain over bicubic (``names[0]``)."""
    def mean(s, n, key):
        return np.mean([r[key] for r in rows if r['scale'] == s and r['method'] == n])

    head = ['scale'] + [f'{n} PSNR / SSIM' for n in names] + [f'{n} gain (dB)' for n in names[1:]]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for s in sorted({r['scale'] for r in rows}):
        cells = [f'x{s:g}'] + [f"{mean(s, n, 'psnr'):.2f} / {mean(s, n, 'ssim'):.4f}" for n in names]
        cells += [f"{mean(s, n, 'psnr') - mean(s, names[0], 'psnr'):+.2f}" for n in names[1:]]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot_psnr(path, rows, names):
    """PSNR (mean over pictures) against scale, one line per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from nodesr_arch.file_io import write_bytes

    scales = sorted({r['scale'] for r in rows})
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for n in names:
        ax.plot(scales, [np.mean([r['psnr'] for r in rows if r['scale'] == s and r['method'] == n]) for s in scales],
                marker='o', label=n)
    ax.set_xlabel('scale')
    ax.set_ylabel('PSNR (dB, Y)')
    ax.set_title('nodesr demo: mean over pictures')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f'nodesr demo: error: {e}', file=sys.stderr)
        return 1


def run(args):
    """Run the demo with parsed arguments; returns 0."""
    from nodesr_arch.api import load_model
    from nodesr_arch.commands.infer import to_display, trajectory_strip
    from nodesr_arch.data.image_io import to_uint8
    from nodesr_arch.data.scale_space import enlarge, metasr_pair
    from nodesr_arch.file_io import write_bytes, write_image
    from nodesr_arch.metrics import psnr_ssim

    start = time.time()
    names = [n.strip() for n in args.images.split(',') if n.strip()]
    pictures = {n: load_picture(n, args.crop or None) for n in names}  # fail early on a bad name
    models = [load_model(spec, device=args.device) for spec in [args.model] + args.compare]
    methods = ['bicubic'] + [m.name for m in models]
    if len(set(methods)) != len(methods):
        raise ValueError(f'two methods share a name: {methods}')
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name, (hr, grey) in pictures.items():
        img = to_uint8(hr)
        write_image(os.path.join(args.out, f'{name}_hr.png'), img[..., 0] if grey else img)
        for s in args.scales:
            lr, gt, out_size = metasr_pair(hr, s)
            results = {'bicubic': np.clip(enlarge(lr, s, out_size), 0, 1)}
            for m in models:
                results[m.name] = np.clip(m.super_resolve(lr, s, out_size=out_size), 0, 1)
            for method, sr in results.items():
                psnr, ssim = psnr_ssim(sr, gt, s, grey=grey)
                rows.append(dict(image=name, scale=s, method=method, psnr=psnr, ssim=ssim))
                img = to_uint8(sr)
                write_image(os.path.join(args.out, f'{name}_x{s:g}_{method}.png'), img[..., 0] if grey else img)
    table = format_table(rows, methods)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=['image', 'scale', 'method', 'psnr', 'ssim'])
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(os.path.join(args.out, 'results.csv'), buf.getvalue().encode())
    write_bytes(os.path.join(args.out, 'results.md'), (table + '\n').encode())
    plot = os.path.join(args.out, 'psnr_vs_scale.png')
    plot_psnr(plot, rows, methods)

    strip_path = None
    model = models[0]
    if model.is_ode and args.trajectory >= 2:
        name = names[0]
        hr, _ = pictures[name]
        s = max(args.scales)
        lr, _, out_size = metasr_pair(hr, s)
        _, states = model.super_resolve(lr, s, out_size=out_size, trajectory=args.trajectory)
        strip = trajectory_strip([(t, to_display(np.clip(st, 0, 1))) for t, st in states])
        strip_path = os.path.join(args.out, f'{name}_x{s:g}_trajectory.png')
        write_image(strip_path, strip)

    print(f'nodesr demo: {len(names)} pictures ({", ".join(names)}), centre crop {args.crop or "none"}, '
          f'Meta-SR protocol, PSNR/SSIM on Y (grey pictures: grey channel), border ceil(s)\n')
    print(table)
    out = os.path.abspath(args.out)
    print(f'\nwrote to {out}:')
    print(f'  images         {len(rows)} enlarged pictures: NAME_xSCALE_METHOD.png (and NAME_hr.png)')
    print(f'  table          {os.path.join(out, "results.md")}, results.csv (per picture)')
    print(f'  plot           {os.path.abspath(plot)}')
    if strip_path:
        print(f'  trajectory     {os.path.abspath(strip_path)} (ODE states from t={max(args.scales):g} to 1)')
    print(f'done in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
