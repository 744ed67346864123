"""Architectures: NODESR around BasicSR backbones, the one-shot baselines, paper parameter counts."""
import os

import pytest
import torch

import nodesr_arch  # noqa: F401,I001
from basicsr.archs import build_network
from helpers import load_script, one_thread_fixture, randomized
from nodesr_arch.archs.rdn_arch import NODERDN, RDN, RDNt
from nodesr_arch.archs.vdsr_arch import NODEVDSR, VDSR, VDSRt

one_thread = one_thread_fixture()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWINIR = {'type': 'SwinIR', 'img_size': 16, 'window_size': 4, 'embed_dim': 8, 'depths': [2], 'num_heads': [2],
          'mlp_ratio': 1, 'upscale': 1, 'upsampler': ''}
RRDB = {'type': 'RRDBNet', 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'scale': 1}
# ECBSR adds its input to its output (num_out_ch must then equal the 4 input channels): subtract_input
ECBSR = {'type': 'ECBSR', 'num_out_ch': 4, 'num_block': 1, 'num_channel': 8, 'with_idt': False, 'act_type': 'prelu',
         'scale': 1}


def backbone_inputs(net):
    """Record the shapes the backbone of a NODESR sees."""
    shapes = []
    net.func.net.register_forward_hook(lambda module, inp, out: shapes.append((tuple(inp[0].shape), tuple(out.shape))))
    return shapes


