"""The scale rules, in one place: what a scale is, the output size it gives, the border the metrics crop, how
many fixed steps the solver takes and which scales a trajectory shows.

Ground floor: imports nothing of the plugin, and torch only to check tensors of scales. Every size and count
computed from a float scale uses the one tolerance :data:`EPS` against float error (``3 * (10 / 3)`` is
``9.999...``: its floor must still be 10).
"""
import math
import numbers
from collections import namedtuple

#: Tolerance for float error in sizes, borders and step counts.
EPS = 1e-6

#: A checked request: the ODE's start scale ``t0`` and the output (H, W).
Plan = namedtuple('Plan', 't0 out_size')


def check_scale(scale, name='scale'):
    """Check one scale: a finite real >= 1.

    Args:
        scale (float | int | Tensor): The scale (a one-element tensor or sequence is taken as its value).
        name (str): Name used in error messages. Default: 'scale'.

    Returns:
        float: The scale.

    Raises:
        ValueError: Not a real number, NaN or infinite, or below 1.
    """
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        values = check_scales(scale, name=name)
        if values.numel() != 1:
            raise ValueError(f'{name} must be one number, got {values.numel()}')
        return float(values[0])
    s = float(scale)
    if not math.isfinite(s):
        raise ValueError(f'{name} must be finite, got {[s]} (NaN or infinite)')
    if s < 1:
        raise ValueError(f'{name} must be >= 1, got {s}')
    return s


def check_scales(scale, batch_size=None, device=None, dtype=None, name='scale'):
    """Check scales (each as :func:`check_scale`) and return them as a tensor of shape (B,).

    Args:
        scale (float | Sequence[float] | Tensor): One scale, or one per sample.
        batch_size (int | None): Batch size to broadcast a single scale to.
        device, dtype: Of the returned tensor (dtype default: float32).
        name (str): Name used in error messages. Default: 'scale'.

    Returns:
        Tensor: Shape (B,) (or (K,) for K scales without ``batch_size``).

    Raises:
        ValueError: A scale is not a number, is NaN or infinite, is below 1, or the count mismatches.
    """
    import torch
    if isinstance(scale, (bool, str, bytes)):
        raise ValueError(f'{name} must be a real number >= 1, got {scale!r}')
    try:
        t = torch.as_tensor(scale).detach()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f'{name} must be a real number >= 1, got {scale!r}') from None
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype in _int_dtypes(torch)):
        raise ValueError(f'{name} must be a real number >= 1, got {scale!r}')
    t = t.to(device='cpu', dtype=torch.float64).flatten()
    if t.numel() == 0:
        raise ValueError(f'{name} is empty')
    if not torch.isfinite(t).all():
        raise ValueError(f'{name} must be finite, got {t.tolist()} (NaN or infinite)')
    if (t < 1).any():
        raise ValueError(f'{name} must be >= 1, got {min(t.tolist())}')
    if batch_size is not None:
        if t.numel() == 1:
            t = t.expand(batch_size)
        elif t.numel() != batch_size:
            raise ValueError(f'got {t.numel()} values of {name} for a batch of {batch_size}')
    return t.to(device=device, dtype=torch.float32 if dtype is None else dtype)


