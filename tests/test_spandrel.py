"""``nodesr_arch.spandrel``: spandrel's ``ModelLoader`` loads each network this project trains, settings from
shapes and the solver from the checkpoint, with the output of ``nodesr_arch.api.load_model``; checkpoints of
other architectures are detected as spandrel detects them without it."""
import os

import pytest
import torch
import yaml

spandrel = pytest.importorskip('spandrel')

import nodesr_arch  # noqa: E402,F401  (compat fixes, registries)
import nodesr_arch.spandrel as ns  # noqa: E402
from basicsr.archs import build_network  # noqa: E402
from helpers import one_thread_fixture, randomized  # noqa: E402
from nodesr_arch.api import load_model  # noqa: E402
from nodesr_arch.archs.metasr_arch import DIV2K_MEAN  # noqa: E402
from nodesr_arch.solver_metadata import attach_solver, stored_solver  # noqa: E402

one_thread = one_thread_fixture()
RDN_OPT = {'num_feat': 6, 'num_block': 2, 'num_conv': 2, 'num_grow': 4}
VDSR_ENCODER = {'type': 'VDSRBody', 'num_out_ch': 8, 'num_feat': 8, 'num_layer': 3, 'zero_last': False}
NETS = {
    'NODEVDSR': {'num_feat': 6, 'num_layer': 3, 'ode': {'method': 'rk4', 'step_size': 1.0}},
    'NODEVDSR_one_step': {'type': 'NODEVDSR', 'num_feat': 6, 'num_layer': 3, 'ode': {'method': 'rk4', 'num_steps': 1}},
    'NODEVDSR_euler_sqrt': {'type': 'NODEVDSR', 'num_feat': 5, 'num_layer': 4,
                            'ode': {'method': 'euler', 'step_size': 0.5, 'time': 'sqrt'}},
    'NODERDN': dict(RDN_OPT, ode={'method': 'midpoint', 'num_steps': 2}),
    'NODESR': {'backbone': {'type': 'RRDBNet', 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'scale': 1},
               'ode': {'method': 'rk4', 'num_steps': 1}},
    'NODESR_SwinIR': {'type': 'NODESR', 'backbone': {
        'type': 'SwinIR', 'upscale': 1, 'upsampler': '', 'img_size': 16, 'window_size': 4, 'embed_dim': 12,
        'depths': [2, 1], 'num_heads': [2, 3], 'mlp_ratio': 2, 'img_range': 2.0},
        'ode': {'method': 'rk4', 'num_steps': 1}},
    'VDSRt': {'num_feat': 6, 'num_layer': 3},
    'RDNt': dict(RDN_OPT),
    'VDSR': {'num_feat': 6, 'num_layer': 3},
    'RDN_x2': dict(RDN_OPT, type='RDN', upscale=2),
    'RDN_x3': dict(RDN_OPT, type='RDN', upscale=3),
    'RDN_x4': dict(RDN_OPT, type='RDN', upscale=4),
    # the rivals: each encoder; settings no shape shows (img_mean, img_std, res_scale) off their defaults
    'MetaSR_VDSR': {'type': 'MetaSR', 'encoder': VDSR_ENCODER, 'hidden': 8},
    'MetaSR_EDSR': {'type': 'MetaSR', 'encoder': {'type': 'EDSRBody', 'num_feat': 6, 'num_block': 2, 'res_scale': 0.5},
                    'hidden': 5, 'kernel_size': 5, 'img_std': 0.7},
    'MetaRDN': dict(RDN_OPT, type='MetaRDN', hidden=8, img_mean=[0.3, 0.4, 0.5]),
    'LIIF_VDSR': {'type': 'LIIF', 'encoder': VDSR_ENCODER, 'hidden_list': [8, 8]},
    'LIIF_EDSR': {'type': 'LIIF', 'encoder': {'type': 'EDSRBody', 'num_feat': 6, 'num_block': 1}, 'hidden_list': [7],
                  'img_mean': 0.4, 'img_std': 0.25},
    'LIIF_RDN': {'type': 'LIIF', 'encoder': dict(RDN_OPT, type='RDNBody'), 'hidden_list': [8, 6]},
    'LIIF_VDSR_bic': {'type': 'LIIF', 'encoder': VDSR_ENCODER, 'hidden_list': [8], 'residual': 'bicubic'},
}
RIVALS = sorted(name for name, opt in NETS.items() if opt.get('type') in ('MetaSR', 'MetaRDN', 'LIIF'))


