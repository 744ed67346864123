"""``nodesr infer``: super-resolve image files at any scale or to any size.

Everything is checked (inputs decode, values, sizes, memory, output names and folder, model loads)
before anything is written; each output is encoded in memory, written to a temporary file and renamed,
so an interrupted or failed run leaves no half image. Exit status 2: refused by those checks, nothing
written; 1: failed while writing (the system's reason, e.g. no space left on device).
"""
import argparse
import collections
import io
import os
import sys
import tempfile
import warnings

from nodesr_arch import file_io
from nodesr_arch.file_io import IMG_EXTENSIONS, remove_stale_partials
from nodesr_arch.runtime import RUNTIMES
from nodesr_arch.scales import Plan, check_scale, plan_size

# extensions that hold each depth; other inputs (no extension, .gif...) are written as PNG (TIFF for float)
OUTPUT_EXTENSIONS = {'uint8': IMG_EXTENSIONS, 'uint16': ('.png', '.tif', '.tiff', '.ppm', '.pgm'),
                     'float32': ('.tif', '.tiff')}
# largest side the encoders take (OpenCV 5's JPEG and WebP, libpng's default limit, GIF's 16-bit sizes)
MAX_SIDE = {'.jpg': 65500, '.jpeg': 65500, '.webp': 16383, '.png': 1000000, '.gif': 65535}

Job = collections.namedtuple('Job', 'path out t0 out_size extras channels image in_size t_eval', defaults=(None, None))
# decoded inputs kept from the checks for the run, so they are not decoded again, up to this many bytes in all
KEEP_DECODED = 256 * 2**20


class InferError(Exception):
    """A request refused by the checks made before anything is written: one line, exit status 2."""

    status = 2


class RunError(InferError):
    """A run that failed part-way (an output could not be written, memory ran out): exit status 1.

    The file being written is removed; outputs finished before it are complete.
    """

    status = 1


