"""``nodesr infer``: super-resolve image files at any scale or to any size.

Everything is checked (inputs decode, sizes, outputs free, model loads) before anything is written;
each output is written to a temporary file and renamed, so an interrupted run leaves no half image.
"""
import argparse
import math
import os
import sys
import warnings

import cv2
import numpy as np

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class InferError(Exception):
    """A problem with the request: reported as one line, nothing written."""


def _scale_arg(text):
    value = text[1:] if text[:1] in ('x', 'X') else text
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not math.isfinite(s) or s < 1:
        raise argparse.ArgumentTypeError(f'must be a finite number >= 1 (nodesr enlarges), got {text!r}')
    return s


def _size_arg(text):
    parts = text.lower().split('x')
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not HEIGHTxWIDTH, e.g. 1080x1920') from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'{text!r}: height and width must be positive')
    return h, w


def _int_arg(minimum):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {v}')
        return v

    return parse


def build_parser():
    p = argparse.ArgumentParser(
        prog='nodesr infer', description='Super-resolve images at any real scale >= 1 or to an exact size.',
        epilog='example: nodesr infer -i photos/ -o big/ --scale 2.7 --tile 256')
    p.add_argument('-i', '--input', required=True, help='an image file or a folder of images')
    p.add_argument('-o', '--output', required=True, help='output folder (created if missing)')
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument('-s', '--scale', type=_scale_arg, help='enlargement factor, any real >= 1 (e.g. 2.5)')
    what.add_argument('--size', type=_size_arg, metavar='HxW', help='exact output size HEIGHTxWIDTH')
    what.add_argument('--width', type=_int_arg(1), help='output width; the height keeps the aspect')
    p.add_argument('--model', default=None,
                   help='checkpoint (.pth), option YAML or bundled model name (default: the bundled NODEVDSR_S)')
    p.add_argument('--tile', type=_int_arg(1), default=None,
                   help='evaluate the network on tiles of this size (bounded memory, same result)')
    p.add_argument('--tile-pad', type=_int_arg(0), default=None,
                   help="tile overlap (default: the network's receptive radius, which makes tiling exact)")
    p.add_argument('--self-ensemble', action='store_true', help='x8 flip/transpose average (8x slower)')
    p.add_argument('--steps', type=_int_arg(1), default=None, help='ODE solver steps (NODE models)')
    p.add_argument('--step-size', type=float, default=None, help='ODE step in scale units (NODE models)')
    p.add_argument('--method', default=None, help='torchdiffeq method, e.g. rk4, euler, midpoint, dopri5')
    p.add_argument('--trajectory', type=_int_arg(2), default=None, metavar='K',
                   help='also write a strip PNG and an animated GIF of the ODE states at K scales from s to 1')
    p.add_argument('--device', default='auto', help="cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument('--suffix', default=None,
                   help="added to output names (default: _x<scale>, or _<H>x<W> with --size/--width)")
    p.add_argument('-f', '--force', action='store_true', help='overwrite existing outputs (never inputs)')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def collect_inputs(path):
    """The image files to process: ``path`` itself, or the images directly inside a folder (sorted)."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path)
                       if n.lower().endswith(IMG_EXTENSIONS) and not n.startswith('.')
                       and os.path.isfile(os.path.join(path, n)))
        if not files:
            raise InferError(f'no images ({", ".join(IMG_EXTENSIONS)}) in folder {path}')
        return files
    if not os.path.exists(path):
        raise InferError(f'input not found: {path}')
    return [path]


def read_image(path):
    """Decode an image file, keeping its depth and mode.

    Returns:
        ndarray: (H, W) grey or (H, W, 3|4) RGB(A), uint8, uint16 or float32.

    Raises:
        InferError: The file is unreadable, truncated or not an image.
    """
    from PIL import Image
    try:  # PIL notices truncated files that OpenCV decodes silently (half a JPEG)
        with Image.open(path) as im:
            im.load()
            orientation = im.getexif().get(0x0112, 1)
    except Exception as e:
        raise InferError(f'cannot decode image {path}: {e}') from None
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InferError(f'cannot decode image {path}: unreadable, truncated or not an image')
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise InferError(f'{path}: unsupported pixel type {img.dtype} (8/16-bit or float32 images)')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        if img.shape[2] not in (3, 4):
            raise InferError(f'{path}: {img.shape[2]} channels; expected 1, 3 or 4')
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return np.ascontiguousarray(apply_orientation(img, orientation))


def apply_orientation(img, orientation):
    """Turn an image as its EXIF orientation tag (1-8) says, so the output is upright (phone photos)."""
    if orientation in (5, 6, 7, 8):
        img = img.swapaxes(0, 1)  # transpose, then flip as below
    flips = {2: (False, True), 3: (True, True), 4: (True, False), 5: (False, False), 6: (False, True),
             7: (True, True), 8: (True, False)}.get(orientation, (False, False))
    if flips[0]:
        img = img[::-1]
    if flips[1]:
        img = img[:, ::-1]
    return img


def _to_bgr(img):
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    return img


def _temp_path(final):
    stem, ext = os.path.splitext(os.path.basename(final))
    return os.path.join(os.path.dirname(final), f'.{stem}.{os.getpid()}.partial{ext}')


def _commit(tmp, final, force):
    """Move a finished temporary file to ``final``; without ``force`` never replace an existing file."""
    if force:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails if final exists, even if it appeared while we worked
    except FileExistsError:
        os.unlink(tmp)
        raise InferError(f'{final} appeared while running; not overwritten (use --force)') from None
    except OSError:  # file systems without hard links
        if os.path.exists(final):
            os.unlink(tmp)
            raise InferError(f'{final} exists; not overwritten (use --force)') from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


def atomic_write(path, write, force=False):
    """Call ``write(tmp)`` on a temporary name beside ``path``, then move it to ``path``.

    Args:
        path (str): Final file.
        write (callable): Writes the file it is given (keep the extension: OpenCV picks the format by it).
        force (bool): Replace an existing ``path``; otherwise raise InferError if it exists.
    """
    tmp = _temp_path(path)
    try:
        write(tmp)
        _commit(tmp, path, force)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_image(path, img, force=False):
    """Write an RGB(A)/grey image (uint8, uint16 or float32) atomically."""
    def write(tmp):
        if not cv2.imwrite(tmp, _to_bgr(img)):
            raise InferError(f'cannot write {path} (format or depth not supported by this extension?)')

    atomic_write(path, write, force)


def write_bytes(path, data, force=True):
    """Write bytes atomically."""
    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)

    atomic_write(path, write, force)


def to_display(img):
    """Any output image -> uint8 RGB for the trajectory strip and GIF (alpha dropped)."""
    if img.dtype == np.uint16:
        img = np.round(img / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def trajectory_strip(states):
    """Frames side by side, each labelled with its scale ``t``.

    Args:
        states (list[tuple[float, ndarray]]): ``(t, uint8 RGB image)`` pairs.
    """
    frames = []
    for t, img in states:
        frame = img.copy()
        size = max(0.35, min(frame.shape[:2]) / 400)
        thick = max(1, round(size * 1.5))
        org = (4, 4 + round(22 * size))
        for colour, width in (((0, 0, 0), thick + 2), ((255, 255, 255), thick)):
            cv2.putText(frame, f't={t:.2f}', org, cv2.FONT_HERSHEY_SIMPLEX, size, colour, width, cv2.LINE_AA)
        frames.append(frame)
    gap = np.full((frames[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)


def write_gif(path, frames, force=False, ms=400):
    """Animated GIF of uint8 RGB frames (looping, last frame held longer), written atomically."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    durations = [ms] * (len(images) - 1) + [ms * 3]
    atomic_write(path, lambda tmp: images[0].save(tmp, format='GIF', save_all=True, append_images=images[1:],
                                                  duration=durations, loop=0), force)