@pytest.fixture(scope='module')
def registry():
    """spandrel's registry with ours added, leaving spandrel's global one as it is."""
    reg = spandrel.MAIN_REGISTRY.copy()
    assert len(ns.register_spandrel(reg)) == len(ns.ARCHITECTURES)
    assert ns.register_spandrel(reg) == []  # again: nothing more
    return reg


def save(folder, name, opt, net=None, with_solver=True):
    """A BasicSR-format checkpoint as NODESRModel writes it, with the sidecar YAML load_model reads."""
    opt = dict(opt)
    opt.setdefault('type', name)
    torch.manual_seed(0)
    net = net or randomized(build_network(dict(opt)), std=0.05)
    params = attach_solver(net.state_dict(), net) if with_solver else net.state_dict()
    path = os.path.join(folder, f'{name}.pth')
    torch.save({'params': params}, path)
    with open(os.path.join(folder, f'{name}.yml'), 'w') as f:
        yaml.safe_dump({'name': name, 'network_g': opt}, f)
    return path


@pytest.mark.parametrize('name', sorted(NETS))
def test_model_loader_loads_each_network_as_load_model_does(tmp_path, registry, name):
    path = save(str(tmp_path), name, NETS[name])
    descriptor = spandrel.ModelLoader(registry=registry).load_from_file(path)
    kind = NETS[name].get('type', name)
    assert descriptor.architecture.id == f'nodesr_arch.{kind}' and descriptor.purpose == 'SR'
    reference = load_model(path)
    scale = NETS[name].get('upscale', ns.DEFAULT_SCALE)
    assert descriptor.scale == scale
    if 'ode' in NETS[name]:  # the solver the checkpoint records, not the default
        assert descriptor.model.ode_opt == NETS[name]['ode']
    x = torch.rand(1, 3, 13, 10)  # odd sizes
    with torch.no_grad():
        out = descriptor(x)
        expected = reference.super_resolve(x, scale)
    assert out.shape == (1, 3, 13 * scale, 10 * scale)
    assert (out - expected.clamp(0, 1)).abs().max() < 1e-5


@pytest.mark.parametrize('name', RIVALS)
def test_the_rivals_load_at_integer_and_arbitrary_scales(tmp_path, registry, name):
    """Meta-SR and LIIF: the network's own forward at x2 and x3 (integer-scale descriptors, odd sizes) and at
    x2.5 (the arbitrary-scale call), with the settings that no shape shows read from the checkpoint."""
    path = save(str(tmp_path), name, NETS[name])
    descriptor = spandrel.ModelLoader(registry=registry).load_from_file(path)
    assert descriptor.architecture.id == f"nodesr_arch.{NETS[name]['type']}"
    net = build_network(dict(NETS[name])).eval()
    net.load_state_dict(torch.load(path, weights_only=True)['params'])
    reference = load_model(path)
    x = torch.rand(1, 3, 11, 8)
    with torch.no_grad():
        for scale in (2, 3):
            out = ns.at_scale(descriptor, scale)(x)
            assert out.shape == (1, 3, 11 * scale, 8 * scale)
            assert (out - net(x, scale).clamp(0, 1)).abs().max() < 1e-5
            assert (out - reference.super_resolve(x, scale).clamp(0, 1)).abs().max() < 1e-5
        x = torch.rand(1, 3, 21, 17)
        out = ns.super_resolve(descriptor, x, 2.5)
        assert out.shape == (1, 3, 52, 42)
        assert (out - net(x, 2.5)).abs().max() < 1e-5


