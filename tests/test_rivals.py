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


@pytest.mark.parametrize('scale, lr_size', [(2, (5, 7)), (3, (4, 3)), (1, (6, 5)), (2.5, (4, 6)), (1.5, (6, 4))])
def test_liif_equals_the_authors_query_where_h_s_is_whole(scale, lr_size):
    """Where ``h * s`` is a whole number (every integer scale; x2.5 on 4 and 6 px) the authors' geometry is ours."""
    torch.manual_seed(1)
    net = build_network({'type': 'LIIF', 'encoder': {**TINY_ENC, 'num_out_ch': 3}, 'hidden_list': [16, 16]})
    net.encoder = nn.Identity()  # a known encoder output: the normalised image itself
    x = torch.rand(2, 3, *lr_size)
    out_size = (round(lr_size[0] * scale), round(lr_size[1] * scale))
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
    # Meta-SR: Pos2Weight and the predicted conv per output pixel; LIIF: the feature part of the first layer per
    # LR pixel, the rest of the MLP 4 times per output pixel (local ensemble)
    for name, per_lr, per_out in (('MetaSR-S', 0, 3 * 32 + 32 * 864 + 864),
                                  ('LIIF-S', 288 * 60, 4 * (4 * 60 + 3 * 60 * 60 + 60 * 3))):
        net = build_network(bench.small_config(name)).eval()
        assert abs(bench.count_params(net) / target - 1) < 0.01, name
        for scale in (2.0, 4.0):
            assert bench.macs_per_pixel(net, scale, side=24) == pytest.approx((enc + per_lr) / scale ** 2 + per_out)
    vdsrt = build_network(bench.small_config('VDSR+t-S')).eval()
    assert bench.macs_per_pixel(vdsrt, 3.0, side=24) == 57312  # its weights, once per output pixel


def authors_meta_upscale(feat, p2w, scale):
    """Meta-SR's upsampling as the authors compute it: ``trainer.input_matrix_wpn`` (positions and mask on a
    ``ceil(s)``-fold grid), ``MetaRDN.forward`` after the features (``repeat_x``, unfold, matmul) and the
    trainer's ``masked_select``; transcribed from XuecaiHu/Meta-SR-Pytorch (CPU)."""
    import math
    n, c, in_h, in_w = feat.shape
    out_h, out_w = int(scale * in_h), int(scale * in_w)
    r = int(math.ceil(scale))
    h_offset, mask_h = torch.ones(in_h, r, 1), torch.zeros(in_h, r, 1)
    w_offset, mask_w = torch.ones(1, in_w, r), torch.zeros(1, in_w, r)
    scale_mat = torch.full((in_h * in_w * r ** 2, 1), 1.0 / scale)

    def project(length):
        coord = torch.arange(0, length, 1).float().mul(1.0 / scale)
        whole = torch.floor(coord)
        return coord - whole, whole.int()

    off, whole = project(out_h)
    flag, number = 0, 0
    for i in range(out_h):
        if whole[i] == number:
            h_offset[whole[i], flag, 0] = off[i]
            mask_h[whole[i], flag, 0] = 1
            flag += 1
        else:
            h_offset[whole[i], 0, 0] = off[i]
            mask_h[whole[i], 0, 0] = 1
            number += 1
            flag = 1
    off, whole = project(out_w)
    flag, number = 0, 0
    for i in range(out_w):
        if whole[i] == number:
            w_offset[0, whole[i], flag] = off[i]
            mask_w[0, whole[i], flag] = 1
            flag += 1
        else:
            w_offset[0, whole[i], 0] = off[i]
            mask_w[0, whole[i], 0] = 1
            number += 1
            flag = 1
    h_coord = torch.cat([h_offset] * (r * in_w), 2).view(-1, r * in_w, 1)
    w_coord = torch.cat([w_offset] * (r * in_h), 0).view(-1, r * in_w, 1)
    mask_h = torch.cat([mask_h] * (r * in_w), 2).view(-1, r * in_w, 1)
    mask_w = torch.cat([mask_w] * (r * in_h), 0).view(-1, r * in_w, 1)
    pos_mat = torch.cat((h_coord, w_coord), 2).contiguous().view(1, -1, 2)
    pos_mat = torch.cat((scale_mat.view(1, -1, 1), pos_mat), 2)
    mask = torch.sum(torch.cat((mask_h, mask_w), 2), 2).view(r * in_h, r * in_w).eq(2)

    local_weight = p2w(pos_mat.view(pos_mat.size(1), -1))
    up_x = feat.view(n, c, in_h, 1, in_w, 1)
    up_x = torch.cat([torch.cat([up_x] * r, 3)] * r, 5).permute(0, 3, 5, 1, 2, 4).contiguous().view(-1, c, in_h, in_w)
    cols = F.unfold(up_x, 3, padding=1)
    cols = cols.contiguous().view(cols.size(0) // r ** 2, r ** 2, cols.size(1), cols.size(2), 1).permute(0, 1, 3, 4, 2)
    local_weight = local_weight.contiguous().view(in_h, r, in_w, r, -1, 3).permute(1, 3, 0, 2, 4, 5).contiguous()
    local_weight = local_weight.view(r ** 2, in_h * in_w, -1, 3)
    out = torch.matmul(cols.contiguous(), local_weight).permute(0, 1, 4, 2, 3)
    out = out.contiguous().view(n, r, r, 3, in_h, in_w).permute(0, 3, 4, 1, 5, 2)
    out = out.contiguous().view(n, 3, r * in_h, r * in_w)
    return torch.masked_select(out, mask).view(n, 3, out_h, out_w)


@pytest.mark.parametrize('scale', [1.5, 2.0, 2.5, 3.0])
def test_metasr_equals_the_authors_upscaling(scale):
    torch.manual_seed(2)
    net = build_network({'type': 'MetaSR', 'encoder': {**TINY_ENC, 'num_out_ch': 3}, 'hidden': 16, 'img_mean': 0.0,
                         'img_std': 1.0})
    net.encoder = nn.Identity()  # a known encoder output: the image itself
    x = torch.rand(2, 3, 3, 4)
    with torch.no_grad():
        got = net(x, scale)
        want = authors_meta_upscale(x, net.p2w, scale)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)