@pytest.mark.parametrize('backbone, multiple', [(SWINIR, 4), (RRDB, 4)])
def test_nodesr_with_basicsr_backbones_on_odd_sizes(backbone, multiple):
    net = randomized(build_network({'type': 'NODESR', 'backbone': backbone, 'ode': {'num_steps': 2}}), std=0.05)
    assert net.size_multiple == multiple
    shapes = backbone_inputs(net)
    x = torch.rand(2, 3, 13, 11)
    out = net(x, torch.tensor([2.0, 3.3]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, x)
    (inp, res), = set(shapes)  # 2 rk4 steps, one padded shape
    assert inp == (2, 4, 16, 12)  # padded to the size multiple, image + scale channel
    assert res[1] >= 3 and res[2:] == inp[2:]
    assert net.ode.nfe == 8


def test_nodesr_swinir_f_is_its_residual():
    """SwinIR with upsampler '' returns ``x + conv_last(...)``: f subtracts the input back out."""
    net = build_network({'type': 'NODESR', 'backbone': SWINIR}).eval()  # eval: no random drop-path
    assert net.func.subtract_input
    torch.nn.init.normal_(net.func.gain)
    inp = torch.rand(1, 4, 8, 8)
    assert torch.allclose(net.func(inp), net.func.gain * (net.func.net(inp)[:, :3] - inp[:, :3]))
    assert not build_network({'type': 'NODESR', 'backbone': RRDB}).func.subtract_input


@pytest.mark.parametrize('backbone, extra', [(SWINIR, {}), (RRDB, {}), (ECBSR, {'subtract_input': True})],
                         ids=['SwinIR', 'RRDBNet', 'ECBSR'])
def test_nodesr_is_the_identity_at_init_and_then_learns(backbone, extra):
    """The zero gain makes dI/dt = 0 with any backbone; one optimiser step opens it to the backbone.

    (BasicSR's EDSR and RCAN cannot be f: their 3-channel mean rejects the scale channel, see test_registry.)
    """
    torch.manual_seed(0)
    net = build_network({'type': 'NODESR', 'backbone': backbone, 'ode': {'num_steps': 2}, **extra})
    x = torch.rand(2, 3, 13, 11)
    probe = torch.cat([torch.rand(1, 3, 16, 16), torch.full((1, 1, 16, 16), 2.0)], dim=1)
    assert net.func.net(probe).abs().max() > 1e-3  # the backbone alone is no zero field
    for scale in (2.0, torch.tensor([1.5, 3.7])):
        assert (net(x, scale) - x).abs().max() <= 1e-6
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    target = torch.rand_like(x)
    backbone_grads = []
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.l1_loss(net(x, 2.5), target).backward()
        backbone_grads.append(sum(float(p.grad.abs().sum()) for p in net.func.net.parameters() if p.grad is not None))
        assert net.func.gain.grad.abs().min() > 0
        optimizer.step()
    assert backbone_grads[0] == 0 and backbone_grads[1] > 0
    assert (net(x, 2.5) - x).abs().max() > 1e-3


def test_nodesr_checkpoints_without_gain_load_as_the_ungated_field():
    old = randomized(build_network({'type': 'NODESR', 'backbone': RRDB}), std=0.05)
    state = {k: v for k, v in old.state_dict().items() if not k.endswith('.gain')}
    net = build_network({'type': 'NODESR', 'backbone': RRDB})
    net.load_state_dict(state, strict=True)
    assert torch.equal(net.func.gain, torch.ones(1, 3, 1, 1))
    inp = torch.rand(1, 4, 8, 8)
    assert torch.equal(net.func(inp), old.func.net(inp)[:, :3])


def test_nodesr_sizes_already_multiple_are_not_padded():
    net = build_network({'type': 'NODESR', 'backbone': RRDB, 'ode': {'num_steps': 1}})
    shapes = backbone_inputs(net)
    net(torch.rand(1, 3, 8, 12), 2.0)
    assert shapes[0][0] == (1, 4, 8, 12)


@pytest.mark.parametrize('cls, kwargs', [(VDSRt, dict(num_feat=6, num_layer=3)),
                                         (RDNt, dict(num_feat=6, num_block=1, num_conv=2, num_grow=4))])
def test_baselines_are_one_shot_residual(cls, kwargs):
    net = randomized(cls(**kwargs))
    calls = []
    net.func.register_forward_hook(lambda module, inp, out: calls.append(inp[0]))
    x = torch.rand(2, 3, 9, 7)
    scale = torch.tensor([1.5, 4.0])
    out = net(x, scale)
    assert len(calls) == 1  # one evaluation of g
    assert torch.equal(calls[0][:, 3], scale.view(2, 1, 1).expand(2, 9, 7))
    assert torch.allclose(out, x + net.func(calls[0]))


def test_untrained_nets_return_their_input():
    """The last conv starts at zero: an untrained model is the bicubic baseline, a safe starting point."""
    x = torch.rand(1, 3, 8, 8)
    for net in (NODEVDSR(num_feat=4, num_layer=3), NODERDN(num_feat=4, num_block=1, num_conv=2, num_grow=4)):
        assert torch.equal(net(x, 2.5), x)
    assert torch.equal(VDSRt(num_feat=4, num_layer=3)(x, 2.5), x)
    assert torch.equal(VDSR(num_feat=4, num_layer=3)(x), x)


def test_classic_rdn_upscales_the_lr_image():
    net = RDN(num_feat=4, num_block=1, num_conv=2, num_grow=4, upscale=4)
    assert net.input_size == 'lr' and not net.takes_scale
    assert net(torch.rand(1, 3, 5, 6)).shape == (1, 3, 20, 24)


def conv_params(cin, cout, k):
    return cin * cout * k * k + cout


def test_paper_parameter_counts():
    counts = load_script('benchmarks/param_counts.py').param_counts(['NODE-VDSR', 'NODE-RDN', 'VDSR+t', 'RDN+t'])
    # VDSR f: 4 -> 64, 18 x (64 -> 64), 64 -> 3, all 3x3
    vdsr = conv_params(4, 64, 3) + 18 * conv_params(64, 64, 3) + conv_params(64, 3, 3)
    # RDN f: SFE 3x3 (4 -> 64, 64 -> 64), 16 RDBs of 8 dense 3x3 convs + 1x1 fusion, GFF 1x1 + 3x3, 3x3 to 3
    rdb = sum(conv_params(64 + 64 * i, 64, 3) for i in range(8)) + conv_params(64 + 8 * 64, 64, 1)
    rdn = (conv_params(4, 64, 3) + conv_params(64, 64, 3) + 16 * rdb + conv_params(16 * 64, 64, 1)
           + conv_params(64, 64, 3) + conv_params(64, 3, 3))
    assert counts == {'NODE-VDSR': vdsr, 'NODE-RDN': rdn, 'VDSR+t': vdsr, 'RDN+t': rdn}
    assert round(counts['NODE-VDSR'] / 1e6, 2) == 0.67  # the paper: about 0.67 M
    assert 21.9e6 <= counts['NODE-RDN'] <= 22.0e6  # the paper: about 21.9 M


def doc_yaml_blocks():
    import re

    import yaml
    with open(os.path.join(ROOT, 'docs', 'architectures.md')) as f:
        return [yaml.safe_load(block) for block in re.findall(r'```yaml\n(.*?)```', f.read(), re.S)]


def test_documented_option_examples_build():
    blocks = doc_yaml_blocks()
    assert len(blocks) == 3
    for block in blocks:
        net = build_network(dict(block['network_g']))
        x = torch.rand(1, 3, 10, 9)
        assert net(x, 1.0).shape == x.shape  # scale 1: no solve, but the whole option path ran


def test_nodesr_tiles_at_its_size_multiple():
    net = randomized(build_network({'type': 'NODESR', 'backbone': RRDB, 'ode': {'num_steps': 1}}), std=0.05)
    assert net.receptive_radius() is None  # unknown for a generic backbone: tile_pad must be given
    x = torch.rand(1, 3, 41, 38)
    shapes = backbone_inputs(net)
    net.set_tiling(10, 3)  # rounded up to RRDBNet's size multiple 4
    assert (net.tile, net.tile_pad) == (12, 4)
    out = net(x, 2.0)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert len(shapes) == 4 * 4 * 4  # 4 x 4 tiles of the padded 44 x 40 state, 4 rk4 evaluations
    assert all(s[0][2] % 4 == 0 and s[0][3] % 4 == 0 and s[0][2] <= 12 + 2 * 4 for s in shapes)