def test_a_checkpoint_without_the_rivals_settings_takes_the_option_files_defaults(tmp_path, registry):
    path = save(str(tmp_path), 'LIIF_EDSR', NETS['LIIF_EDSR'], with_solver=False)
    model = spandrel.ModelLoader(registry=registry).load_from_file(path).model
    assert model.img_mean.flatten().tolist() == [0.5] * 3 and model.img_std.flatten().tolist() == [0.5] * 3
    path = save(str(tmp_path), 'MetaSR_EDSR', NETS['MetaSR_EDSR'], with_solver=False)
    model = spandrel.ModelLoader(registry=registry).load_from_file(path).model
    assert model.img_std.flatten().tolist() == [1.0] * 3 and model.encoder.body[0].res_scale == 1.0
    assert model.img_mean.flatten().tolist() == pytest.approx(list(DIV2K_MEAN))


def test_meta_sr_on_rdn_is_meta_rdn(tmp_path, registry):
    """The same network either way, so one architecture claims it."""
    opt = {'type': 'MetaSR', 'encoder': dict(RDN_OPT, type='RDNBody'), 'hidden': 8}
    path = save(str(tmp_path), 'MetaSR_RDN', opt)
    descriptor = spandrel.ModelLoader(registry=registry).load_from_file(path)
    assert descriptor.architecture.id == 'nodesr_arch.MetaRDN'
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        assert (ns.super_resolve(descriptor, x, 1.7) - load_model(path).super_resolve(x, 1.7)).abs().max() < 1e-5


def test_arbitrary_and_other_integer_scales(tmp_path, registry):
    path = save(str(tmp_path), 'NODEVDSR', NETS['NODEVDSR'])
    descriptor = spandrel.ModelLoader(registry=registry).load_from_file(path)
    reference = load_model(path)
    x = torch.rand(2, 3, 63, 63)
    with torch.no_grad():
        out = ns.super_resolve(descriptor, x, 2.5)
        assert out.shape == (2, 3, 157, 157)  # floor(63 * 2.5): the size spandrel's padding cannot give
        assert (out - reference.super_resolve(x, 2.5)).abs().max() < 1e-5
        x2 = ns.at_scale(descriptor, 2)
        assert x2.scale == 2 and x2.model is descriptor.model
        assert (x2(x) - reference.super_resolve(x, 2).clamp(0, 1)).abs().max() < 1e-5
    with pytest.raises(ValueError, match='integer'):
        ns.at_scale(descriptor, 2.5)
    rdn = spandrel.ModelLoader(registry=registry).load_from_file(save(str(tmp_path), 'RDN_x2', NETS['RDN_x2']))
    with pytest.raises(ValueError, match='built for x2'):
        ns.at_scale(rdn, 3)


def test_register_spandrel_sets_the_scale_hosts_get(tmp_path):
    reg = spandrel.MAIN_REGISTRY.copy()
    try:
        ns.register_spandrel(reg, scale=2)
        descriptor = spandrel.ModelLoader(registry=reg).load_from_file(save(str(tmp_path), 'VDSRt', NETS['VDSRt']))
        assert descriptor.scale == 2
    finally:
        ns.register_spandrel(spandrel.ArchRegistry())  # back to the default scale
    with pytest.raises(ValueError, match='integer >= 1'):
        ns.register_spandrel(spandrel.ArchRegistry(), scale=0)


def test_a_checkpoint_without_solver_metadata_takes_the_papers_solver(tmp_path, registry):
    path = save(str(tmp_path), 'NODEVDSR', dict(NETS['NODEVDSR'], ode={'method': 'euler', 'num_steps': 3}),
                with_solver=False)
    descriptor = spandrel.ModelLoader(registry=registry).load_from_file(path)
    assert descriptor.model.ode_opt == ns.DEFAULT_SOLVER


def test_the_bundled_models_load(registry):
    folder = os.path.join(os.path.dirname(nodesr_arch.__file__), 'weights')
    for name, arch in (('NODEVDSR_S', 'nodesr_arch.NODEVDSR'), ('VDSRt_S', 'nodesr_arch.VDSRt')):
        descriptor = spandrel.ModelLoader(registry=registry).load_from_file(os.path.join(folder, f'{name}.pth'))
        assert descriptor.architecture.id == arch
        x = torch.rand(1, 3, 17, 12)
        with torch.no_grad():
            assert (descriptor(x) - load_model(name).super_resolve(x, 4).clamp(0, 1)).abs().max() < 1e-5


