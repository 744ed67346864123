"""Validation helpers of :class:`~nodesr_arch.models.nodesr_model.NODESRModel`: per-image metrics with
per-image borders, gathering results over ranks, the trajectory strip and the test summary files."""
import csv
import io
import json
import os

import torch
import torch.distributed as dist

from basicsr.metrics import calculate_metric
from basicsr.utils import tensor2img
from nodesr_arch.file_io import write_bytes
from nodesr_arch.scales import crop_border, trajectory_scales


def image_metrics(sr, gt, scale, grey, metric_opts):
    """BasicSR metrics of one image.

    Args:
        sr (Tensor): (C, H, W) output in [0, 1] (rounded to 8 bits here, as BasicSR does).
        gt (Tensor): (C, H, W) ground truth in [0, 1].
        scale (float): The image's scale, for ``crop_border: scale``.
        grey (bool): The image was 1-channel: measure channel 0 directly, without YCbCr.
        metric_opts (dict): ``val: metrics`` of the option YAML, e.g.
            ``{psnr: {type: calculate_psnr, crop_border: scale, test_y_channel: true}}``.

    Returns:
        dict[str, float]: One value per metric.
    """
    if grey:
        sr, gt = sr[:1], gt[:1]
    data = {'img': tensor2img(sr), 'img2': tensor2img(gt)}
    results = {}
    for name, opt in metric_opts.items():
        opt = dict(opt)
        opt.pop('better', None)
        if opt.get('crop_border') == 'scale':
            opt['crop_border'] = crop_border(scale)  # ceil(s), docs/design.md section 3.4
        if grey:
            opt['test_y_channel'] = False
        results[name] = float(calculate_metric(data, opt))
    return results


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


def trajectory_strip(net, x, scale, num=5, gap=2):
    """The states ``I(t_i)`` from ``t = scale`` down to 1, side by side (the paper's Fig. 2).

    Args:
        net (nn.Module): A NODE-SR network (``forward(x, scale, t_eval)``).
        x (Tensor): (1, C, H, W): ``I(scale)``, the bicubic-enlarged input at output size.
        scale (float): The scale ``s`` (> 1).
        num (int): Number of states, equally spaced in ``t`` from ``s`` to 1 (>= 2).
        gap (int): White pixels between the states.

    Returns:
        tuple[Tensor, list[float]]: The (C, H, num * W + (num - 1) * gap) strip in [0, 1] and the ``t_i``.
    """
    num = max(2, int(num))
    ts = trajectory_scales(num, scale)
    states = net(x, scale, t_eval=ts)[:, 0].clamp(0, 1)  # (K, C, H, W)
    white = torch.ones(states.shape[1], states.shape[2], gap, dtype=states.dtype, device=states.device)
    parts = []
    for i, state in enumerate(states):
        if i:
            parts.append(white)
        parts.append(state)
    return torch.cat(parts, dim=-1), ts


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
