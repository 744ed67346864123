"""After ``import nodesr_arch`` our architectures are in BasicSR's registry next to BasicSR's own."""
import pytest
import torch

import nodesr_arch  # noqa: F401,I001  (first: compat fixes, registration)
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from helpers import one_thread_fixture

one_thread = one_thread_fixture()

OURS = ('NODEVDSR', 'NODERDN', 'NODESR', 'VDSRt', 'RDNt', 'VDSR', 'RDN')


@pytest.mark.parametrize('name', OURS)
def test_our_names_are_registered(name):
    assert ARCH_REGISTRY.get(name).__module__.startswith('nodesr_arch.archs.')


@pytest.mark.parametrize('name', ['EDSR', 'RCAN', 'RRDBNet', 'SwinIR', 'MSRResNet', 'VGGStyleDiscriminator'])
def test_basicsr_names_still_resolve_to_basicsr(name):
    assert ARCH_REGISTRY.get(name).__module__.startswith('basicsr.archs.')


def test_registering_a_clashing_name_is_refused():
    """BasicSR refuses duplicates, so a name of ours can never shadow one of BasicSR's."""
    with pytest.raises(AssertionError, match='NODEVDSR'):
        ARCH_REGISTRY.register(ARCH_REGISTRY.get('NODEVDSR'))


TINY = {
    'NODEVDSR': dict(num_feat=4, num_layer=3, ode={'method': 'euler', 'num_steps': 2}),
    'NODERDN': dict(num_feat=4, num_block=1, num_conv=2, num_grow=4, ode={'method': 'midpoint', 'step_size': 0.5}),
    'NODESR': dict(backbone={'type': 'RRDBNet', 'num_feat': 4, 'num_block': 1, 'num_grow_ch': 4, 'scale': 1}),
    'VDSRt': dict(num_feat=4, num_layer=3),
    'RDNt': dict(num_feat=4, num_block=1, num_conv=2, num_grow=4),
    'VDSR': dict(num_feat=4, num_layer=3),
    'RDN': dict(num_feat=4, num_block=1, num_conv=2, num_grow=4, upscale=3),
}


@pytest.mark.parametrize('name', OURS)
def test_build_network_from_option_dict(name):
    net = build_network({'type': name, **TINY[name]})
    assert type(net) is ARCH_REGISTRY.get(name)
    x = torch.rand(2, 3, 10, 8)
    out = net(x, torch.tensor([2.0, 3.5])) if net.takes_scale else net(x)
    factor = 3 if net.input_size == 'lr' else 1
    assert out.shape == (2, 3, 10 * factor, 8 * factor)
    assert torch.isfinite(out).all()


def test_solver_options_reach_the_integrator():
    net = build_network({'type': 'NODERDN', **TINY['NODERDN']})
    assert (net.ode.method, net.ode.step_size, net.ode.num_steps) == ('midpoint', 0.5, None)
    net(torch.rand(1, 3, 6, 6), 3.0)
    assert net.ode.nfe == 2 * 4  # (3 - 1) / 0.5 = 4 midpoint steps of 2 evaluations


def test_bad_options_name_the_problem():
    with pytest.raises(ValueError, match='unknown key'):
        build_network({'type': 'NODEVDSR', 'ode': {'steps': 2}})
    with pytest.raises(ValueError, match='backbone'):
        build_network({'type': 'NODESR', 'backbone': 'EDSR'})
    with pytest.raises(ValueError, match='NoSuchNet'):
        build_network({'type': 'NODESR', 'backbone': {'type': 'NoSuchNet'}})
    with pytest.raises(ValueError, match='EDSR fails on a 4-channel input'):  # EDSR hard-codes 3 channels
        build_network({'type': 'NODESR', 'backbone': {'type': 'EDSR', 'num_feat': 4, 'num_block': 1, 'upscale': 1}})
    with pytest.raises(ValueError, match='keep the resolution'):
        build_network({'type': 'NODESR', 'backbone': {'type': 'RRDBNet', 'num_feat': 4, 'num_block': 1,
                                                      'num_grow_ch': 4, 'scale': 4}})
    with pytest.raises(ValueError, match='upscale'):
        build_network({'type': 'RDN', 'upscale': 8})


def test_one_contract_reads_every_network():
    from nodesr_arch.archs.contract import contract
    node = build_network({'type': 'NODEVDSR', **TINY['NODEVDSR']})
    assert contract(node) == (True, 'output', True, node.receptive_radius(), True)
    assert contract(build_network({'type': 'VDSRt', **TINY['VDSRt']}))[:3] == (True, 'output', False)
    assert contract(build_network({'type': 'VDSR', **TINY['VDSR']}))[:3] == (False, 'output', False)
    assert contract(build_network({'type': 'RDN', **TINY['RDN']}))[:3] == (False, 'lr', False)
    edsr = build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_block': 1, 'upscale': 2})
    assert contract(edsr) == (False, 'lr', False, None, False)  # BasicSR's networks declare nothing
    assert contract(ARCH_REGISTRY.get('NODERDN')).is_ode and contract(ARCH_REGISTRY.get('NODERDN')).tiles