def plan(args):
    """Check every input and output; return the list of jobs ``(input, output, t0, out_size, extras)``."""
    from nodesr_arch.api import plan_size

    if args.trajectory is not None and args.trajectory < 2:
        raise InferError(f'--trajectory needs at least 2 scales, got {args.trajectory}')
    if args.tile_pad is not None and args.tile is None:
        raise InferError('--tile-pad needs --tile')
    inputs = collect_inputs(args.input)
    in_real = {os.path.realpath(p) for p in inputs}
    jobs, seen = [], set()
    for path in inputs:
        img = read_image(path)
        try:
            t0, out_size = plan_size(img.shape[:2], args.scale, args.size, args.width)
        except ValueError as e:
            raise InferError(f'{path}: {e}') from None
        stem, ext = os.path.splitext(os.path.basename(path))
        if img.dtype == np.uint16 and ext.lower() not in ('.png', '.tif', '.tiff', '.ppm', '.pgm'):
            ext = '.png'
        suffix = args.suffix
        if suffix is None:
            suffix = f'_x{args.scale:g}' if args.scale is not None else f'_{out_size[0]}x{out_size[1]}'
        out = os.path.join(args.output, stem + suffix + ext)
        extras = []
        if args.trajectory:
            base = os.path.join(args.output, stem + suffix + '_trajectory')
            extras = [base + '.png', base + '.gif']
        for target in [out] + extras:
            real = os.path.realpath(target)
            if real in in_real:
                raise InferError(f'{target} would overwrite the input {path}; choose another -o or --suffix')
            if real in seen:
                raise InferError(f'two inputs would write the same output {target}')
            seen.add(real)
            if os.path.exists(target) and not args.force:
                raise InferError(f'{target} exists; not overwritten (use --force)')
        jobs.append((path, out, t0, out_size, extras))
    return jobs


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except InferError as e:
        print(f'nodesr infer: error: {e}', file=sys.stderr)
        return 1


