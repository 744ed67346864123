"""Python API: load a model (bundled, checkpoint or option YAML) and enlarge images at any scale or size.

Example::

    from nodesr_arch.api import load_model
    up = load_model()                          # the bundled NODE-VDSR
    big = up.upscale(img_uint8, scale=2.7)     # numpy uint8/uint16/float, grey, RGB or RGBA
    big = up.upscale(img, size=(1080, 1920))   # exactly that size
"""
import functools
import math
import warnings

import numpy as np
import torch

from nodesr_arch.amp import check_amp_device, parse_amp
from nodesr_arch.archs.contract import contract
from nodesr_arch.file_io import to_pixels
from nodesr_arch.inference import (FixedScaleWarning, enlarge_to, fixed_scale, fixed_scale_label, fixed_scale_message,
                                   run_network)
from nodesr_arch.loading import DEFAULT_MODEL, WEIGHTS_DIR, bundled_models, load_network  # noqa: F401
from nodesr_arch.runtime import check_runtime, choose_runtime, default_runtime
from nodesr_arch.scales import Plan, check_out_size, check_scale, plan_size  # noqa: F401  (part of the API)
from nodesr_arch.scales import trajectory_scales as _trajectory_scales


def load_model(spec=None, device='cpu', ode=None, amp=None, runtime=None):
    """Load a super-resolution model for inference.

    Args:
        spec (str | None): None: the bundled model (``NODEVDSR_S``); a bundled model's name
            (see :func:`bundled_models`); a ``.pth`` checkpoint (BasicSR format ``{'params': ...,
            'params_ema': ...}``, ``params_ema`` taken when present, or a bare state dict), whose arch
            options come from a sidecar ``same-name.yml`` or from the option YAML BasicSR copies into
            the experiment folder; or an option YAML (``network_g`` + ``path.pretrain_network_g``, else
            the experiment's ``net_g_latest.pth``). A ``path.param_key_g`` in that YAML picks the key
            (``params`` when it is absent, as in BasicSR). Any arch in BasicSR's registry works (EDSR,
            RCAN, ...; a fixed-scale one warns at other scales, see :class:`Upscaler`).
        device (str | torch.device): Where to run. ``'auto'``: CUDA when available. Default: 'cpu'.
        ode (dict | None): Solver overrides for NODE models, e.g. ``{'method': 'euler', 'num_steps': 8}``.
        amp (str | None): ``'bf16'`` or ``'fp16'``: run the network under autocast (mixed precision, the
            ODE state stays fp32; see :mod:`nodesr_arch.amp`). Default: None (fp32).
        runtime (str | None): Where the network's field ``f`` runs (:mod:`nodesr_arch.runtime`): ``'torch'``,
            ``'onnxruntime'`` (the ``[onnx]`` extra, CPU, fp32) or ``'auto'`` (onnxruntime where it is
            installed and measured faster on this network and CPU, else torch). :attr:`Upscaler.runtime`
            says which runs. Default: None, the ``NODESR_RUNTIME`` environment variable, else ``'auto'``.

    Returns:
        Upscaler: The model, in eval mode.
    """
    name, net, net_opt = load_network(spec)
    return Upscaler(net, device=device, ode=ode, name=name, opt=net_opt, amp=amp, runtime=runtime)


def resolve_device(device):
    """``'auto'`` -> CUDA when available, else CPU; anything else as torch.device, checked to work here.

    Raises:
        ValueError: The device is not a device name or is not usable on this machine.
    """
    if device in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError) as e:
        raise ValueError(f'device {str(device)!r} is not usable here: {str(e).splitlines()[0]}') from None
    return device


