"""PSNR/SSIM as the SR literature measures them (docs/design.md sections 3.4-3.5), through BasicSR's metrics.

Colour images: Y channel (``test_y_channel``) of the 8-bit-rounded images. Grey images (1-channel
files, run as 3 equal channels): their single channel directly, without the YCbCr conversion.
Border: ``ceil(scale)`` pixels (``crop_border: scale``).
"""
import numpy as np

from nodesr_arch.file_io import to_pixels
from nodesr_arch.scales import crop_border

#: The literature's metrics, in the form of ``val: metrics`` of an option YAML.
PSNR_SSIM = {'psnr': {'type': 'calculate_psnr', 'crop_border': 'scale', 'test_y_channel': True},
             'ssim': {'type': 'calculate_ssim', 'crop_border': 'scale', 'test_y_channel': True}}


def _prepare(img, grey):
    """An image as BasicSR's metrics take it: 8-bit HWC, BGR (its Y conversion expects BGR), grey as (H, W)."""
    if hasattr(img, 'detach'):  # a (C, H, W) tensor
        img = img.detach().float().cpu().numpy().transpose(1, 2, 0)
    img = to_pixels(np.asarray(img))
    if img.ndim == 2:
        return img
    return img[..., 0] if grey else img[..., ::-1]


def image_metrics(sr, gt, scale, grey=False, metric_opts=None):
    """BasicSR metrics of one SR image against its GT.

    Args:
        sr (ndarray | Tensor): (H, W, 3) RGB array or (C, H, W) tensor, float in [0, 1] (rounded to 8 bits
            here) or uint8.
        gt (ndarray | Tensor): Same shape and kind as ``sr``.
        scale (float): The SR scale, for ``crop_border: scale`` (``ceil(scale)``).
        grey (bool): The image is grey: measure channel 0 without YCbCr. Default: False.
        metric_opts (dict | None): ``val: metrics`` of an option YAML, e.g.
            ``{psnr: {type: calculate_psnr, crop_border: scale, test_y_channel: true}}``. Default:
            :data:`PSNR_SSIM`.

    Returns:
        dict[str, float]: One value per metric.
    """
    from basicsr.metrics import calculate_metric  # here: importing BasicSR imports all of it

    if tuple(sr.shape) != tuple(gt.shape):
        raise ValueError(f'SR {tuple(sr.shape)} and GT {tuple(gt.shape)} differ in size')
    data = {'img': _prepare(sr, grey), 'img2': _prepare(gt, grey)}
    results = {}
    for name, opt in (PSNR_SSIM if metric_opts is None else metric_opts).items():
        opt = dict(opt)
        opt.pop('better', None)
        if opt.get('crop_border') == 'scale':
            opt['crop_border'] = crop_border(scale)
        if grey or data['img'].ndim == 2:
            opt['test_y_channel'] = False
        results[name] = float(calculate_metric(data, opt))
    return results
