"""What the arbitrary-scale rivals of NODE-SR (Meta-SR, LIIF) share: an LR-resolution encoder from the registry and
an upsampler that predicts each output pixel from it, evaluated in chunks of output pixels.

:class:`EncoderUpsampler` is their common part (the contract's ``input_size: 'lr'``, the scale and size checks,
input normalisation, the chunked query); a subclass gives :meth:`EncoderUpsampler.query`. Output pixels are
addressed by flat index ``row * W + col`` into the (H, W) output, so training on a random subset of GT pixels
(LIIF's ``sample_q``) and whole-image inference take the same path: see :meth:`EncoderUpsampler.forward` and
:func:`gather_pixels`.
"""
import numbers

import torch
from torch import nn

from nodesr_arch.archs.contract import NO_TILING, SRNetwork
from nodesr_arch.archs.nodesr_arch import build_registry_arch, probe
from nodesr_arch.scales import check_scales, output_size

#: Values of ``residual``: None (the authors' networks, which predict the image) or ``'bicubic'``.
RESIDUALS = (None, 'bicubic')


def build_encoder(spec, owner, num_in_ch=3):
    """Build an encoder from a registry option dict and check it keeps the LR resolution.

    Its input-channel key (``num_in_ch``, ``in_chans``...) is set to ``num_in_ch`` unless given
    (:func:`nodesr_arch.archs.nodesr_arch.build_registry_arch`).

    Args:
        spec (dict): ``{type: <registry name>, ...}``.
        owner (str): Name of the network being built, for error messages.
        num_in_ch (int): Channels of the image. Default: 3.

    Returns:
        tuple[nn.Module, int]: The encoder and the number of feature channels it gives.

    Raises:
        ValueError: ``spec`` is not a registry dict, or the encoder changes the resolution or fails.
    """
    net, spec, _ = build_registry_arch(spec, owner, 'encoder', num_in_ch)
    try:
        x, out = probe(net, num_in_ch, 16)
    except RuntimeError as err:
        raise ValueError(f"{owner}: encoder {spec['type']} fails on a {num_in_ch}-channel input: {err}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[-2:] != x.shape[-2:]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{owner}: encoder {spec['type']} maps {tuple(x.shape)} to {shape}; it must keep the LR "
                         'resolution (an architecture without its upsampler, e.g. EDSRBody or RDNBody)')
    return net, int(out.shape[1])


def gather_pixels(img, pixels):
    """The pixels ``pixels`` (flat indices ``row * W + col``) of ``img``, as the query path returns them.

    Args:
        img (Tensor): (B, C, H, W), e.g. the GT batch.
        pixels (Tensor): (B, Q) or (Q,) int64 flat indices.

    Returns:
        Tensor: (B, C, Q).
    """
    b, c = img.shape[:2]
    idx = pixels.to(img.device).long().view(-1, 1, pixels.shape[-1]).expand(b, c, -1)
    return img.flatten(2).gather(2, idx)


