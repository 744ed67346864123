"""File I/O shared by the library and the commands: the image extensions, the one image reader and decoder, the
one conversion of images to 8 or 16 bits, dataset folders and atomic writes.

Every file the project writes (images, checkpoints, CSV, JSON, Markdown) goes through :func:`atomic_write`:
it is written to ``.STEM.PID.partial.EXT`` beside its final name, then moved there, so a reader or a killed
run never sees half a file, and :func:`remove_stale_partials` can tell a dead run's leftovers from a live one's.
"""
import contextlib
import io
import os
import shutil
import warnings

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
#: The pixel types :func:`decode_image` returns.
PIXEL_TYPES = ('uint8', 'uint16', 'float32')
#: The largest value of each integer pixel type (a float image lies in [0, 1]).
PEAKS = {'uint8': 255, 'uint16': 65535}


class ImageReadError(ValueError):
    """An image file cannot be read or decoded; the message names the file."""


def list_images(folder):
    """Sorted image files (by name) directly inside ``folder``.

    Args:
        folder (str): A folder.

    Returns:
        list[str]: Paths of the files whose extension is in :data:`IMG_EXTENSIONS`.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'not a folder: {folder}')
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMG_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]


def resolve_dataset(spec):
    """Where a benchmark dataset lives, from ``DIR`` or ``NAME=DIR``.

    ``DIR`` may hold an ``HR/`` folder (then it is the dataset root), be an ``HR`` folder (the root is
    its parent) or be a plain folder of images (it is its own root). The name defaults to the root's
    folder name.

    Args:
        spec (str): ``DIR`` or ``NAME=DIR``.

    Returns:
        tuple[str, str, str]: name, HR folder, dataset root.
    """
    name, sep, folder = str(spec).partition('=')
    if not sep or not name or os.path.isdir(spec):
        name, folder = '', str(spec)
    folder = os.path.normpath(folder)
    if os.path.isdir(os.path.join(folder, 'HR')):
        hr, root = os.path.join(folder, 'HR'), folder
    elif os.path.basename(folder).upper() == 'HR':
        hr, root = folder, os.path.dirname(folder) or '.'
    else:
        hr, root = folder, folder
    if not os.path.isdir(hr):
        raise FileNotFoundError(f'dataset folder not found: {folder}')
    return name or os.path.basename(os.path.abspath(root)), hr, root


def decode_image(content, name, as_float=False):
    """Decode image bytes keeping depth and mode, in RGB order.

    Args:
        content (bytes | None): File contents (``None``: the file was not found, as from BasicSR's ``FileClient``).
        name (str): File name or LMDB key, for messages.
        as_float (bool): Return the image as the datasets and benchmarks use it (see :func:`as_float_image`).
            Default: False.

    Returns:
        ndarray: (H, W) grey or (H, W, 3|4) RGB(A), uint8, uint16 or float32; with ``as_float``, the tuple
        :func:`as_float_image` returns.

    Raises:
        FileNotFoundError: ``content`` is None.
        ImageReadError: Not an image, truncated, or a pixel type or channel count this project does not handle.
    """
    import cv2
    import numpy as np
    if content is None:
        raise FileNotFoundError(f'image not found: {name}')
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) if len(content) else None
    if img is None:
        raise ImageReadError(f'cannot decode image {name}: unreadable, truncated or not an image')
    if img.dtype.name not in PIXEL_TYPES:
        raise ImageReadError(f'{name}: unsupported pixel type {img.dtype} (8/16-bit or float32 images)')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        if img.shape[2] not in (3, 4):
            raise ImageReadError(f'{name}: {img.shape[2]} channels; expected 1, 3 or 4')
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return as_float_image(img, name) if as_float else img


def as_float_image(img, name):
    """A decoded 8/16-bit image as the datasets and benchmarks use it: float32 RGB in [0, 1].

    Grey (1-channel) images become 3 equal channels; RGBA drops alpha with a warning; 16-bit images
    keep full precision.

    Args:
        img (ndarray): (H, W) or (H, W, 3|4), from :func:`decode_image`.
        name (str): File name or LMDB key, for messages.

    Returns:
        tuple: ``img`` (H, W, 3) float32 RGB, ``grey`` (bool: the file had one channel),
        ``levels`` (int: 255 for 8-bit, 65535 for 16-bit).

    Raises:
        ImageReadError: A float image.
    """
    import numpy as np
    levels = PEAKS.get(img.dtype.name)
    if levels is None:
        raise ImageReadError(f'{name}: unsupported pixel type {img.dtype} (8- or 16-bit images only)')
    grey = img.ndim == 2
    if grey:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        warnings.warn(f'{name}: RGBA image, the alpha channel is dropped', stacklevel=3)
        img = img[..., :3]
    return img.astype(np.float32) / levels, grey, levels


def to_pixels(img, dtype='uint8'):
    """An image as 8- or 16-bit pixels, rounded: how outputs are saved, shown and measured.

    Args:
        img (ndarray): Float in [0, 1] (values outside are clipped), uint8 or uint16.
        dtype (str | np.dtype): 'uint8' (default) or 'uint16'.

    Returns:
        ndarray: ``img`` itself if it already is ``dtype``, else a new array of the same shape.
    """
    import numpy as np
    dtype = np.dtype(dtype)
    if img.dtype == dtype:
        return img
    peak = PEAKS[dtype.name]
    if img.dtype.kind == 'f':
        return np.round(np.clip(img, 0, 1) * peak).astype(dtype)
    return np.round(img / (PEAKS[img.dtype.name] / peak)).astype(dtype)


#: The largest image file read (a 16-bit RGB PNG of 20000 x 20000 pixels stored raw is 2.4 GB).
MAX_IMAGE_BYTES = 1 << 31


def read_bytes(path, max_bytes=MAX_IMAGE_BYTES):
    """The contents of a regular file of at most ``max_bytes``, with the file system's error naming it.

    A fifo, a device (``/dev/zero``) or a folder, whatever its name and behind any symlink, is refused
    without waiting on it or reading it.

    Args:
        path (str): A file.
        max_bytes (int): Size bound. Default: :data:`MAX_IMAGE_BYTES`.

    Raises:
        FileNotFoundError: The file cannot be read (missing, a folder, permission denied...).
        ImageReadError: It is not a regular file, or it is larger than ``max_bytes``.
    """
    from nodesr_arch.option_files import OptionFileError, read_regular_file
    try:
        return read_regular_file(path, max_bytes, what='image file')
    except OptionFileError as e:
        raise ImageReadError(str(e)) from None


def read_image(path, check=False, as_float=False):
    """Read an image file (see :func:`decode_image`), optionally as a photo viewer shows it.

    The file is read once and its pixels decoded once (by OpenCV, which keeps 16-bit and float depths).

    Args:
        path (str): An image file.
        check (bool): Also identify it with PIL and turn the image as its EXIF orientation tag says; a file
            OpenCV refuses, or a JPEG without its end (which OpenCV 4 decodes as half an image), is then
            refused with PIL's reason. Default: False.
        as_float (bool): Return the image as the datasets and benchmarks use it (see :func:`as_float_image`).
            Default: False.

    Returns:
        ndarray: (H, W) grey or (H, W, 3|4) RGB(A), uint8, uint16 or float32; with ``as_float``, the tuple
        :func:`as_float_image` returns.

    Raises:
        FileNotFoundError: The file cannot be read.
        ImageReadError: It cannot be decoded.
    """
    import numpy as np
    content = read_bytes(path)
    if not check:
        img = decode_image(content, path)
        return as_float_image(img, path) if as_float else np.ascontiguousarray(img)
    orientation, jpeg = 1, False  # for a float RGB TIFF, which PIL cannot open
    with _pil_errors(path, content):
        from PIL import Image
        with Image.open(io.BytesIO(content)) as im:  # reads the header and the EXIF tags, not the pixels
            orientation = _orientation(im, content)
            jpeg = im.format == 'JPEG'
    if jpeg and not _jpeg_complete(content):  # half a JPEG, which OpenCV 4 decodes, or an odd one: PIL decides
        _pil_decode(path, content)
    try:
        img = decode_image(content, path)
    except ImageReadError:
        _pil_decode(path, content)  # PIL's reason where it has one, as when PIL decoded every file
        raise
    img = apply_orientation(img, orientation)
    return as_float_image(img, path) if as_float else np.ascontiguousarray(img)


def _pil_decode(path, content):
    """Decode image bytes with PIL, for its reason to refuse them (ImageReadError); None if it can."""
    from PIL import Image
    with _pil_errors(path, content), Image.open(io.BytesIO(content)) as im:
        im.load()


@contextlib.contextmanager
def _pil_errors(path, content):
    """PIL's errors on ``path`` as ImageReadError naming it (a float RGB TIFF, which PIL cannot read, passes)."""
    from PIL import UnidentifiedImageError
    try:
        yield
    except UnidentifiedImageError:
        if content[:4] not in (b'II*\x00', b'MM\x00*'):  # not a TIFF: OpenCV's libtiff reads what PIL cannot
            raise ImageReadError(f'cannot decode image {path}: not an image in a supported format '
                                 f'({", ".join(e[1:] for e in IMG_EXTENSIONS)}; 8/16-bit, float32 TIFF)') from None
    except ImageReadError:
        raise
    except Exception as e:
        raise ImageReadError(f'cannot decode image {path}: {e}') from None


def _orientation(im, content):
    """The EXIF orientation tag of an opened PIL image (1 when it has none), without decoding its pixels."""
    if im.format == 'PNG' and 'exif' not in im.info:  # PIL would decode the pixels to reach an eXIf chunk after them
        chunk = _png_chunk(content, b'eXIf')
        if chunk is None:
            return 1
        im.info['exif'] = chunk if chunk.startswith(b'Exif\x00\x00') else b'Exif\x00\x00' + chunk
    return im.getexif().get(0x0112, 1)


def _png_chunk(content, kind):
    """The data of the first chunk of type ``kind`` in PNG bytes, or None (a walk over the chunk headers)."""
    i = 8
    while i + 8 <= len(content):
        length = int.from_bytes(content[i:i + 4], 'big')
        if content[i + 4:i + 8] == kind:
            return content[i + 8:i + 8 + length]
        i += 12 + length
    return None


def _jpeg_complete(content):
    """Whether JPEG bytes hold an end-of-image marker after the start of their scan (a header walk, no decoding)."""
    i = 2
    while i + 4 <= len(content):
        if content[i] != 0xFF:
            return False
        marker = content[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data holds no unstuffed 0xFFD9 but the end marker
            return content.find(b'\xff\xd9', i) >= 0
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(content[i + 2:i + 4], 'big')
    return False


def apply_orientation(img, orientation):
    """Turn an image as its EXIF orientation tag (1-8) says, so the output is upright (phone photos).

    Args:
        img (ndarray): (H, W[, C]) image.
        orientation (int): The tag's value; 1 (or anything outside 2-8) leaves the image as it is.
    """
    if orientation in (5, 6, 7, 8):
        img = img.swapaxes(0, 1)  # transpose, then flip as below
    flips = {2: (False, True), 3: (True, True), 4: (True, False), 5: (False, False), 6: (False, True),
             7: (True, True), 8: (True, False)}.get(orientation, (False, False))
    if flips[0]:
        img = img[::-1]
    if flips[1]:
        img = img[:, ::-1]
    return img


def partial_path(final, kind='partial'):
    """The temporary name :func:`atomic_write` writes ``final`` under: ``.STEM.PID.partial.EXT`` beside it.

    Args:
        final (str): The final file.
        kind (str): The word in place of ``partial`` (``replaced``: a folder being replaced). Default: 'partial'.
    """
    stem, ext = os.path.splitext(os.path.basename(final))
    return os.path.join(os.path.dirname(final), f'.{stem}.{os.getpid()}.{kind}{ext}')


def is_partial(name):
    """Whether a file name is one of :func:`partial_path`'s; returns the PID that wrote it, else None."""
    parts = name.split('.')
    if name.startswith('.') and len(parts) >= 4 and parts[-2] == 'partial' and parts[-3].isdigit():
        return int(parts[-3])
    return None


def remove_stale_partials(folder, locked=False):
    """Remove the partial files of runs that no longer live (a ``kill -9`` leaves them).

    Args:
        folder (str): An output folder.
        locked (bool): The caller holds the folder's lock (an experiment's), so every partial file in it is a
            dead run's, even where a live process has its PID since (a restarted container); the
            ``.NAME.pth.XXXX.tmp`` and ``.NAME.state.XXXX.tmp`` checkpoint temporaries of earlier versions
            go too. Default: False.

    Returns:
        list[str]: The removed files.
    """
    removed = []
    for name in os.listdir(folder):
        pid = is_partial(name)
        if locked:  # every partial file is a dead run's
            stale = pid is not None or _is_old_temporary(name)
        else:
            stale = pid is not None and not _alive(pid)
        if not stale:
            continue
        try:
            os.remove(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _is_old_temporary(name):
    """Whether a file name is a checkpoint temporary of earlier versions (``.net_g_8.pth.XXXX.tmp``)."""
    parts = name.split('.')
    return name.startswith('.') and len(parts) > 3 and parts[-1] == 'tmp' and parts[-3] in ('pth', 'state')


def _alive(pid):
    """Whether process ``pid`` runs (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def atomic_write(path, write, replace=True, sync=False):
    """Call ``write(tmp)`` on a temporary name beside ``path`` (:func:`partial_path`), then move it to ``path``.

    ``write`` may make a folder there (an LMDB, a set of images): it is moved into place whole.

    Args:
        path (str): Final file or folder.
        write (callable): Writes the file (or folder) whose path it is given.
        replace (bool): Replace an existing ``path``; otherwise raise FileExistsError if it exists, even if it
            appeared while ``write`` ran.
        sync (bool): ``fsync`` the file before the move (checkpoints: the new file is complete on disk before
            it replaces the previous one).

    Returns:
        What ``write`` returns.

    Raises:
        OSError: The file system's error (no space left, permission denied...); no temporary file is left.
        FileExistsError: ``path`` exists and ``replace`` is False; the message names it.
    """
    tmp = partial_path(path)
    try:
        result = write(tmp)
        if sync:
            with open(tmp, 'rb+') as f:
                os.fsync(f.fileno())
        _commit(tmp, path, replace)
    finally:
        _remove(tmp)
    return result


def _remove(path):
    """Remove a file or a folder tree if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _commit(tmp, final, replace):
    """Move a finished temporary file to ``final``; without ``replace`` never replace an existing file."""
    if replace and os.path.isdir(tmp) and os.path.lexists(final):
        old = partial_path(final, 'replaced')
        os.replace(final, old)  # a folder cannot replace another in one move: the old one steps aside whole
        try:
            os.replace(tmp, final)
        except OSError:
            os.replace(old, final)
            raise
        _remove(old)
        return
    if replace:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails if final exists, even if it appeared while we worked
    except FileExistsError:
        raise FileExistsError(f'{final} appeared while running') from None
    except OSError:  # file systems without hard links
        if os.path.exists(final):
            raise FileExistsError(f'{final} exists') from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


def write_bytes(path, data, replace=True):
    """Write bytes or text to ``path`` atomically (text as UTF-8, newlines as given).

    Args:
        path (str): Final file.
        data (bytes | str): Contents.
        replace (bool): See :func:`atomic_write`.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)

    atomic_write(path, write, replace)


class ImageWriteError(ValueError):
    """An image cannot be encoded in the format asked for (depth, channels or size)."""


def encode_image(ext, img, params=()):
    """Encode an RGB(A)/grey image (uint8, uint16 or float32) in the format of extension ``ext``.

    Args:
        ext (str): ``'.png'``, ``'.jpg'``... (OpenCV picks the format by it).
        img (ndarray): (H, W) grey or (H, W, 3|4) RGB(A).
        params (sequence[int]): OpenCV's encoder options, e.g. ``[cv2.IMWRITE_PNG_COMPRESSION, 9]``. Default: none.

    Returns:
        bytes: The file's contents.

    Raises:
        ImageWriteError: The format cannot hold this image.
    """
    import cv2
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # the error below says it in one line
    try:
        ok, buf = cv2.imencode(ext, img, list(params))
    except cv2.error as e:
        ok, buf = False, str(e).strip().splitlines()[-1]
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not ok:
        raise ImageWriteError(f'cannot encode a {img.shape[1]}x{img.shape[0]} {img.dtype} image as {ext}'
                              f'{f" ({buf})" if isinstance(buf, str) else ""}')
    return buf.tobytes()


def write_image(path, img, replace=True, params=()):
    """Write an RGB(A)/grey image (uint8, uint16 or float32) atomically, in the format of its extension.

    Args:
        path (str): Final file; its extension picks the format.
        img (ndarray): (H, W) grey or (H, W, 3|4) RGB(A).
        replace (bool): See :func:`atomic_write`.
        params (sequence[int]): See :func:`encode_image`.
    """
    write_bytes(path, encode_image(os.path.splitext(path)[1], img, params), replace)
