"""The network contract: what the rest of the project may ask of a super-resolution network, written once.

A network declares (class attributes and methods of :class:`SRNetwork` for NODE-SR's own archs; BasicSR's
networks declare nothing and get the defaults):

- ``takes_scale``: ``forward(x, scale)`` rather than ``forward(x)``;
- ``input_size``: ``'output'`` (its input is the LR enlarged bicubically to the output size) or ``'lr'``;
- ``is_ode``: it integrates NODE-SR's ODE (``set_ode``, ``forward(x, scale, t_eval)``: trajectories);
- ``receptive_radius()``: the pixels ``f`` sees on each side, or None when unknown;
- ``set_tiling(tile, tile_pad)``: evaluate ``f`` on overlapping tiles; the state is one :class:`Tiling`.

:func:`contract` reads it off any network. :func:`with_scale` builds ``f``'s input, the image plus one channel
holding each sample's scale, for the ODE's field and the one-shot ``+t`` networks alike.
"""
import numbers
from collections import namedtuple

import torch

from nodesr_arch.archs.tiling import tiled_apply

#: How ``f`` is evaluated: on tiles of ``tile`` pixels (None: whole) grown by ``pad``, sizes multiples of
#: ``multiple``.
Tiling = namedtuple('Tiling', 'tile pad multiple')
NO_TILING = Tiling(None, 0, 1)

#: A network's contract, as :func:`contract` reads it.
Contract = namedtuple('Contract', 'takes_scale input_size is_ode receptive_radius tiles')


def contract(net):
    """The contract of a network (instance or class), with the defaults of a plain BasicSR network.

    Args:
        net (nn.Module | type): A network; a class gives ``receptive_radius`` None.

    Returns:
        Contract: ``takes_scale`` (bool), ``input_size`` ('output' or 'lr'), ``is_ode`` (bool),
        ``receptive_radius`` (int | None), ``tiles`` (bool: has ``set_tiling``).
    """
    radius = getattr(net, 'receptive_radius', None)
    radius = radius() if callable(radius) and not isinstance(net, type) else None
    return Contract(bool(getattr(net, 'takes_scale', False)), getattr(net, 'input_size', 'lr'),
                    bool(getattr(net, 'is_ode', False)), radius, hasattr(net, 'set_tiling'))


def with_scale(x, t):
    """``x`` with one more channel holding each sample's scale: the input of ``f``.

    Args:
        x (Tensor): (B, C, H, W).
        t (Tensor): (B, 1, 1, 1) scales.
    """
    return torch.cat([x, t.expand(-1, 1, x.shape[2], x.shape[3])], dim=1)


def apply_tiled(fn, x, tiling):
    """``fn(x)``, evaluated as ``tiling`` says (:func:`nodesr_arch.archs.tiling.tiled_apply`)."""
    return tiled_apply(fn, x, tiling.tile, tiling.pad, tiling.multiple)


def check_tiling(tile, tile_pad, radius, multiple=1):
    """Validate tiling options; fill ``tile_pad`` from the receptive radius and round both up to
    ``multiple``.

    Returns:
        tuple[int | None, int]: ``(tile, tile_pad)``; ``tile`` None means tiling is off.
    """
    if tile is None:
        return None, 0
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 1:
        raise ValueError(f'tile must be a positive integer or None, got {tile!r}')
    if tile_pad is None:
        if radius is None:
            raise ValueError('tile_pad is required: the receptive radius of this network is unknown '
                             '(give receptive_radius in its options, or a tile_pad)')
        tile_pad = radius
    if isinstance(tile_pad, bool) or not isinstance(tile_pad, numbers.Integral) or tile_pad < 0:
        raise ValueError(f'tile_pad must be a non-negative integer, got {tile_pad!r}')
    return -(-int(tile) // multiple) * multiple, -(-int(tile_pad) // multiple) * multiple


class SRNetwork:
    """The contract's declaration for NODE-SR's architectures, with its tiling.

    Subclasses set ``self.radius`` (``f``'s receptive radius in pixels, or None when unknown) and, where ``f``
    needs it, ``size_multiple``.
    """

    takes_scale = False
    input_size = 'output'
    is_ode = False
    radius = None
    size_multiple = 1
    tiling = NO_TILING

    @property
    def tile(self):
        return self.tiling.tile

    @property
    def tile_pad(self):
        return self.tiling.pad

    def receptive_radius(self):
        """Receptive radius of ``f`` in pixels (a ``tile_pad`` at least this large makes tiling exact),
        or None when unknown."""
        return self.radius

    def set_tiling(self, tile=None, tile_pad=None):
        """Evaluate ``f`` on overlapping tiles to bound memory.

        Each evaluation of ``f`` runs on tiles of at most ``tile`` x ``tile`` pixels grown by ``tile_pad``
        on each side and keeps their centres (the image itself, i.e. the ODE state, stays whole). With
        ``tile_pad >= receptive_radius()`` the output equals the untiled one (to float rounding).

        Args:
            tile (int | None): Tile side; None turns tiling off.
            tile_pad (int | None): Overlap; None uses :meth:`receptive_radius`.

        Returns:
            The network itself.
        """
        tile, tile_pad = check_tiling(tile, tile_pad, self.receptive_radius(), self.size_multiple)
        self.tiling = NO_TILING if tile is None else Tiling(tile, tile_pad, self.size_multiple)
        return self