def test_nodesr_model_saves_the_solver_in_its_checkpoints(tmp_path):
    """NODESRModel.save_network records the solver, so a one-step model loads with one step."""
    from nodesr_arch.models.nodesr_model import NODESRModel

    class Stub:
        opt = {'path': {'models': str(tmp_path)}}

        @staticmethod
        def get_bare_model(net):
            return net

        @staticmethod
        def _save(obj, path, what):
            torch.save(obj, path)

    net = build_network(dict(NETS['NODEVDSR_one_step']))
    NODESRModel.save_network(Stub(), [net, net], 'net_g', 7, param_key=['params', 'params_ema'])
    saved = torch.load(str(tmp_path / 'net_g_7.pth'), weights_only=True)
    for key in ('params', 'params_ema'):
        assert stored_solver(saved[key]) == {'method': 'rk4', 'num_steps': 1}
        assert set(saved[key]) == set(net.state_dict())  # no key added: every loader reads the weights as before
        build_network(dict(NETS['NODEVDSR_one_step'])).load_state_dict(saved[key], strict=True)


# ---- not catching other architectures -------------------------------------------------------------------------


def _other_state_dicts():
    """State dicts of other architectures, made here: BasicSR's stock EDSR, RRDBNet, SwinIR and some of spandrel's
    own architectures (DnCNN, Compact, ESRGAN)."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DnCNN import DnCNN
    from spandrel.architectures.ESRGAN import ESRGAN
    nets = {
        'EDSR': build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2,
                               'upscale': 2}),
        'RRDBNet': build_network({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                                  'num_grow_ch': 32, 'scale': 4}),  # spandrel reads growth 32 only
        'SwinIR': build_network({'type': 'SwinIR', 'upscale': 2, 'in_chans': 3, 'img_size': 16, 'window_size': 4,
                                 'embed_dim': 12, 'depths': [1], 'num_heads': [2], 'mlp_ratio': 2,
                                 'upsampler': 'pixelshuffledirect'}),
        'DnCNN': DnCNN(nb=4, nc=8),
        'Compact': Compact(num_feat=8, num_conv=2),
        'ESRGAN': ESRGAN(num_filters=8, num_blocks=1),
    }
    return {name: {'params': net.state_dict()} for name, net in nets.items()}


def _detected(registry, state):
    try:
        return str(registry.load(state).architecture.id)
    except spandrel.UnsupportedModelError:
        return 'unsupported'


def test_other_checkpoints_load_as_without_the_plugin(registry):
    """Here: EDSR unsupported (spandrel 0.4.2 has no EDSR), BasicSR's RRDBNet as ESRGAN, the rest as themselves."""
    for name, state in _other_state_dicts().items():
        assert _detected(registry, state) == _detected(spandrel.MAIN_REGISTRY.copy(), state), name
        canonical = spandrel.canonicalize_state_dict(state)
        assert not [cls.kind for cls in ns.ARCHITECTURES if cls().detect(canonical)], name


def test_spandrels_own_architectures_do_not_claim_ours(tmp_path):
    for name, opt in NETS.items():
        state = spandrel.canonicalize_state_dict(torch.load(save(str(tmp_path), name, opt), weights_only=True))
        claims = [str(a.architecture.id) for a in spandrel.MAIN_REGISTRY.copy().architectures('detection')
                  if not str(a.architecture.id).startswith('nodesr_arch.') and a.detect(state)]
        assert claims == [], name
        assert [cls.kind for cls in ns.ARCHITECTURES if cls().detect(state)] == [opt.get('type', name)]


def test_a_key_more_or_less_is_not_ours(tmp_path):
    state = spandrel.canonicalize_state_dict(torch.load(save(str(tmp_path), 'NODERDN', NETS['NODERDN']),
                                                        weights_only=True))
    arch = ns.NODERDNArch()
    assert arch.detect(state)
    assert not arch.detect({**state, 'extra.weight': torch.zeros(1)})
    assert not arch.detect({k: v for k, v in state.items() if k != 'ode.field.func.body.gff.1.bias'})