def run(args):
    """Run ``nodesr infer`` with parsed arguments (raises InferError for a bad request)."""
    from tqdm import tqdm

    from nodesr_arch.api import load_model
    from nodesr_arch.inference import fixed_scale_message

    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise InferError(f'output {args.output} exists and is not a folder')
    jobs = plan(args)
    ode = {k: v for k, v in (('num_steps', args.steps), ('step_size', args.step_size), ('method', args.method))
           if v is not None}
    try:
        up = load_model(args.model, device=args.device, ode=ode or None)
        if args.tile is not None:  # fail now, not after the first image
            up.set_tiling(args.tile, args.tile_pad)
            up.set_tiling(None)
        if args.trajectory:
            up.trajectory_scales(args.trajectory, 2.0)
        resized = sorted({t0 for _, _, t0, _, _ in jobs if up.label(t0) != up.name})
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise InferError(str(e)) from None
    if resized:  # the loop below silences UserWarnings (FixedScaleWarning among them): say it once here
        print(f'nodesr infer: warning: {fixed_scale_message(up.name, up.fixed_scale, resized)}', file=sys.stderr)
    os.makedirs(args.output, exist_ok=True)
    options = dict(self_ensemble=args.self_ensemble, tile=args.tile, tile_pad=args.tile_pad)
    bar = tqdm(jobs, desc=f'nodesr infer ({up.name})', unit='img', disable=args.quiet or None, file=sys.stderr)
    for path, out, t0, out_size, extras in bar:
        img = read_image(path)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            request = dict(scale=args.scale) if args.scale is not None else dict(size=out_size)
            result = up.upscale(img, **request, trajectory=args.trajectory, **options)
        big, states = result if args.trajectory else (result, None)
        write_image(out, big, args.force)
        if states is not None:
            frames = [to_display(s) for _, s in states]
            write_image(extras[0], trajectory_strip([(t, f) for (t, _), f in zip(states, frames)]), args.force)
            write_gif(extras[1], frames, args.force)
        bar.set_postfix_str(f'{os.path.basename(path)} x{t0:.3g} -> {out_size[1]}x{out_size[0]}')
    bar.close()
    n = len(jobs)
    print(f'wrote {n} image{"s" if n != 1 else ""}{" with trajectories" if args.trajectory else ""} '
          f'to {os.path.abspath(args.output)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
