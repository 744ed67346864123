"""PSNR/SSIM as the SR literature measures them (docs/design.md sections 3.4-3.5), through BasicSR's metrics.

Colour images: Y channel (``test_y_channel``) of the 8-bit-rounded images. Grey images (1-channel
files, run as 3 equal channels): their single channel directly, without the YCbCr conversion.
Border: ``ceil(scale)`` pixels.
"""
import numpy as np

from nodesr_arch.data.image_io import to_uint8
from nodesr_arch.scales import crop_border


def _prepare(img, grey):
    img = np.asarray(img)
    img = img if img.dtype == np.uint8 else to_uint8(img)
    if img.ndim == 2:
        return img
    return img[..., 0] if grey else img[..., ::-1]  # BasicSR's Y conversion expects BGR


def psnr_ssim(sr, gt, scale, grey=False):
    """PSNR (dB) and SSIM of an SR image against its GT.

    Args:
        sr (ndarray): (H, W, 3) RGB, float in [0, 1] (rounded to 8 bits here) or uint8.
        gt (ndarray): Same shape and kind as ``sr``.
        scale (float): The SR scale; the border crop is ``ceil(scale)``.
        grey (bool): The image is grey: measure channel 0 without YCbCr. Default: False.

    Returns:
        tuple[float, float]: PSNR, SSIM.
    """
    from basicsr.metrics import calculate_psnr, calculate_ssim  # here: importing BasicSR imports all of it

    if np.shape(sr) != np.shape(gt):
        raise ValueError(f'SR {np.shape(sr)} and GT {np.shape(gt)} differ in size')
    a, b = _prepare(sr, grey), _prepare(gt, grey)
    border = crop_border(scale)
    y = not grey and a.ndim == 3
    return (float(calculate_psnr(a, b, border, input_order='HWC', test_y_channel=y)),
            float(calculate_ssim(a, b, border, input_order='HWC', test_y_channel=y)))