def conv(cin, cout, k=3):
    return cin * cout * k * k + cout


def test_paper_sizes_of_the_rivals_count_by_hand():
    counts = load_script('benchmarks/param_counts.py').param_counts(['Meta-RDN', 'LIIF (EDSR-baseline)', 'LIIF (RDN)'])
    edsr = conv(3, 64) + 16 * 2 * conv(64, 64) + conv(64, 64)  # EDSR-baseline without upsampler
    rdb = sum(conv(64 + i * 64, 64) for i in range(8)) + conv(64 + 8 * 64, 64, 1)
    rdn = conv(3, 64) + conv(64, 64) + 16 * rdb + conv(16 * 64, 64, 1) + conv(64, 64)  # SFE, RDBs, GFF
    mlp = (580 * 256 + 256) + 3 * (256 * 256 + 256) + (256 * 3 + 3)  # LIIF: 9 * 64 + 4 inputs, 256 x 4
    p2w = (3 * 256 + 256) + (256 * 3 * 3 * 64 * 3 + 3 * 3 * 64 * 3)  # Meta-SR: 3 -> 256 -> k*k*G0*3
    assert p2w == 445120
    assert counts == {'Meta-RDN': rdn + p2w, 'LIIF (EDSR-baseline)': edsr + mlp, 'LIIF (RDN)': rdn + mlp}


@pytest.mark.parametrize('name', ['MetaSR', 'LIIF-EDSR'])
def test_bicubic_residual_adds_the_enlargement_nodesr_starts_from(name):
    from nodesr_arch.inference import enlarge_to
    from nodesr_arch.scales import output_size
    net = tiny(name, residual='bicubic')
    plain = tiny(name)
    x = torch.rand(2, 3, 5, 7)
    for s in (1.0, 1.7, 3.0):
        size = output_size((5, 7), s)
        with torch.no_grad():
            out, ref = net(x, s, size), plain(x, s, size)
        base = enlarge_to(x, s, size)
        mean = plain.img_mean
        # same weights: the residual variant replaces img_mean by the bicubic image
        assert torch.allclose(out - base, ref - mean, atol=1e-5), s
    with pytest.raises(ValueError, match="residual must be one of \\[None, 'bicubic'\\]"):
        tiny(name, residual='bilinear')


def test_bicubic_residual_at_sampled_pixels_of_a_mixed_scale_batch():
    from nodesr_arch.data.scale_space import imresize
    net = tiny('LIIF-EDSR', residual='bicubic')
    for p in net.parameters():
        nn.init.zeros_(p)  # the MLP predicts 0: the output is the bicubic image alone
    x, scales = torch.rand(2, 3, 4, 4), torch.tensor([1.5, 2.0])
    grid = (8, 8)
    pixels = torch.tensor([[0, 9, 45, 35], [63, 7, 56, 18]])
    with torch.no_grad():
        out = net(x, scales, out_size=grid, pixels=pixels)
    for b in range(2):
        full = imresize(x[b:b + 1], float(scales[b]))[0]  # 6x6 and 8x8
        rows, cols = pixels[b] // 8, pixels[b] % 8
        keep = (rows < full.shape[1]) & (cols < full.shape[2])
        assert torch.allclose(out[b][:, keep], full[:, rows[keep], cols[keep]], atol=1e-6)
