"""Validation helpers of :class:`~nodesr_arch.models.nodesr_model.NODESRModel`: gathering results over ranks,
the trajectory states and the test summary files (per-image metrics are :mod:`nodesr_arch.metrics`')."""
import csv
import io
import json
import os

import torch.distributed as dist

from nodesr_arch.file_io import write_bytes
from nodesr_arch.scales import trajectory_scales


def gather_records(records):
    """All ranks' lists of per-image records, concatenated (every rank must call this)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(records)
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(records))
    return [r for part in gathered for r in part]


def center_crop(x, max_size):
    """Centre crop of a (..., H, W) tensor to at most ``max_size`` per side (None: no crop)."""
    if not max_size:
        return x
    h, w = x.shape[-2:]
    ch, cw = min(h, int(max_size)), min(w, int(max_size))
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


def trajectory_states(net, x, scale, num=5):
    """The states ``I(t_i)`` from ``t = scale`` down to 1, for :func:`nodesr_arch.inference.trajectory_strip`.

    Args:
        net (nn.Module): A NODE-SR network (``forward(x, scale, t_eval)``).
        x (Tensor): (1, C, H, W): ``I(scale)``, the bicubic-enlarged input at output size.
        scale (float): The scale ``s`` (> 1).
        num (int): Number of states, equally spaced in ``t`` from ``s`` to 1 (>= 2).

    Returns:
        list[tuple[float, ndarray]]: ``(t_i, (H, W, C) float image in [0, 1])`` pairs.
    """
    ts = trajectory_scales(max(2, int(num)), scale)
    states = net(x, scale, t_eval=ts)[:, 0].clamp(0, 1)  # (K, C, H, W)
    return [(t, state.float().cpu().numpy().transpose(1, 2, 0)) for t, state in zip(ts, states)]


def write_summary(folder, summary):
    """Write ``metrics.json`` and ``metrics.csv`` (one row per set and image) into ``folder``, atomically.

    Args:
        folder (str): The results folder.
        summary (dict): ``{set_name: {'scale', 'num_images', 'metrics': {m: mean},
            'images': {image: {m: value}}}}``.
    """
    os.makedirs(folder, exist_ok=True)
    metric_names = sorted({m for s in summary.values() for m in s['metrics']})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['set', 'scale', 'image'] + metric_names)
    for set_name, s in summary.items():
        writer.writerow([set_name, s['scale'], 'MEAN'] + [_fmt(s['metrics'].get(m)) for m in metric_names])
        for image, values in s['images'].items():
            writer.writerow([set_name, s['scale'], image] + [_fmt(values.get(m)) for m in metric_names])
    write_bytes(os.path.join(folder, 'metrics.csv'), buf.getvalue())
    write_bytes(os.path.join(folder, 'metrics.json'), json.dumps(summary, indent=2, allow_nan=True) + '\n')


def _fmt(value):
    return '' if value is None else f'{value:.6f}'