def available_memory(device):
    """Bytes free for new tensors on ``device``, or None when unknown.

    CUDA: the device's free memory. CPU: the host's ``MemAvailable`` (Linux), lowered to the cgroup's
    memory limit when a container sets one.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0]
    if device.type != 'cpu':
        return None
    free = None
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    free = int(line.split()[1]) * 1024
    except OSError:
        return None
    try:  # cgroup v2: memory.max is 'max' or a byte count
        with open('/sys/fs/cgroup/memory.max') as f, open('/sys/fs/cgroup/memory.current') as g:
            limit, used = f.read().strip(), int(g.read())
        if limit != 'max' and free is not None:
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


class Upscaler:
    """A loaded network with everything needed to enlarge images.

    A fixed-scale network (BasicSR's EDSR, RCAN, SwinIR, RRDBNet... built for one ``upscale``) asked
    for another scale is not refused: it runs at its own scale and its output is resized to the
    requested size with MATLAB bicubic, and every such call warns (:class:`FixedScaleWarning`, a
    ``UserWarning``) naming the model, its scale and the scale asked for. :attr:`fixed_scale` tells the
    network's own factor and :meth:`label` the honest name of a result (``'EDSR x2 + bicubic'``); to
    refuse instead, turn the warning into an error: ``warnings.simplefilter('error', FixedScaleWarning)``.

    Args:
        net (nn.Module): Any SR network (see :func:`nodesr_arch.inference.run_network`).
        device (str | torch.device): Default: 'cpu'.
        ode (dict | None): Solver overrides (NODE models only), passed to ``net.set_ode``.
        name (str): A name for messages.
        opt (dict | None): The ``network_g`` options it was built from.
        amp (str | None): ``'bf16'`` / ``'fp16'`` autocast for the network, checked to work on ``device``
            (:attr:`amp` holds the dtype). Default: None (fp32).
        runtime (str | None): ``'torch'``, ``'onnxruntime'`` or ``'auto'`` (see :func:`load_model`);
            :attr:`runtime` holds the one that runs and :attr:`runtime_reason` why. Default: None
            (``NODESR_RUNTIME``, else ``'auto'``).
    """

    def __init__(self, net, device='cpu', ode=None, name='model', opt=None, amp=None, runtime=None):
        self.device = resolve_device(device)
        # channels_last + inference_mode: 1.7x faster on CPU (docs/benchmarks.md, section 5)
        self.net = net.to(self.device, memory_format=torch.channels_last).eval()
        self.name = name
        self.opt = dict(opt or {})
        self.channels = int(self.opt.get('num_in_ch', 3))
        self._runner = self.net
        if ode:
            self.set_ode(**ode)
        self.amp = parse_amp(amp)
        check_amp_device(self.amp, self.device)
        runtime = default_runtime() if runtime is None else check_runtime(runtime)
        # the network called: self.net itself, or a copy (taking the solver options) whose f runs in onnxruntime
        self._runner, self.runtime, self.runtime_reason = choose_runtime(self.net, runtime, self.device, self.amp)

    @functools.cached_property
    def contract(self):
        """What the network declares (:func:`nodesr_arch.archs.contract.contract`), read once."""
        return contract(self.net)

    @property
    def is_ode(self):
        return self.contract.is_ode

    @property
    def nfe(self):
        """Evaluations of ``f`` in the last solve (whichever runtime ran it); 0 for a one-shot network."""
        return self._runner.ode.nfe if self.is_ode else 0

    @functools.cached_property
    def fixed_scale(self):
        """The one factor the network enlarges by (2 for an x2 EDSR), or None when it takes any scale."""
        return fixed_scale(self.net, self.channels, terms=self.contract)

    def label(self, scale):
        """The name of this model's results at ``scale``: its name, or ``'NAME xF + bicubic'`` when it is a
        fixed-scale xF network asked for another scale."""
        return fixed_scale_label(self.name, self.fixed_scale, scale)

    def _warn_if_resized(self, scale):
        if self.label(scale) != self.name:
            warnings.warn(fixed_scale_message(self.name, self.fixed_scale, [scale]), FixedScaleWarning, stacklevel=3)

    def set_ode(self, **kwargs):
        """Override solver options (``method``, ``num_steps``, ``step_size``, ``rtol``, ``atol``)."""
        if not self.is_ode:
            raise ValueError(f'{self.name} ({type(self.net).__name__}) is not a NODE model; solver '
                             'options (steps, method) do not apply')
        self.net.set_ode(**kwargs)
        if self._runner is not self.net:
            self._runner.set_ode(**kwargs)
        return self

    def tiling_for(self, tile, tile_pad=None):
        """The tiling of a call (``tile=None``: off, None returned), checked; the network is left unchanged.

        Raises:
            ValueError: The network cannot tile, or ``tile``/``tile_pad`` are bad
                (:func:`nodesr_arch.archs.contract.check_tiling`).
        """
        if not self.contract.tiles:
            if tile is not None:
                raise ValueError(f'{self.name} ({type(self.net).__name__}) does not support tiling')
            return None
        return None if tile is None else self.net.tiling_for(tile, tile_pad)

    @torch.inference_mode()
    def _run(self, x, scale, out_size, self_ensemble, tiling, t_eval):
        """x: (B, C, h, w) float tensor of image channels (any C); returns (B, C, H, W) or (K, B, C, H, W).

        ``tiling`` (from :meth:`tiling_for`) and ``t_eval`` (from :meth:`trajectory_scales`) are checked already.
        """
        b, c = x.shape[:2]
        x = x.to(self.device, torch.float32)
        if self.channels == 1:  # one-channel network: each channel on its own
            x = x.reshape(b * c, 1, *x.shape[-2:])
        elif c == 1 and self.channels == 3:  # grey through a colour network as 3 equal channels
            x = x.expand(b, 3, *x.shape[-2:])
        elif c != self.channels:
            raise ValueError(f'{self.name} takes {self.channels}-channel images, got {c} channels')
        # the tiling goes with this call, not onto the shared network (threads may tile differently)
        out = run_network(self._runner, x, scale, out_size, ensemble=self_ensemble, t_eval=t_eval, amp=self.amp,
                          tiling=tiling, terms=self.contract)
        if self.channels == 1:
            out = out.reshape(*out.shape[:-4], b, c, *out.shape[-2:])
        elif c == 1 and self.channels == 3:
            out = out.mean(dim=-3, keepdim=True)
        return out

    @functools.cached_property
    def feature_width(self):
        """The most channels any layer of the network outputs (its widest feature map)."""
        widths = [m.out_channels for m in self.net.modules() if isinstance(m, torch.nn.Conv2d)]
        widths += [m.out_features for m in self.net.modules() if isinstance(m, torch.nn.Linear)]
        return max(widths + [self.channels])

    def memory_estimate(self, out_size, channels=3, self_ensemble=False, tile=None, tile_pad=None, trajectory=None,
                        in_size=None):
        """About how many bytes :meth:`upscale` needs at its peak for an output of ``out_size``.

        Whole-image buffers (the bicubic input, the solver's states, float64 resizing, the result) take
        about 80 bytes per pixel and channel (36 more with the self-ensemble, 8 per trajectory state);
        the network's activations about 8 bytes per pixel and feature channel, over one tile (grown by
        its pad) instead of the image when tiled. Peaks measured on CPU for the bundled NODEVDSR_S (32
        features) on RGB: 443 bytes per output pixel untiled, 218 with 256-pixel tiles, 551 with the
        self-ensemble; these estimates give 496, 248 and 604. The bicubic resizes also build dense float64
        (out x in) weight matrices per axis, 8 bytes per output x input pixel of a side, which dominate for a
        long thin strip (a 1x100000 input at x2: 160 GB); they are counted too.

        Args:
            out_size (tuple[int, int]): Output (H, W).
            channels (int): Image channels (alpha included). Default: 3.
            self_ensemble, tile, tile_pad, trajectory: As for :meth:`upscale`.
            in_size (tuple[int, int] | None): Input (h, w); None assumes the output's (an upper bound when
                enlarging).

        Returns:
            int: Bytes.
        """
        pixels = int(out_size[0]) * int(out_size[1])
        c = max(int(channels), 3)  # grey runs through a colour network as three channels
        states = 0 if trajectory is None else (trajectory if isinstance(trajectory, int) else len(trajectory))
        per_pixel = c * (80 + 36 * bool(self_ensemble) + 8 * states)
        window = pixels
        if tile is not None:
            pad = tile_pad if tile_pad is not None else (self.contract.receptive_radius or 0)
            window = min(pixels, (int(tile) + 2 * int(pad)) ** 2)
        return pixels * per_pixel + window * 8 * self.feature_width + self._resize_matrix_bytes(out_size, in_size)

    def _resize_matrix_bytes(self, out_size, in_size):
        """Bytes of the float64 weight matrices of the bicubic resizes (``scale_space.imresize`` builds each
        axis's ``out_len x in_len`` matrix dense): enlarging the input (or alpha), and for a fixed-scale network
        asked for another scale, resizing its output."""
        out_h, out_w = (int(v) for v in out_size)
        in_h, in_w = (int(v) for v in (in_size or out_size))
        cells = out_h * in_h + out_w * in_w
        factor = self.fixed_scale
        if factor:
            cells += out_h * math.ceil(in_h * factor) + out_w * math.ceil(in_w * factor)
        return 8 * cells

    def trajectory_scales(self, trajectory, t0):
        """The scales ``t_i`` for ``trajectory`` (K, or a list) starting at ``t0``; None for None."""
        if trajectory is None:
            return None
        if not self.is_ode:
            raise ValueError(f'{self.name} ({type(self.net).__name__}) is one-shot: it has no trajectory')
        return _trajectory_scales(trajectory, t0)

    def super_resolve(self, lr, scale, out_size=None, self_ensemble=False, tile=None, tile_pad=None,
                      trajectory=None):
        """Super-resolve a float image.

        Args:
            lr (ndarray | Tensor): float in [0, 1]: numpy (H, W, C) RGB, or a tensor (C, H, W) /
                (B, C, H, W). Values a bicubic enlargement of such an image takes, within [-0.5, 1.5],
                are accepted; NaN, infinite or other values (0-255 data) raise ValueError.
            scale (float): ``t0``, any real >= 1 (beyond the training range too). A fixed-scale network
                asked for another scale warns and resizes its output (see :class:`Upscaler`).
            out_size (tuple[int, int] | None): Output (H, W), each >= the input's (ValueError when
                smaller: this only enlarges). Default: ``floor(h * s) x floor(w * s)``.
            self_ensemble (bool): x8 flip/transpose average (8 times slower). Default: False.
            tile (int | None): Tile size for each evaluation of the network (bounded memory).
            tile_pad (int | None): Overlap per tile side; None: the network's receptive radius.
            trajectory (int | list[float] | None): Also return the ODE states ``I(t_i)``: K scales from
                ``scale`` down to 1, or these scales.

        Raises:
            ValueError: An empty image, NaN/infinite or out-of-range values, a bad scale or ``out_size``.

        Returns:
            Same type and layout as ``lr``, float32, unrounded and unclipped. With ``trajectory``: a
            tuple ``(sr, [(t_i, state_i), ...])``; ``sr`` is what the call gives without
            ``trajectory``, the states come from a second solve whose grid also passes through the
            ``t_i`` (so its last state may differ from ``sr`` by the solver's error).
        """
        t0 = check_scale(scale)
        is_numpy = isinstance(lr, np.ndarray)
        if is_numpy:
            if lr.ndim != 3:
                raise ValueError(f'super_resolve takes (H, W, C) arrays, got shape {lr.shape}')
            x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32).transpose(2, 0, 1))[None]
        elif torch.is_tensor(lr) and lr.ndim in (3, 4):
            x = lr if lr.ndim == 4 else lr[None]
        else:
            raise ValueError(f'super_resolve takes a numpy (H, W, C) array or a (B,) C, H, W tensor, got {lr!r:.80}')
        if x.numel() == 0:
            raise ValueError(f'super_resolve got an empty image (shape {tuple(lr.shape)})')
        # a bicubic enlargement of a [0, 1] image overshoots a little (benchmarks pass such inputs)
        check_values(lr, -0.5, 1.5, 'super_resolve input')
        if out_size is not None:
            out_size = check_out_size(out_size, x.shape[-2:], 'out_size')
        self._warn_if_resized(t0)
        t_eval = self.trajectory_scales(trajectory, t0)
        tiling = self.tiling_for(tile, tile_pad)
        out = self._run(x, t0, out_size, self_ensemble, tiling, None)

        def back(y):
            if is_numpy:
                return np.ascontiguousarray(y[0].cpu().numpy().transpose(1, 2, 0), dtype=np.float32)
            return (y if lr.ndim == 4 else y[0]).to(lr.device)

        if t_eval is None:
            return back(out)
        states = self._run(x, t0, out_size, self_ensemble, tiling, t_eval)
        return back(out), [(t, back(state)) for t, state in zip(t_eval, states)]

    def upscale(self, img, scale=None, size=None, width=None, self_ensemble=False, tile=None,
                tile_pad=None, trajectory=None, plan=None):
        """Enlarge an image of any common type, keeping its type and mode.

        Args:
            img (ndarray | Tensor): numpy (H, W) grey, (H, W, 1|2|3|4) grey / grey+alpha / RGB / RGBA,
                dtype uint8, uint16 or float in [0, 1]; or a tensor (C, H, W) / (B, C, H, W) (uint8 or
                float in [0, 1]). Colour order RGB (convert OpenCV's BGR first). Alpha is enlarged
                bicubically, not by the network. Float values outside [0, 1] (0-255 data), NaN or
                infinite values and empty images raise ValueError.
            scale (float | None): Factor, any real >= 1 (a fixed-scale network asked for another one
                warns and resizes its output, see :class:`Upscaler`).
            size (tuple[int, int] | None): Exact output (H, W) (per-axis factors; the ODE starts at the
                larger one).
            width (int | None): Output width; the height keeps the aspect ratio.
            self_ensemble, tile, tile_pad, trajectory: See :meth:`super_resolve`.
            plan (Plan | None): Instead of ``scale``/``size``/``width``: the request as
                :func:`~nodesr_arch.scales.plan_size` checked it for this image's size (``nodesr infer`` plans
                each input once, before anything is written).

        Returns:
            The enlarged image, same dtype, layout and channels (rounded and clipped). With
            ``trajectory``: ``(image, [(t_i, state_i), ...])`` with states in the same format.
        """
        in_size = _image_size(img)
        if plan is None:
            plan = plan_size(in_size, scale, size, width)
        elif scale is not None or size is not None or width is not None:
            raise ValueError('give either plan or one of scale, size, width')
        t0 = plan[0]
        self._warn_if_resized(t0)
        t_eval = self.trajectory_scales(trajectory, t0)
        return self._upscale(img, plan, self_ensemble, self.tiling_for(tile, tile_pad), t_eval)

    def _upscale(self, img, plan, self_ensemble=False, tiling=None, t_eval=None):
        """:meth:`upscale` with every decision taken and checked by the caller, which ``nodesr infer`` does once
        per run (the tiling) or per input (the plan, the trajectory): nothing is checked again, nothing warns.

        Args:
            img (ndarray | Tensor): As :meth:`upscale` takes it, checked (:func:`_image_size`).
            plan (Plan): ``(t0, out_size)`` for this image (:func:`~nodesr_arch.scales.plan_size`).
            self_ensemble (bool): See :meth:`super_resolve`.
            tiling (Tiling | None): From :meth:`tiling_for`.
            t_eval (list[float] | None): From :meth:`trajectory_scales`.
        """
        t0, out_size = plan
        x, restore = _to_tensor(img)
        colour, alpha = (x[:, :-1], x[:, -1:]) if x.shape[1] in (2, 4) else (x, None)
        if alpha is not None:
            alpha = enlarge_to(alpha.to(self.device, torch.float32), t0, out_size)
        out = restore(_with_alpha(self._run(colour, t0, out_size, self_ensemble, tiling, None), alpha))
        if t_eval is None:
            return out
        states = _with_alpha(self._run(colour, t0, out_size, self_ensemble, tiling, t_eval), alpha)
        return out, [(t, restore(state)) for t, state in zip(t_eval, states)]


def _with_alpha(out, alpha):
    """``out`` (..., B, C, H, W) with the enlarged alpha (B, 1, H, W) as its last channel; ``out`` when None."""
    if alpha is None:
        return out
    return torch.cat([out, alpha.expand(*out.shape[:-3], *alpha.shape[-3:])], dim=-3)


def _image_size(img):
    """The (H, W) of an image :meth:`Upscaler.upscale` takes, once its type, layout, dtype and values are checked.

    Raises:
        ValueError: Not a numpy array or tensor, another layout or dtype, an empty image, or float values
            outside [0, 1], NaN or infinite (:func:`check_values`).
    """
    if isinstance(img, np.ndarray):
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 2, 3, 4))):
            raise ValueError(f'image must be (H, W) or (H, W, 1|2|3|4), got shape {img.shape}')
        if img.size == 0:
            raise ValueError(f'the image is empty (shape {img.shape})')
        if _peak(img.dtype) == 1:
            check_values(img, 0.0, 1.0, 'float image')
        return img.shape[:2]
    if torch.is_tensor(img):
        if img.ndim not in (3, 4) or img.shape[-3] not in (1, 2, 3, 4):
            raise ValueError(f'tensor image must be (C, H, W) or (B, C, H, W) with C in 1..4, got {tuple(img.shape)}')
        if not (img.dtype == torch.uint8 or img.is_floating_point()):
            raise ValueError(f'tensor image must be uint8 or float, got {img.dtype}')
        if img.numel() == 0:
            raise ValueError(f'the image is empty (shape {tuple(img.shape)})')
        if img.is_floating_point():
            check_values(img, 0.0, 1.0, 'float image')
        return tuple(img.shape[-2:])
    raise ValueError(f'image must be a numpy array or a torch tensor, got {type(img).__name__}')


def _to_tensor(img):
    """(B, C, H, W) float32 tensor in [0, 1] from an image :func:`_image_size` accepts, and the function that maps a
    result back."""
    if isinstance(img, np.ndarray):
        dtype, ndim, peak = img.dtype, img.ndim, _peak(img.dtype)
        arr = img[..., None] if ndim == 2 else img
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)).astype(np.float32) / peak)[None]

        def restore(y):
            y = np.ascontiguousarray(y[0].clamp(0, 1).cpu().numpy().transpose(1, 2, 0))
            y = to_pixels(y, dtype) if peak != 1 else y.astype(dtype)
            return y[..., 0] if ndim == 2 else y

        return x, restore
    peak = 255.0 if img.dtype == torch.uint8 else 1.0
    x = (img if img.ndim == 4 else img[None]).float() / peak

    def restore(y):
        y = y.clamp(0, 1)
        y = (y * peak).round().to(img.dtype) if peak != 1 else y.to(img.dtype)
        return (y if img.ndim == 4 else y[0]).to(img.device)

    return x, restore


def check_values(img, lo, hi, what='image'):
    """Refuse NaN or infinite values (one spreads to the whole output) and values outside ``[lo, hi]``.

    Args:
        img (ndarray | Tensor): Float pixel values, channels first or last.
        lo, hi (float): The accepted range.
        what (str): What ``img`` is, for messages. Default: 'image'.

    Raises:
        ValueError: Naming the count and place of the first non-finite value, or the range found.
    """
    lib = torch if torch.is_tensor(img) else np
    finite = lib.isfinite(img)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        where = tuple(int(i) for i in np.argwhere(np.asarray((~finite).cpu() if lib is torch else ~finite))[0])
        raise ValueError(f'{what} has {bad} NaN or infinite value{"s" if bad > 1 else ""} (the first at '
                         f'index {where} of shape {tuple(img.shape)}); one spreads to the whole output')
    mn, mx = float(img.min()), float(img.max())
    if mn < lo or mx > hi:
        hint = next((f'; for 0-{peak} data divide by {peak}' for peak in (255, 65535) if 1.5 < mx <= peak and mn >= 0),
                    '')
        raise ValueError(f'{what} values lie in [{mn:g}, {mx:g}]; floats must lie in [{lo:g}, {hi:g}]{hint}')


def _peak(dtype):
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise ValueError(f'image dtype must be uint8, uint16 or float in [0, 1], got {dtype}')
