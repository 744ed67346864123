"""The arbitrary-scale rivals, Meta-SR and LIIF: shapes, scales, chunks, gradients and their maths against small
references written here after the authors' code."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nodesr_arch  # noqa: F401,I001
from basicsr.archs import build_network
from helpers import load_script, one_thread_fixture
from nodesr_arch.archs.contract import contract
from nodesr_arch.archs.encoder import gather_pixels
from nodesr_arch.archs.metasr_arch import meta_positions

one_thread = one_thread_fixture()

TINY_ENC = {'type': 'VDSRBody', 'num_out_ch': 4, 'num_feat': 4, 'num_layer': 2, 'zero_last': False}
TINY = {
    'MetaSR': {'type': 'MetaSR', 'encoder': TINY_ENC, 'hidden': 8},
    'MetaRDN': {'type': 'MetaRDN', 'num_feat': 4, 'num_block': 1, 'num_conv': 1, 'num_grow': 4, 'hidden': 8},
    'LIIF-EDSR': {'type': 'LIIF', 'encoder': {'type': 'EDSRBody', 'num_feat': 4, 'num_block': 1},
                  'hidden_list': [8, 8]},
    'LIIF-RDN': {'type': 'LIIF', 'encoder': {'type': 'RDNBody', 'num_feat': 4, 'num_block': 1, 'num_conv': 1,
                                             'num_grow': 4}, 'hidden_list': [8]},
}


def tiny(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    return build_network({**TINY[name], **kwargs}).eval()


@pytest.mark.parametrize('name', sorted(TINY))
def test_contract_and_shapes_at_any_scale_on_odd_sizes(name):
    net = tiny(name)
    c = contract(net)
    assert (c.takes_scale, c.input_size, c.is_ode, c.receptive_radius) == (True, 'lr', False, None)
    x = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        for s, size in ((1.0, (5, 7)), (1.7, (8, 11)), (2.5, (12, 17)), (4, (20, 28)), (6.3, (31, 44))):
            out = net(x, s)
            assert out.shape == (2, 3, *size) and torch.isfinite(out).all(), (s, out.shape)
            assert net(x, torch.tensor([s, s]), out_size=(9, 4)).shape == (2, 3, 9, 4)


@pytest.mark.parametrize('name', ['MetaSR', 'LIIF-EDSR'])
def test_bad_requests_get_one_clear_error(name):
    net = tiny(name)
    x = torch.rand(1, 3, 5, 5)
    for scale in (0.5, float('nan')):
        with pytest.raises(ValueError, match='scale'):
            net(x, scale)
    with pytest.raises(ValueError, match='out_size'):
        net(x, 2.0, out_size=(0, 4))
    with pytest.raises(ValueError, match='pixels'):
        net(x, 2.0, pixels=torch.tensor([100]))
    with pytest.raises(ValueError, match='does not tile.*eval_chunk'):
        net.set_tiling(16)
    assert net.set_tiling(None) is net
    with pytest.raises(ValueError, match='eval_chunk'):
        build_network({**TINY[name], 'eval_chunk': 0})
    with pytest.raises(ValueError, match='keep the LR resolution'):
        build_network({**TINY[name], 'type': TINY[name]['type'], 'encoder': {'type': 'RDN', 'upscale': 2,
                                                                             'num_feat': 4, 'num_block': 1,
                                                                             'num_conv': 1, 'num_grow': 4}})


def test_liif_mixed_scale_batch_equals_each_sample_alone():
    net = tiny('LIIF-EDSR')
    x = torch.rand(3, 3, 5, 7)
    scales = torch.tensor([2.0, 2.3, 2.6])
    with torch.no_grad():
        together = net(x, scales, out_size=(11, 16))
        alone = torch.cat([net(x[i:i + 1], float(scales[i]), out_size=(11, 16)) for i in range(3)])
        assert torch.allclose(together, alone, atol=1e-6)
        assert not torch.allclose(alone[0], net(x[:1], 2.6, out_size=(11, 16))[0])  # the scale matters
        with pytest.raises(ValueError, match='give out_size'):
            net(x, scales)


def test_metasr_refuses_a_mixed_scale_batch_clearly():
    net = tiny('MetaSR')
    x = torch.rand(2, 3, 5, 5)
    with pytest.raises(ValueError, match='one scale per batch'):
        net(x, torch.tensor([2.0, 3.0]), out_size=(10, 10))
    assert net(x, torch.tensor([2.0, 2.0])).shape == (2, 3, 10, 10)


@pytest.mark.parametrize('name', ['MetaSR', 'LIIF-EDSR'])
def test_chunked_queries_equal_the_whole_query_and_pixels_pick_from_it(name):
    x = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        whole = tiny(name)(x, 2.7)
        chunked = tiny(name, eval_chunk=7)(x, 2.7)
        assert torch.allclose(whole, chunked, atol=1e-6)
        pixels = torch.randint(0, whole.shape[2] * whole.shape[3], (2, 11), generator=torch.Generator().manual_seed(0))
        picked = tiny(name, eval_chunk=4)(x, 2.7, pixels=pixels)
        assert picked.shape == (2, 3, 11)
        assert torch.allclose(picked, gather_pixels(whole, pixels), atol=1e-6)


@pytest.mark.parametrize('name, mlp', [('MetaSR', 'p2w'), ('MetaRDN', 'p2w'), ('LIIF-EDSR', 'imnet'),
                                       ('LIIF-RDN', 'imnet')])
def test_gradients_reach_the_encoder_and_the_mlp(name, mlp):
    net = tiny(name).train()
    x = torch.rand(2, 3, 5, 6)
    pixels = torch.randint(0, 12 * 15, (2, 9))
    loss = net(x, 2.5, pixels=pixels).abs().mean() + net(x, 1.3).abs().mean()
    loss.backward()
    first_conv = next(m for m in net.encoder.modules() if isinstance(m, nn.Conv2d))
    first_linear = next(m for m in getattr(net, mlp).modules() if isinstance(m, nn.Linear))
    for p in (first_conv.weight, first_linear.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


# ---------------------------------------------------------------- the maths against references written here

def reference_liif(feat, imnet, out_size):
    """The authors' ``LIIF.query_rgb`` (models/liif.py) with ``make_coord`` and cell ``2 / H``, written out with
    ``grid_sample`` as they do it (CPU, float64: where all four areas are zero, at a border at odd scales, float32
    rounding noise would pick their weights)."""
    imnet = copy.deepcopy(imnet).double()
    feat = feat.double()

    def make_coord(shape):
        seqs = [-1 + 1 / n + 2 / n * torch.arange(n).double() for n in shape]
        return torch.stack(torch.meshgrid(*seqs, indexing='ij'), dim=-1)

    b = feat.shape[0]
    coord = make_coord(out_size).view(1, -1, 2).expand(b, -1, -1)
    cell = torch.ones_like(coord)
    cell[:, :, 0] *= 2 / out_size[0]
    cell[:, :, 1] *= 2 / out_size[1]
    feat = F.unfold(feat, 3, padding=1).view(b, feat.shape[1] * 9, *feat.shape[-2:])
    rx, ry = 1 / feat.shape[-2], 1 / feat.shape[-1]
    feat_coord = make_coord(feat.shape[-2:]).permute(2, 0, 1).unsqueeze(0).expand(b, 2, *feat.shape[-2:])
    preds, areas = [], []
    for vx in (-1, 1):
        for vy in (-1, 1):
            coord_ = coord.clone()
            coord_[:, :, 0] += vx * rx + 1e-6
            coord_[:, :, 1] += vy * ry + 1e-6
            coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
            grid = coord_.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(feat, grid, mode='nearest', align_corners=False)[:, :, 0, :].permute(0, 2, 1)
            q_coord = F.grid_sample(feat_coord, grid, mode='nearest', align_corners=False)[:, :, 0, :].permute(0, 2, 1)
            rel_coord = coord - q_coord
            rel_coord[:, :, 0] *= feat.shape[-2]
            rel_coord[:, :, 1] *= feat.shape[-1]
            rel_cell = cell.clone()
            rel_cell[:, :, 0] *= feat.shape[-2]
            rel_cell[:, :, 1] *= feat.shape[-1]
            preds.append(imnet(torch.cat([q_feat, rel_coord, rel_cell], dim=-1)))
            areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
    tot_area = torch.stack(areas).sum(dim=0)
    areas = areas[::-1]
    ret = sum(pred * (area / tot_area).unsqueeze(-1) for pred, area in zip(preds, areas))
    return ret.permute(0, 2, 1).reshape(b, -1, *out_size).float()


@pytest.mark.parametrize('scale, lr_size', [(2, (5, 7)), (3, (4, 3)), (1, (6, 5))])
def test_liif_equals_the_authors_query_at_integer_scales(scale, lr_size):
    torch.manual_seed(1)
    net = build_network({'type': 'LIIF', 'encoder': {**TINY_ENC, 'num_out_ch': 3}, 'hidden_list': [16, 16]})
    net.encoder = nn.Identity()  # a known encoder output: the normalised image itself
    x = torch.rand(2, 3, *lr_size)
    out_size = (lr_size[0] * scale, lr_size[1] * scale)
    with torch.no_grad():
        got = net(x, float(scale))
        want = reference_liif((x - 0.5) / 0.5, net.imnet, out_size) * 0.5 + 0.5
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)


def test_liif_decodes_a_constant_feature_to_its_mlp_value():
    """A constant encoder output: every neighbour gives the same MLP input up to the offsets, so with an MLP
    that ignores the offsets the ensemble returns that one value (the area weights sum to 1)."""
    net = build_network({'type': 'LIIF', 'encoder': {**TINY_ENC, 'num_out_ch': 3}, 'hidden_list': [4],
                         'img_mean': 0.0, 'img_std': 1.0})
    net.encoder = nn.Identity()
    with torch.no_grad():
        for m in net.imnet.modules():
            if isinstance(m, nn.Linear):
                m.weight.zero_()
                m.bias.zero_()
        net.imnet[0].weight[:, :27] = 1.0  # the 27 unfolded features only
        net.imnet[-1].weight.fill_(1.0)
        x = torch.full((1, 3, 8, 8), 0.25)
        out = net(x, 2.4)
    # 27 features of 0.25 -> hidden 4 x 6.75 -> output 27 where all four neighbours lie in LR pixels 1-6 (output
    # 4-14; nearer the border the zero padding of the unfolding drops part of a neighbourhood)
    assert out.shape == (1, 3, 19, 19)
    assert torch.allclose(out[..., 4:15, 4:15], torch.full((1, 3, 11, 11), 27.0), atol=1e-5)
    assert not torch.allclose(out[..., :2, :2], torch.full((1, 3, 2, 2), 27.0), atol=1e-3)


def test_meta_positions_are_the_authors_projection():
    rows = torch.arange(3).view(1, 3)
    index, pos = meta_positions(rows, rows, 1.5, (2, 2))
    # i / 1.5 = 0, 0.667, 1.333: LR pixels 0, 0, 1 with those fractional parts; the first entry is 1 / s
    assert index.tolist() == [[0, 0, 3]]
    want = torch.tensor([[[1 / 1.5, 0, 0], [1 / 1.5, 2 / 3, 2 / 3], [1 / 1.5, 1 / 3, 1 / 3]]])
    assert torch.allclose(pos, want, atol=1e-6)
    index, pos = meta_positions(torch.tensor([[9]]), torch.tensor([[0]]), 2.0, (4, 4))  # past the image: clamped
    assert index.tolist() == [[12]] and pos[0, 0].tolist() == [0.5, 0.5, 0.0]


class HandWeights(nn.Module):
    """A Pos2Weight stand-in with known weights, in Meta-SR's layout (index ``m * 3 + o``, ``m = c*9 + ki*3 + kj``):
    output channel ``o`` takes channel ``o`` of the neighbour one row down when the row offset is > 0, one
    column left when the column offset is > 0, times ``2 / s`` (1 at x2)."""

    def forward(self, pos):
        weight = torch.zeros(*pos.shape[:-1], 3 * 9, 3)
        ki = 1 + (pos[..., 1] > 0).long()
        kj = 1 - (pos[..., 2] > 0).long()
        for o in range(3):
            m = (o * 9 + ki * 3 + kj).unsqueeze(-1)
            weight[..., o].scatter_(-1, m, (2 * pos[..., :1]).expand_as(m).float())
        return weight.flatten(-2)


def test_metasr_weight_layout_on_a_2x2_image_by_hand():
    net = build_network({'type': 'MetaSR', 'encoder': {**TINY_ENC, 'num_out_ch': 3}, 'img_mean': 0.0,
                         'img_std': 1.0})
    net.encoder = nn.Identity()
    net.p2w = HandWeights()
    lr = torch.arange(12, dtype=torch.float32).view(1, 3, 2, 2) + 1
    with torch.no_grad():
        out = net(lr, 2.0)
    want = torch.zeros(1, 3, 4, 4)
    for i in range(4):
        for j in range(4):
            r, c = i // 2 + i % 2, j // 2 - j % 2  # offsets 0.5 on odd rows and columns
            if r < 2 and c >= 0:  # zero padding outside the 2x2 image
                want[0, :, i, j] = lr[0, :, r, c]
    assert torch.equal(out, want)


# ---------------------------------------------------------------- the small rivals of the CPU table

def test_small_rivals_match_node_vdsr_s_in_parameters_and_their_macs_count_by_hand():
    bench = load_script('benchmarks/param_counts.py')
    target = bench.count_params(build_network(bench.small_config('NODE-VDSR-S')))
    assert target == 57539
    enc = 3 * 32 * 9 + 3 * 32 * 32 * 9  # MACs per LR pixel of the 4-conv encoder
    for name, upsampler in (('MetaSR-S', 3 * 32 + 32 * 864 + 864), ('LIIF-S', 4 * (292 * 60 + 3 * 60 * 60 + 60 * 3))):
        net = build_network(bench.small_config(name)).eval()
        assert abs(bench.count_params(net) / target - 1) < 0.01, name
        for scale in (2.0, 4.0):
            assert bench.macs_per_pixel(net, scale, side=24) == pytest.approx(enc / scale ** 2 + upsampler), name
    vdsrt = build_network(bench.small_config('VDSR+t-S')).eval()
    assert bench.macs_per_pixel(vdsrt, 3.0, side=24) == 57312  # its weights, once per output pixel
