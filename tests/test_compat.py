"""Each BasicSR compatibility fix (nodesr_arch/compat.py) on the path that breaks without it.

Where the broken path can run in this process, the test runs BasicSR's original function
(``compat.original``) and shows it fail, then the patched one and shows it work.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import basicsr.train as bt
import basicsr.utils.dist_util as du
import basicsr.utils.misc as misc
import nodesr_arch  # noqa: F401  (registers NODE-SR; the start-up hook fixed BasicSR as it was imported)
from basicsr.models.base_model import BaseModel
from basicsr.utils import options as bo
from helpers import one_thread_fixture
from nodesr_arch import compat
from nodesr_arch.basicsr_source import _LAYOUT, _SHIMS, basicsr_fit

one_thread = one_thread_fixture()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, env=None, cwd=None):
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=120)


# ---- fix 1: torchvision.transforms.functional_tensor (BasicSR#533, #650) ----------------------------------


@pytest.mark.skipif('functional_tensor' not in basicsr_fit().needs, reason='this BasicSR needs no alias')
def test_fresh_import_basicsr_fails_alone_and_works_after_nodesr_arch():
    plain = run_python('import basicsr', env={'NODESR_ARCH_HOOK': '0'})  # without the start-up hook
    assert plain.returncode != 0 and 'functional_tensor' in plain.stderr  # the upstream breakage is real
    fixed = run_python("""
        import nodesr_arch
        import basicsr
        from basicsr.archs import build_network
        from torchvision.transforms.functional_tensor import rgb_to_grayscale
        print(build_network({'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2}).__class__.__name__)
    """, env={'NODESR_ARCH_HOOK': '0'})
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip().endswith('NODEVDSR')


@pytest.mark.skipif('functional_tensor' not in basicsr_fit().needs, reason='this BasicSR needs no alias')
def test_functional_tensor_alias():
    import torchvision.transforms._functional_tensor as real
    from torchvision.transforms import functional_tensor
    assert functional_tensor is real


def copy_of_basicsr(tmp_path, edit=None):
    """The files of this BasicSR that :func:`basicsr_fit` reads, with ``edit(relative, text)`` applied."""
    root = os.path.dirname(bt.__file__)
    copy = tmp_path / 'basicsr'
    for relative in ['version.py', *_LAYOUT, *(f for f, _ in _SHIMS.values())]:
        with open(os.path.join(root, relative)) as f:
            text = f.read()
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_text(edit(relative, text) if edit else text)
    return str(copy)


def test_the_fixes_are_for_basicsr_1_4_2_and_the_alias_where_its_code_needs_it(tmp_path):
    old, new = 'transforms.functional_tensor import', 'transforms.functional import'  # PyPI's / master's import
    pypi = copy_of_basicsr(tmp_path / 'pypi', lambda relative, text: text.replace(new, old))
    assert basicsr_fit(pypi) == (pypi, '1.4.2', None, frozenset({'functional_tensor', 'distutils'}))
    # BasicSR's master and basicsr-fixed import torchvision.transforms.functional: no alias there
    master = copy_of_basicsr(tmp_path / 'master', lambda relative, text: text.replace(old, new))
    assert basicsr_fit(master).needs == {'distutils'}
    newer = copy_of_basicsr(tmp_path / 'newer', lambda relative, text: text.replace("'1.4.2'", "'1.5.0'"))
    assert basicsr_fit(newer)[2:] == ('version 1.5.0, not 1.4.2', frozenset())
    moved = copy_of_basicsr(tmp_path / 'moved', lambda relative, text: text.replace('def model_to_device', 'def to'))
    assert basicsr_fit(moved).reason == 'another layout: models/base_model.py (def model_to_device) not found'


def _basicsr_fixed():
    """True if the ``basicsr`` this interpreter imports is basicsr-fixed's."""
    import importlib.metadata
    try:
        files = importlib.metadata.distribution('basicsr-fixed').files or []
    except importlib.metadata.PackageNotFoundError:
        return False
    init = next((f for f in files if str(f).replace(os.sep, '/') == 'basicsr/__init__.py'), None)
    return init is not None and os.path.realpath(init.locate()) == os.path.realpath(sys.modules['basicsr'].__file__)


@pytest.mark.skipif(not _basicsr_fixed(), reason='basicsr-fixed is not the BasicSR of this environment')
def test_basicsr_fixed_gets_the_fixes_but_no_alias_and_installing_the_project_keeps_it():
    """With basicsr-fixed (the maintained fork: BasicSR master's code as 1.4.2) the plugin works, fix 1 is not
    applied, and pip, asked to install this project, would not install PyPI's basicsr over it."""
    proc = run_python("""
        import json, sys
        import basicsr.data.degradations
        from basicsr.archs import build_network
        from basicsr.utils import options
        net = build_network({'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2})
        print(json.dumps(['torchvision.transforms.functional_tensor' in sys.modules,
                          hasattr(options.parse_options, '__wrapped__'), type(net).__name__]))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == '[false, true, "NODEVDSR"]'
    pip = subprocess.run([sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-build-isolation', '--no-index',
                          '--quiet', '--report', '-', ROOT], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-3000:]
    import json
    names = [item['metadata']['name'] for item in json.loads(pip.stdout)['install']]
    assert names == ['nodesr_arch'], names


# ---- fix 2: distutils on Python >= 3.12 (BasicSR#656) -------------------------------------------------------


def test_distutils_comes_from_setuptools_which_is_a_dependency():
    with open(os.path.join(ROOT, 'setup.py')) as f:
        assert "'setuptools>=60'" in f.read()  # 60: its distutils shim replaces the stdlib's
    arch_util = os.path.join(os.path.dirname(bt.__file__), 'archs', 'arch_util.py')
    with open(arch_util) as f:
        assert 'from distutils.version import LooseVersion' in f.read()  # why it is needed
    # with stdlib distutils hidden (as on Python >= 3.12), fix_distutils still provides it
    result = run_python("""
        import sys
        class HideStdlibDistutils:
            def find_spec(self, name, path=None, target=None):
                if name == 'distutils' and 'setuptools' not in sys.modules:
                    raise ImportError('no distutils (Python 3.12)')
        sys.meta_path.insert(0, HideStdlibDistutils())
        from nodesr_arch import compat
        compat.fix_distutils()
        import distutils.version
        print(distutils.version.__file__)
    """)
    assert result.returncode == 0, result.stderr
    assert 'setuptools' in result.stdout


# ---- fix 3: CPU and root-anchored resume, auto_resume never archives (BasicSR#538) ---------------------------


def experiment(root, name='exp', iters=(5, 20)):
    """An experiment folder as BasicSR's trainer leaves it, with training states at ``iters``."""
    exp = os.path.join(root, 'experiments', name)
    states = os.path.join(exp, 'training_states')
    os.makedirs(states)
    os.makedirs(os.path.join(exp, 'models'))
    for it in iters:
        torch.save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, os.path.join(states, f'{it}.state'))
        torch.save({'params': {'w': torch.ones(1)}}, os.path.join(exp, 'models', f'net_g_{it}.pth'))
    with open(os.path.join(exp, 'train.log'), 'w') as f:
        f.write('log\n')
    return exp


def train_opt(root, name='exp', auto_resume=True, resume_state=None):
    exp = os.path.join(root, 'experiments', name)
    path = {'experiments_root': exp, 'models': os.path.join(exp, 'models'),
            'training_states': os.path.join(exp, 'training_states'), 'log': exp,
            'visualization': os.path.join(exp, 'visualization'), 'resume_state': resume_state}
    return {'name': name, 'root_path': root, 'auto_resume': auto_resume, 'num_gpu': 0, 'rank': 0,
            'world_size': 1, 'is_train': True, 'network_g': {'type': 'NODEVDSR'}, 'path': path}


def test_auto_resume_on_cpu_from_another_cwd(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / 'root', tmp_path / 'elsewhere'
    experiment(str(root))
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    original = compat.original(bt, 'load_resume_state')
    assert original(train_opt(str(root))) is None  # looks in ./experiments: finds nothing
    opt = train_opt(str(root))
    state = compat.load_resume_state(opt)
    assert state['iter'] == 20
    assert opt['path']['resume_state'] == str(root / 'experiments' / 'exp' / 'training_states' / '20.state')
    assert opt['path']['pretrain_network_g'].endswith(os.path.join('models', 'net_g_20.pth'))


@pytest.mark.parametrize('broken', ['state', 'checkpoint', 'missing checkpoint'])
def test_auto_resume_skips_a_newest_state_that_does_not_load(tmp_path, broken):
    exp = experiment(str(tmp_path), iters=(5, 20))  # a kill during the save of iteration 20
    if broken == 'state':
        with open(os.path.join(exp, 'training_states', '20.state'), 'r+b') as f:
            f.truncate(100)
    elif broken == 'checkpoint':
        with open(os.path.join(exp, 'models', 'net_g_20.pth'), 'wb') as f:
            f.write(b'garbage')
    else:
        os.remove(os.path.join(exp, 'models', 'net_g_20.pth'))
    opt = train_opt(str(tmp_path))
    with pytest.warns(UserWarning, match='20.state.*does not load.*trying the previous'):
        state = compat.load_resume_state(opt)
    assert state['iter'] == 5 and opt['path']['resume_state'].endswith('5.state')
    assert opt['path']['pretrain_network_g'].endswith('net_g_5.pth')


@pytest.mark.skipif(torch.cuda.is_available(), reason='the broken path is CPU-only')
def test_resume_state_loads_on_cpu(tmp_path):
    exp = experiment(str(tmp_path))
    opt = train_opt(str(tmp_path), auto_resume=False, resume_state=os.path.join(exp, 'training_states', '5.state'))
    with pytest.raises((AssertionError, RuntimeError)):  # torch.cuda.current_device() without CUDA
        compat.original(bt, 'load_resume_state')(dict(opt, path=dict(opt['path'])))
    assert compat.load_resume_state(opt)['iter'] == 5
    opt['path']['resume_state'] = os.path.join(exp, 'training_states', '99.state')
    with pytest.raises(FileNotFoundError, match='99.state'):
        compat.load_resume_state(opt)


def train_namespace():
    """The globals BasicSR's train.py binds, fixed as ``parse_options`` fixes them in ``train_pipeline``'s."""
    namespace = {'__name__': 'train_copy', 'load_resume_state': compat.original(bt, 'load_resume_state'),
                 'make_exp_dirs': misc.make_exp_dirs, 'mkdir_and_rename': misc.mkdir_and_rename}
    compat.fix_train_namespace(namespace)
    return namespace


def test_train_namespace_is_fixed_when_train_pipeline_parses_options(tmp_path):
    namespace = train_namespace()
    assert namespace['load_resume_state'] is compat.load_resume_state
    assert namespace['make_exp_dirs'] is not misc.make_exp_dirs
    compat.fix_train_namespace(namespace)  # once only
    assert namespace['make_exp_dirs'].__wrapped__.__wrapped__ is misc.make_exp_dirs
    # BasicSR's train.py, as a module or run as __main__, is recognised; other callers are left alone
    assert compat._is_basicsr_pipeline(vars(bt), 'train')
    assert compat._is_basicsr_pipeline({'__file__': bt.__file__, 'train_pipeline': None}, 'train')
    assert not compat._is_basicsr_pipeline({'__file__': str(tmp_path / 'train.py'), 'train_pipeline': None}, 'train')
    assert not compat._is_basicsr_pipeline(vars(bt), 'test')


def test_auto_resume_never_archives(tmp_path):
    ns = train_namespace()
    exp = experiment(str(tmp_path), iters=())  # crashed before the first training state
    opt = train_opt(str(tmp_path))
    assert ns['load_resume_state'](opt) is None
    ns['make_exp_dirs'](opt)  # what basicsr.train does when there is no state
    ns['mkdir_and_rename'](os.path.join(str(tmp_path), 'tb_logger', 'exp'))
    assert sorted(os.listdir(os.path.join(str(tmp_path), 'experiments'))) == ['exp']
    assert os.path.isfile(os.path.join(exp, 'train.log'))
    assert os.path.isdir(os.path.join(exp, 'visualization'))
    # without --auto_resume BasicSR's behaviour stays: an existing folder is archived
    opt = train_opt(str(tmp_path), auto_resume=False)
    assert ns['load_resume_state'](opt) is None
    ns['make_exp_dirs'](opt)
    names = os.listdir(os.path.join(str(tmp_path), 'experiments'))
    assert 'exp' in names and any(n.startswith('exp_archived_') for n in names)


# ---- fix 4: gloo without CUDA, DDP without device_ids, --local-rank (BasicSR#626) ---------------------------


def test_init_dist_pytorch_uses_gloo_without_cuda(monkeypatch):
    code = """
        import os, torch
        import nodesr_arch
        from basicsr.utils.dist_util import init_dist, get_dist_info
        import torch.distributed as dist
        init_dist('pytorch')
        print(dist.get_backend(), get_dist_info())
        dist.destroy_process_group()
    """
    env = {'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '1', 'MASTER_ADDR': '127.0.0.1',
           'MASTER_PORT': str(free_port())}
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == ('gloo (0, 1)' if not torch.cuda.is_available() else 'nccl (0, 1)')
    if not torch.cuda.is_available():
        monkeypatch.setenv('RANK', '0')
        with pytest.raises(ZeroDivisionError):  # BasicSR's: rank % torch.cuda.device_count()
            compat.original(du, '_init_dist_pytorch')('gloo')


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class _Model:
    """The attributes ``BaseModel.model_to_device`` reads."""

    def __init__(self, dist):
        self.opt = {'dist': dist, 'num_gpu': 0}
        self.device = torch.device('cpu')


@pytest.mark.skipif(torch.cuda.is_available(), reason='the broken path is CPU-only')
def test_model_to_device_wraps_ddp_on_cpu(tmp_path):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        with pytest.raises((AssertionError, RuntimeError, ValueError)):  # CUDA device_ids on a CPU machine
            compat.original(BaseModel, 'model_to_device')(_Model(True), nn.Conv2d(3, 3, 3))
        net = BaseModel.model_to_device(_Model(True), nn.Conv2d(3, 3, 3))
        assert isinstance(net, DistributedDataParallel) and net.device_ids is None
        net(torch.rand(1, 3, 8, 8)).mean().backward()
    finally:
        dist.destroy_process_group()
    assert isinstance(BaseModel.model_to_device(_Model(False), nn.Conv2d(3, 3, 3)), nn.Conv2d)


def test_local_rank_dash_is_normalised(tmp_path, monkeypatch):
    assert compat.normalize_argv(['t.py', '--local-rank=1', '--local-rank', '2', '-opt', 'x.yml']) == \
        ['t.py', '--local_rank=1', '--local_rank', '2', '-opt', 'x.yml']
    opt_file = tmp_path / 'opt.yml'
    opt_file.write_text(yaml.safe_dump({'name': 'debug_t', 'model_type': 'SRModel', 'num_gpu': 0, 'manual_seed': 1,
                                        'datasets': {}, 'network_g': {'type': 'EDSR'}, 'path': {}}))
    argv = ['train.py', '-opt', str(opt_file), '--local-rank=0']
    monkeypatch.setattr(sys, 'argv', list(argv))
    with pytest.raises(SystemExit):  # argparse: unrecognized arguments: --local-rank=0
        compat.original(bo, 'parse_options')(str(tmp_path), is_train=False)
    monkeypatch.setattr(sys, 'argv', list(argv))
    opt, args = bt.parse_options(str(tmp_path), is_train=False)  # what basicsr.train calls
    assert args.local_rank == 0 and opt['name'] == 'debug_t' and not opt['dist']


# ---- fix 5: a list of dataroot_gt roots ---------------------------------------------------------------------


def test_parse_options_accepts_a_list_of_dataroots(tmp_path, monkeypatch):
    dataset = {'name': 'train', 'type': 'PairedImageDataset', 'dataroot_gt': ['~/BSD200', 'datasets/T91']}
    opt_file = tmp_path / 'opt.yml'
    opt_file.write_text(yaml.safe_dump({'name': 'debug_t', 'model_type': 'SRModel', 'num_gpu': 0, 'manual_seed': 1,
                                        'datasets': {'train': dataset}, 'network_g': {'type': 'EDSR'}, 'path': {}}))
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_file)])
    monkeypatch.setattr(bo, 'osp', compat.original(bo, 'osp'))
    with pytest.raises(TypeError):  # os.path.expanduser(list)
        bo.parse_options(str(tmp_path), is_train=False)
    monkeypatch.undo()
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_file)])
    opt, _ = bo.parse_options(str(tmp_path), is_train=False)
    assert opt['datasets']['train']['dataroot_gt'] == [os.path.expanduser('~/BSD200'), 'datasets/T91']


# ---- fix 7: option files are parsed without Python objects ----------------------------------------------------


def test_ordered_yaml_keeps_order_and_refuses_python_objects():
    import yaml
    text = 'b: 1\na: ~\nc: !!float 5e3\nd: [x, {z: 1, y: 2}]\n'
    stock = yaml.load(text, Loader=compat.original(bo, 'ordered_yaml')()[0])
    safe = yaml.load(text, Loader=bo.ordered_yaml()[0])
    assert safe == stock and list(safe) == ['b', 'a', 'c', 'd'] and type(safe) is type(stock)
    assert safe['a'] is None and safe['c'] == 5000.0 and list(safe['d'][1]) == ['z', 'y']
    code = 'cwd: !!python/object/apply:os.getcwd []\n'  # harmless, but it runs a function
    assert yaml.load(code, Loader=compat.original(bo, 'ordered_yaml')()[0])['cwd'] == os.getcwd()
    with pytest.raises(yaml.constructor.ConstructorError, match='python/object/apply:os.getcwd'):
        yaml.load(code, Loader=bo.ordered_yaml()[0])