def _scale_arg(text):
    value = text[1:] if text[:1] in ('x', 'X') else text
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    try:
        return check_scale(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a finite number >= 1 (nodesr enlarges), got {text!r}') from None


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
    p.add_argument('--amp', choices=['bf16', 'fp16'], default=None,
                   help='mixed precision: the network under autocast, the ODE state in fp32 (default: fp32)')
    p.add_argument('--runtime', choices=RUNTIMES, default=None,
                   help='where the network runs on the CPU: torch, onnxruntime (the [onnx] extra) or auto (the '
                        'faster of the two, measured once per model; default: $NODESR_RUNTIME, else auto)')
    p.add_argument('--suffix', default=None,
                   help="added to output names (default: _x<scale>, or _<H>x<W> with --size/--width)")
    p.add_argument('-f', '--force', action='store_true', help='overwrite existing outputs (never inputs)')
    p.add_argument('-q', '--quiet', action='store_true',
                   help='no progress bar (by default a bar on stderr counts the images done and the time left)')
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


def encode_image(ext, img):
    """:func:`nodesr_arch.file_io.encode_image`, raising RunError when the format cannot hold the image."""
    try:
        return file_io.encode_image(ext, img)
    except file_io.ImageWriteError as e:
        raise RunError(str(e)) from None


def write_bytes(path, data, force=True):
    """Write bytes atomically (:func:`nodesr_arch.file_io.atomic_write`); RunError if ``path`` exists and not
    ``force``."""
    try:
        file_io.write_bytes(path, data, replace=force)
    except FileExistsError as e:
        raise RunError(f'{e}; not overwritten (use --force)') from None


def encode_gif(frames, ms=400):
    """Animated GIF of uint8 RGB frames (looping, last frame held longer), as bytes.

    Args:
        frames (list[ndarray]): (H, W, 3) uint8 RGB frames.
        ms (int): Milliseconds per frame (the last is held three times as long). Default: 400.

    Raises:
        RunError: PIL cannot encode them (e.g. frames over 65535 pixels a side).
    """
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    durations = [ms] * (len(images) - 1) + [ms * 3]
    buf = io.BytesIO()
    try:
        images[0].save(buf, format='GIF', save_all=True, append_images=images[1:], duration=durations, loop=0)
    except (OSError, ValueError, OverflowError) as e:
        raise RunError(f'cannot encode a GIF of {len(frames)} {frames[0].shape[1]}x{frames[0].shape[0]} '
                       f'frames: {e}') from None
    return buf.getvalue()


def output_ext(ext, dtype):
    """The extension of an output: the input's when its format holds ``dtype``, else ``.png`` (``.tif`` for
    float32), e.g. for an input without extension.

    Args:
        ext (str): The input's extension (``''`` for none).
        dtype (np.dtype): The image's dtype: uint8, uint16 or float32.
    """
    import numpy as np
    if ext.lower() in OUTPUT_EXTENSIONS[np.dtype(dtype).name]:
        return ext
    return '.tif' if np.dtype(dtype) == np.float32 else '.png'


def check_output_folder(folder):
    """Refuse an output folder that cannot be made or written in, with the system's reason.

    The folder itself, or when it does not exist yet its nearest existing parent, must be a folder in
    which a file can be created (probed with an unnamed temporary file: nothing is left behind).

    Args:
        folder (str): The ``-o`` folder.

    Raises:
        InferError: An empty name, a file in the way, or the system's reason (permission denied,
            read-only file system...).
    """
    if not folder:
        raise InferError('the output folder name is empty (-o)')
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise InferError(f'output {folder}: {probe} exists and is not a folder')
    try:
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as e:
        what = 'write in' if probe == os.path.abspath(folder) else f'create {folder} in'
        raise InferError(f'cannot {what} {probe}: {e.strerror or e}') from None


def check_encodable(target, size, hint):
    """Refuse an output size the format of ``target`` cannot hold (JPEG 65500, WebP 16383 pixels a side...).

    Args:
        target (str): The output file (its extension picks the format).
        size (tuple[int, int]): Its (H, W).
        hint (str): What the user can do instead, for the message.
    """
    ext = os.path.splitext(target)[1].lower()
    limit = MAX_SIDE.get(ext)
    if limit is not None and max(size) > limit:
        raise InferError(f'{target}: {size[1]}x{size[0]} (WxH) is larger than {ext} allows ({limit} pixels a side); '
                         f'choose a smaller size, or {hint}')


def format_bytes(n):
    """``n`` bytes as ``'1.5 GB'`` (decimal units).

    Args:
        n (int): Bytes.
    """
    for unit in ('B', 'KB', 'MB', 'GB', 'TB', 'PB'):
        if n < 1000 or unit == 'PB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1000


def plan(args):
    """Check every input and output name.

    Returns:
        list[Job]: ``(path, out, t0, out_size, extras, channels, image, in_size, t_eval)`` per input; ``extras``
        are the trajectory strip and GIF; ``image`` is the decoded input while the inputs kept so far stay within
        :data:`KEEP_DECODED` bytes (else None: the run decodes it again); ``t_eval`` is None (:func:`run` sets the
        trajectory's scales once the model is loaded).

    Raises:
        InferError: The first problem found; nothing has been written.
    """
    from nodesr_arch.api import check_values

    if args.trajectory is not None and args.trajectory < 2:
        raise InferError(f'--trajectory needs at least 2 scales, got {args.trajectory}')
    if args.tile_pad is not None and args.tile is None:
        raise InferError('--tile-pad needs --tile')
    if args.suffix is not None and (os.sep in args.suffix or (os.altsep and os.altsep in args.suffix)):
        raise InferError(f'--suffix {args.suffix!r} holds a path separator; outputs go into -o')
    check_output_folder(args.output)
    inputs = collect_inputs(args.input)
    in_real = {os.path.realpath(p) for p in inputs}
    jobs, seen, kept = [], set(), 0
    for path in inputs:
        try:
            img = file_io.read_image(path, check=True)  # upright as its EXIF orientation says
        except (FileNotFoundError, file_io.ImageReadError) as e:
            raise InferError(str(e)) from None
        try:
            t0, out_size = plan_size(img.shape[:2], args.scale, args.size, args.width)
            if img.dtype.name == 'float32':
                check_values(img, 0.0, 1.0, 'float image')
        except ValueError as e:
            raise InferError(f'{path}: {e}') from None
        stem, ext = os.path.splitext(os.path.basename(path))
        suffix = args.suffix
        if suffix is None:
            suffix = f'_x{args.scale:g}' if args.scale is not None else f'_{out_size[0]}x{out_size[1]}'
        out = os.path.join(args.output, stem + suffix + output_ext(ext, img.dtype))
        extras = []
        if args.trajectory:
            base = os.path.join(args.output, stem + suffix + '_trajectory')
            extras = [base + '.png', base + '.gif']
        sizes = [out_size, (out_size[0], args.trajectory * (out_size[1] + 4) - 4), out_size] if extras else [out_size]
        hints = ['give the input as PNG or TIFF'] + ['leave out --trajectory'] * 2
        for target, size, hint in zip([out] + extras, sizes, hints):
            real = os.path.realpath(target)
            if real in in_real:
                raise InferError(f'{target} would overwrite the input {path}; choose another -o or --suffix')
            if real in seen:
                raise InferError(f'two inputs would write the same output {target}')
            seen.add(real)
            if os.path.isdir(target):
                raise InferError(f'{target} is a folder; not replaced (not even with --force)')
            if os.path.lexists(target) and not args.force:
                raise InferError(f'{target} exists; not overwritten (use --force)')
            check_encodable(target, size, hint)
        keep = kept + img.nbytes <= KEEP_DECODED
        kept += img.nbytes if keep else 0
        jobs.append(Job(path, out, t0, out_size, extras, img.shape[2] if img.ndim == 3 else 1, img if keep else None,
                        img.shape[:2]))
    return jobs


def check_memory(up, jobs, args):
    """Refuse a job whose estimated peak memory exceeds what the device has free.

    Args:
        up (Upscaler): The loaded model (:meth:`~nodesr_arch.api.Upscaler.memory_estimate`).
        jobs (list[Job]): From :func:`plan`.
        args (argparse.Namespace): The parsed options (tiling, self-ensemble, trajectory).

    Raises:
        InferError: Naming the input, the output size, the estimate and the free memory.
    """
    from nodesr_arch.api import available_memory

    free = available_memory(up.device)
    if free is None:
        return
    options = dict(self_ensemble=args.self_ensemble, tile=args.tile, tile_pad=args.tile_pad, trajectory=args.trajectory)
    for job in jobs:
        options['in_size'] = job.in_size
        need = up.memory_estimate(job.out_size, job.channels, **options)
        if need <= free:
            continue
        hint = ''
        if args.tile is None and up.contract.tiles:
            tiled = up.memory_estimate(job.out_size, job.channels, **{**options, 'tile': 512})
            if tiled <= free:
                hint = f'; --tile 512 brings it to about {format_bytes(tiled)}'
        raise InferError(f'{job.path}: a {job.out_size[0]}x{job.out_size[1]} (HxW) output needs about '
                         f'{format_bytes(need)} of memory (estimated), more than the {format_bytes(free)} free on '
                         f'{up.device}{hint}; ask for a smaller --scale, --size or --width')


def main(argv=None):
    """Entry point of ``nodesr infer``.

    Args:
        argv (list[str] | None): Arguments; default ``sys.argv[1:]``.

    Returns:
        int: 0; 2 when refused before writing anything (a usage error too, from argparse); 1 when
        writing failed part-way.
    """
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except InferError as e:
        print(f'nodesr infer: error: {" ".join(str(e).split())}', file=sys.stderr)
        return e.status


def run(args):
    """Run ``nodesr infer`` with parsed arguments.

    Raises:
        InferError: A request refused before anything was written.
        RunError: Writing an output failed, or memory ran out, part-way.
    """

    from nodesr_arch.api import load_model
    from nodesr_arch.inference import fixed_scale_message

    jobs = plan(args)
    ode = {k: v for k, v in (('num_steps', args.steps), ('step_size', args.step_size), ('method', args.method))
           if v is not None}
    try:
        up = load_model(args.model, device=args.device, ode=ode or None, amp=args.amp, runtime=args.runtime)
        # decided and checked here, once, before anything is written; the images below only run them
        tiling = up.tiling_for(args.tile, args.tile_pad)
        jobs = [job._replace(t_eval=up.trajectory_scales(args.trajectory, job.t0)) for job in jobs]
        resized = sorted({job.t0 for job in jobs if up.label(job.t0) != up.name})
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        if isinstance(e, OSError) and e.strerror:
            raise InferError(f'{e.filename or args.model}: {e.strerror}') from None
        raise InferError(str(e)) from None
    check_memory(up, jobs, args)
    if up.runtime_reason.startswith('auto') and not args.quiet:  # say what auto chose (and why)
        print(f'nodesr infer: runtime {up.runtime} ({up.runtime_reason})', file=sys.stderr)
    if resized:  # the loop below silences UserWarnings (FixedScaleWarning among them): say it once here
        print(f'nodesr infer: warning: {fixed_scale_message(up.name, up.fixed_scale, resized)}', file=sys.stderr)
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as e:
        raise RunError(f'cannot create the output folder {args.output}: {e.strerror or e}') from None
    for name in remove_stale_partials(args.output):
        print(f'nodesr infer: removed {name}, left by a killed run', file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(jobs, desc=f'nodesr infer ({up.name})', unit='img', disable=args.quiet, file=sys.stderr,
               dynamic_ncols=True)
    written = []
    for job in bar:
        try:
            files = enlarge(up, job, args, tiling)
        except RunError as e:
            raise RunError(f'{job.path}: {e}{_done(written)}') from None
        except (FileNotFoundError, file_io.ImageReadError) as e:  # changed since plan() read it
            raise InferError(str(e)) from None
        except (MemoryError, RuntimeError) as e:
            if isinstance(e, RuntimeError) and 'memory' not in str(e).lower():
                raise
            raise RunError(f'{job.path}: out of memory ({str(e).splitlines()[0]}); try --tile 256 or a smaller '
                           f'size{_done(written)}') from None
        for target, data in files:  # encoded first: a format that fails leaves none of this job's files
            try:
                write_bytes(target, data, args.force)
            except OSError as e:
                raise RunError(f'cannot write {target}: {e.strerror or e}{_done(written)}') from None
            except RunError as e:
                raise RunError(f'{e}{_done(written)}') from None
            written.append(target)
        bar.set_postfix_str(f'{os.path.basename(job.path)} x{job.t0:.3g} -> {job.out_size[1]}x{job.out_size[0]}')
    bar.close()
    n = len(jobs)
    print(f'wrote {n} image{"s" if n != 1 else ""}{" with trajectories" if args.trajectory else ""} '
          f'to {os.path.abspath(args.output)}')
    return 0


def enlarge(up, job, args, tiling):
    """Enlarge one input as planned (nothing is checked again) and encode its outputs.

    Args:
        up (Upscaler): The model.
        job (Job): From :func:`plan`, with its trajectory's scales.
        args (argparse.Namespace): The parsed options.
        tiling (Tiling | None): From :meth:`~nodesr_arch.api.Upscaler.tiling_for`.

    Returns:
        list[tuple[str, bytes]]: ``(path, file contents)`` of the image and, with ``--trajectory``, the strip
        and the GIF.
    """
    from nodesr_arch.inference import display_frame, trajectory_strip

    img = job.image if job.image is not None else file_io.read_image(job.path, check=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        result = up._upscale(img, Plan(job.t0, job.out_size), args.self_ensemble, tiling, job.t_eval)
    big, states = result if job.t_eval is not None else (result, None)
    files = [(job.out, encode_image(os.path.splitext(job.out)[1], big))]
    if states is not None:
        frames = [display_frame(s) for _, s in states]
        strip = trajectory_strip([(t, f) for (t, _), f in zip(states, frames)])
        files += [(job.extras[0], encode_image('.png', strip)), (job.extras[1], encode_gif(frames))]
    return files


def _done(written):
    if not written:
        return '; nothing was written'
    return f'; {len(written)} file{"s" if len(written) > 1 else ""} written before it (complete)'


if __name__ == '__main__':
    sys.exit(main())