def bicubic_pixels(lq, scales, pixels, out_w):
    """The MATLAB-bicubic enlargement of each ``lq`` by its own scale, read at output pixels.

    Pixel ``row * out_w + col`` of sample ``b`` is pixel ``(row, col)`` of ``imresize(lq[b], scales[b])``
    (pixel centres aligned, the geometry of the query and of :func:`nodesr_arch.inference.enlarge_to`);
    samples of one scale share one enlargement.

    Args:
        lq (Tensor): (B, C, h, w).
        scales (Tensor): (B,) scales.
        pixels (Tensor): (B, Q) or (1, Q) int64 flat indices.
        out_w (int): The width of the index grid.

    Returns:
        Tensor: (B, C, Q).
    """
    from nodesr_arch.data.scale_space import imresize  # here: nodesr_arch.data imports this module
    values = scales.tolist()
    pixels = pixels.expand(len(values), -1)
    out = lq.new_empty(lq.shape[0], lq.shape[1], pixels.shape[1])
    for s in dict.fromkeys(values):
        same = [i for i, v in enumerate(values) if v == s]
        img = imresize(lq[same], float(s))  # (n, C, ceil(h s), ceil(w s))
        p = pixels[same]
        # out[b, :, q] = img[b, :, row q, col q]
        out[same] = img[torch.arange(len(same)).view(-1, 1), :, p // out_w, p % out_w].permute(0, 2, 1)
    return out


def _channel_values(value, channels, name, owner):
    values = [value] * channels if isinstance(value, numbers.Real) else list(value)
    if len(values) != channels or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise ValueError(f'{owner}: {name} must be one number or {channels} numbers, got {value!r}')
    return torch.tensor(values, dtype=torch.float32).view(1, channels, 1, 1)


class EncoderUpsampler(SRNetwork, nn.Module):
    """An LR encoder followed by an upsampler that predicts output pixels from the LR features at any scale.

    ``forward(lq, scale, out_size)``: the input is normalised (``(lq - img_mean) / img_std``), encoded at LR
    resolution, and every output pixel is predicted by :meth:`query`, ``eval_chunk`` pixels at a time (so the
    memory of the upsampler is bounded at any output size; the result does not depend on the chunk size), and
    de-normalised (``* img_std + img_mean``). With ``residual: bicubic`` the de-normalised prediction is added
    to the MATLAB-bicubic enlargement of ``lq`` by the sample's scale (the image NODE-SR and VDSR+t start from),
    read at the same output pixels, instead of to ``img_mean``: the upsampler learns the residual, as VDSR
    and LTE (Lee & Jin, CVPR 2022, bilinear) do. Not in Meta-SR or LIIF; this project's variant for training
    budgets too short for an image to be learnt from scratch (docs/architectures.md).

    Tiling does not apply: the encoder runs on the whole LR image and the chunks replace tiles.
    :meth:`set_tiling` with a tile raises ValueError saying so, which the API, ``val: tile`` and the option
    check pass on (``set_tiling(None)`` is accepted and does nothing).

    Args:
        encoder (dict): Registry option dict of the LR encoder (see :func:`build_encoder`).
        num_in_ch (int): Channels of the image.
        num_out_ch (int): Channels of the output.
        img_mean (float | list[float]): Subtracted from the input, added to the output.
        img_std (float | list[float]): Divides the input, multiplies the output.
        eval_chunk (int): Output pixels per evaluation of the upsampler.
        residual (str | None): None: predict the image (the authors'); ``'bicubic'``: predict the residual over
            the bicubic enlargement (see above). Default: None.
    """

    takes_scale = True
    input_size = 'lr'
    is_ode = False
    #: True: a batch may mix scales (one per sample); False: :meth:`forward` refuses a mixed batch.
    mixed_scales = True
    #: The contract's ``tiles`` is False: the chunks of output pixels bound the memory instead.
    can_tile = False

    def __init__(self, encoder, num_in_ch, num_out_ch, img_mean, img_std, eval_chunk, residual=None):
        super().__init__()
        name = type(self).__name__
        if residual not in RESIDUALS:
            raise ValueError(f'{name}: residual must be one of {list(RESIDUALS)}, got {residual!r}')
        self.residual = residual
        if isinstance(eval_chunk, bool) or not isinstance(eval_chunk, numbers.Integral) or eval_chunk < 1:
            raise ValueError(f'{name}: eval_chunk must be a positive integer, got {eval_chunk!r}')
        self.encoder, self.num_feat = build_encoder(encoder, name, num_in_ch)
        self.num_out_ch = int(num_out_ch)
        self.eval_chunk = int(eval_chunk)
        self.register_buffer('img_mean', _channel_values(img_mean, num_in_ch, 'img_mean', name), persistent=False)
        self.register_buffer('img_std', _channel_values(img_std, num_in_ch, 'img_std', name), persistent=False)
        if num_out_ch != num_in_ch:
            raise ValueError(f'{name}: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}): the output is '
                             'de-normalised with the input statistics')

    def set_tiling(self, tile=None, tile_pad=None):
        """Refuse tiling: the output is already evaluated in chunks of ``eval_chunk`` pixels.

        Args:
            tile (int | None): None (off) is accepted and does nothing; a tile raises ValueError.
            tile_pad (int | None): Ignored.

        Returns:
            The network itself.
        """
        if tile is not None:
            raise ValueError(f'{type(self).__name__} does not tile: it evaluates its output in chunks of eval_chunk '
                             f'({self.eval_chunk}) pixels, so memory is bounded at any size; set eval_chunk instead')
        return self

    def tiling_for(self, tile=None, tile_pad=None):
        """Refuse a tile as :meth:`set_tiling` does; ``tile=None`` gives the no-tiling of one call."""
        self.set_tiling(tile, tile_pad)
        return NO_TILING

    def plan(self, lq, scale, out_size=None):
        """Check a request and fill in the output size.

        Args:
            lq (Tensor): (B, C, h, w) LR images.
            scale (float | Tensor): One scale, or one per sample (each >= 1).
            out_size (tuple[int, int] | Tensor | None): Output (H, W); None: ``scales.output_size``.

        Returns:
            tuple[Tensor, tuple[int, int]]: Scales (B,) float64 on ``lq``'s device, and (H, W).
        """
        name = type(self).__name__
        if lq.dim() != 4:
            raise ValueError(f'{name}: lq must be (B, C, h, w), got shape {tuple(lq.shape)}')
        b, _, h, w = lq.shape
        scales = check_scales(scale, b, device=lq.device, dtype=torch.float64)
        if not self.mixed_scales and b > 1 and bool((scales != scales[0]).any()):
            raise ValueError(f'{name} takes one scale per batch (it predicts one set of upsampling weights per '
                             f'scale), got {sorted(set(scales.tolist()))}; split the batch by scale or draw one '
                             'scale per batch (scale_per_batch: true)')
        if out_size is None:
            sizes = {output_size((h, w), s) for s in scales.tolist()}
            if len(sizes) > 1:
                raise ValueError(f'{name}: the scales of this batch give different output sizes {sorted(sizes)}; '
                                 'give out_size')
            out_size = sizes.pop()
        out_size = tuple(int(v) for v in (out_size.tolist() if isinstance(out_size, torch.Tensor) else out_size))
        if len(out_size) != 2 or min(out_size) < 1:
            raise ValueError(f'{name}: out_size must be two positive integers (H, W), got {out_size!r}')
        return scales, out_size

    def forward(self, lq, scale, out_size=None, pixels=None):
        """Super-resolve ``lq`` by ``scale`` to ``out_size``, or predict only the output pixels ``pixels``.

        Args:
            lq (Tensor): (B, C, h, w) LR images in [0, 1].
            scale (float | Tensor): One scale for the batch, or one per sample (B,), each >= 1.
            out_size (tuple[int, int] | Tensor | None): Output (H, W); None: ``floor(h * s)`` per axis
                (``nodesr_arch.scales.output_size``).
            pixels (Tensor | None): (B, Q) or (Q,) int64 flat indices ``row * W + col`` of the output pixels
                to predict (training on random GT pixels: compare with ``gather_pixels(gt, pixels)``); None:
                all of them. A pixel is placed by its row, its column and its sample's scale alone (``out_size``
                only bounds the indices), so samples with different output sizes can share one index grid.

        Returns:
            Tensor: (B, C, H, W); with ``pixels``, (B, C, Q).
        """
        scales, (out_h, out_w) = self.plan(lq, scale, out_size)
        feat = self.encoder((lq - self.img_mean) / self.img_std)
        flat = pixels is None
        if flat:
            pixels = torch.arange(out_h * out_w, device=lq.device)
        pixels = pixels.to(lq.device).long().view(-1, pixels.shape[-1])
        if pixels.shape[0] not in (1, lq.shape[0]):
            raise ValueError(f'{type(self).__name__}: pixels must be (Q,) or (B, Q) for a batch of {lq.shape[0]}, '
                             f'got {tuple(pixels.shape)}')
        if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= out_h * out_w):
            raise ValueError(f'{type(self).__name__}: pixels must index the {out_h}x{out_w} output')
        state = self.prepare(feat)
        chunks = [self.query(state, scales, (out_h, out_w), (chunk // out_w, chunk % out_w))
                  for chunk in pixels.split(self.eval_chunk, dim=1)]
        out = torch.cat(chunks, dim=1).permute(0, 2, 1) * self.img_std.flatten(1, 2)
        if self.residual == 'bicubic':
            out = out + bicubic_pixels(lq, scales, pixels, out_w).to(out.dtype)
        else:
            out = out + self.img_mean.flatten(1, 2)
        return out.reshape(lq.shape[0], -1, out_h, out_w) if flat else out

    def prepare(self, feat):
        """What :meth:`query` reads, computed once per image from the encoder's features (default: them)."""
        return feat

    def query(self, state, scales, out_size, rowcol):
        """Predict output pixels (normalised).

        Args:
            state: What :meth:`prepare` returned.
            scales (Tensor): (B,) float64 scales.
            out_size (tuple[int, int]): Output (H, W).
            rowcol (tuple[Tensor, Tensor]): Rows and columns of the pixels, each (B, Q) or (1, Q) int64.

        Returns:
            Tensor: (B, Q, num_out_ch).
        """
        raise NotImplementedError