def _int_dtypes(torch):
    return (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def output_len(n, scale):
    """``floor(n * scale)`` guarded against float error (docs/design.md section 3.4); at least 1.

    Args:
        n (int): Input length. scale (float): Factor.
    """
    return max(1, math.floor(n * float(scale) + EPS))


def output_size(in_size, scale):
    """Output size of an ``(h, w)`` image enlarged by ``scale``: ``floor(h * s)`` per axis (:func:`output_len`).

    Args:
        in_size (tuple[int, int]): Input (h, w).
        scale (float | tuple[float, float]): One factor or one per axis.

    Returns:
        tuple[int, int]: (h, w), each at least 1.
    """
    sh, sw = (scale, scale) if isinstance(scale, numbers.Real) else scale
    return output_len(in_size[0], sh), output_len(in_size[1], sw)


def crop_border(scale):
    """The border the metrics leave out at ``scale``: ``ceil(scale)`` pixels, tolerant of float error
    (x2.0000000001 -> 2; docs/design.md section 3.4)."""
    return int(math.ceil(float(scale) - EPS))


def num_steps(span, step_size, time='linear'):
    """Fixed-grid steps of ``step_size`` for a solve from scale ``1 + span`` down to 1.

    Args:
        span (float): ``t0 - 1`` (the largest of a batch).
        step_size (float): Step in scale units (``time: linear``) or in ``sqrt(t - 1)`` units (``time: sqrt``).
        time (str): 'linear' or 'sqrt' (see :func:`nodesr_arch.archs.ode.scale_at`).

    Returns:
        int: At least 1; ``(3.0 - 1) / 1.0`` gives 2 steps, not 3.
    """
    if time == 'sqrt':
        span = math.sqrt(span)
    return max(1, math.ceil(span / step_size * (1 - EPS)))


def trajectory_scales(trajectory, t0):
    """The scales ``t_i`` of a trajectory from ``t0`` down to 1.

    Args:
        trajectory (int | Sequence[float] | None): K (>= 2) evenly spaced scales from ``t0`` to 1, or these
            scales; None: no trajectory.
        t0 (float): The start scale.

    Returns:
        list[float] | None: The scales.

    Raises:
        ValueError: Fewer than 2 scales, or a scale outside ``[1, t0]``.
    """
    if trajectory is None:
        return None
    if isinstance(trajectory, numbers.Integral) and not isinstance(trajectory, bool):
        if trajectory < 2:
            raise ValueError(f'trajectory needs at least 2 scales, got {trajectory}')
        k = int(trajectory)
        ts = [t0 + (1.0 - t0) * i / (k - 1) for i in range(k)]
        ts[-1] = 1.0
    else:
        ts = [float(t) for t in trajectory]
    bad = [t for t in ts if not (math.isfinite(t) and 1 <= t <= t0 + EPS)]
    if bad:
        raise ValueError(f'trajectory scales must lie in [1, {t0:g}], got {bad}')
    return ts


def plan_size(in_size, scale=None, size=None, width=None):
    """Check a request and return the ODE start scale ``t0`` and the output size.

    Exactly one of ``scale``, ``size`` and ``width`` must be given.

    Args:
        in_size (tuple[int, int]): Input (h, w), each >= 1.
        scale (float | None): Factor >= 1; output ``floor(h * s) x floor(w * s)``.
        size (tuple[int, int] | None): Exact output (H, W), each >= the input's; per-axis factors,
            ``t0`` = the larger of the two.
        width (int | None): Output width >= the input's; the height keeps the aspect ratio.

    Returns:
        Plan: ``(t0, (H, W))``.

    Raises:
        ValueError: An empty input, not exactly one request, a scale that is not a finite real >= 1,
            or a size or width smaller than the input (this enlarges only).
    """
    h, w = int(in_size[0]), int(in_size[1])
    if h < 1 or w < 1:
        raise ValueError(f'the image is empty ({h}x{w} pixels)')
    given = [name for name, v in (('scale', scale), ('size', size), ('width', width)) if v is not None]
    if len(given) != 1:
        raise ValueError(f'give exactly one of scale, size, width (got {given or "none"})')
    if scale is not None:
        t0 = check_scale(scale)
        return Plan(t0, output_size((h, w), t0))
    if width is not None:
        width = _positive_int(width, 'width')
        if width < w:
            raise ValueError(f'width {width} is smaller than the input width {w} (enlarging only)')
        t0 = width / w
        return Plan(t0, (output_len(h, t0), width))
    oh, ow = check_out_size(size, (h, w))
    return Plan(max(oh / h, ow / w), (oh, ow))


def check_out_size(size, in_size, what='size'):
    """Check an exact output size against the input's.

    Args:
        size (tuple[int, int]): Output (H, W).
        in_size (tuple[int, int]): Input (h, w).
        what (str): The argument's name, for messages. Default: 'size'.

    Returns:
        tuple[int, int]: (H, W) as ints.

    Raises:
        ValueError: ``size`` is not two positive integers, or is smaller than the input on some axis
            (nodesr only enlarges).
    """
    try:
        oh, ow = size
    except (TypeError, ValueError):
        raise ValueError(f'{what} must be (height, width), got {size!r}') from None
    oh, ow = _positive_int(oh, f'{what} height'), _positive_int(ow, f'{what} width')
    h, w = int(in_size[0]), int(in_size[1])
    if oh < h or ow < w:
        raise ValueError(f'{what} {oh}x{ow} is smaller than the input {h}x{w} (HxW) on some axis; '
                         'nodesr only enlarges')
    return oh, ow


def _positive_int(v, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f'{what} must be a positive integer, got {v!r}')
    return int(v)
