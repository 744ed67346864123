"""The start-up hook (``nodesr_arch_hook.pth`` running ``nodesr_arch/hook.py``): light at start-up, installed by
wheel and editable installs, off with ``NODESR_ARCH_HOOK=0``, and NODE-SR registered only when something names
its types."""
import importlib.metadata
import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile

import pytest

from helpers import BASICSR_ALONE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOK_FILE = os.path.join(ROOT, 'nodesr_arch', 'hook.py')
PTH = os.path.join(ROOT, 'nodesr_arch_hook.pth')


def python(code, env=None, args=(), cwd=ROOT):
    full_env = dict(os.environ)
    full_env.pop('NODESR_ARCH_HOOK', None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, *args, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


LOADED = """
    import json, sys
    hooks = [type(f).__name__ for f in sys.meta_path if type(f).__name__ == 'BasicSRImportHook']
    print(json.dumps({'hooks': hooks, 'loaded': sorted(m for m in ('torch', 'basicsr', 'nodesr_arch',
                                                                   'nodesr_arch.compat') if m in sys.modules)}))
"""


def test_start_up_installs_only_a_finder():
    assert python(LOADED) == {'hooks': ['BasicSRImportHook'], 'loaded': []}


def test_hook_is_off_with_the_environment_variable():
    assert python(LOADED, env={'NODESR_ARCH_HOOK': '0'}) == {'hooks': [], 'loaded': []}


@pytest.mark.parametrize('value', ['0', ' 0', 'false', 'No', ' OFF\n'])
def test_hook_is_off_with_each_off_value(value):
    assert python(LOADED, env={'NODESR_ARCH_HOOK': value}) == {'hooks': [], 'loaded': []}


@pytest.mark.parametrize('value', ['1', '', 'yes'])
def test_hook_is_on_with_other_values(value):
    assert python(LOADED, env={'NODESR_ARCH_HOOK': value})['hooks'] == ['BasicSRImportHook']


def run_with_stderr(code, env=None, cwd=ROOT):
    full_env = dict(os.environ)
    full_env.pop('NODESR_ARCH_HOOK', None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


#: The start-up file of installs before the hook moved into the package (it imported a top-level module).
OLD_PTH = "import importlib.util as u; u.find_spec('nodesr_arch_hook') and __import__('nodesr_arch_hook').install()\n"


@pytest.mark.parametrize('pth, package', [('old', None), ('this', None), ('this', 'without_hook')])
def test_a_start_up_file_left_behind_without_its_module_is_silent(tmp_path, pth, package):
    """An uninstall that left the ``.pth`` (this one, or an old install's pointing at the top-level module of
    before), or a copy of it in another site dir, or a package without ``hook.py``, prints nothing at start-up."""
    site_dir = tmp_path / 'site'
    site_dir.mkdir()
    (site_dir / 'nodesr_arch_hook.pth').write_text(OLD_PTH if pth == 'old' else open(PTH).read())
    if package:
        (site_dir / 'nodesr_arch').mkdir()
        (site_dir / 'nodesr_arch' / '__init__.py').write_text('')
    # isolated: neither this checkout nor the environment's install can be found
    proc = subprocess.run([sys.executable, '-I', '-S', '-c', f'import site; site.addsitedir({str(site_dir)!r}); '
                           'import sys; print([f for f in sys.meta_path if type(f).__name__ == "BasicSRImportHook"])'],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, '[]', '')


def fake_basicsr(tmp_path, version):
    """A small BasicSR of another layout: its ``__init__`` records whether torch was imported before it."""
    pkg = tmp_path / 'fake' / 'basicsr'
    (pkg / 'utils').mkdir(parents=True)
    (pkg / '__init__.py').write_text('import sys\n'
                                     'BEFORE = sorted(m for m in ("torch", "torchvision") if m in sys.modules)\n'
                                     'from basicsr.utils import registry  # noqa\n')
    (pkg / 'utils' / '__init__.py').write_text('')
    (pkg / 'utils' / 'registry.py').write_text('ARCH_REGISTRY = {}\n')
    (pkg / 'version.py').write_text(f"__version__ = '{version}'\n")
    return str(tmp_path / 'fake')


@pytest.mark.parametrize('version, reason', [('1.3.5', 'version 1.3.5, not 1.4.2'),
                                             ('1.4.2', 'another layout: utils/registry.py (DATASET_REGISTRY')])
def test_another_basicsr_imports_untouched_and_is_named_once(tmp_path, version, reason):
    """The hook fixes only the BasicSR it was written for; another one imports as without the plugin, with one
    line saying so, and nothing of torch is imported for it."""
    fake = fake_basicsr(tmp_path, version)
    proc = run_with_stderr("""
        import json, sys
        import basicsr
        import basicsr.utils.registry
        from nodesr_arch import compat
        compat.apply()  # what import nodesr_arch asks for: nothing either
        print(json.dumps([basicsr.BEFORE, 'torch' in sys.modules, basicsr.__file__]))
    """, env={'PYTHONPATH': fake + os.pathsep + ROOT})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[], False, os.path.join(fake, 'basicsr', '__init__.py')]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and 'not the one its compatibility fixes were written for' in lines[0], proc.stderr
    assert reason in lines[0] and 'none is applied' in lines[0]


def test_the_hook_imports_nothing_of_torch_before_basicsr():
    """The import shims run before BasicSR's ``__init__`` without importing torch or torchvision."""
    got = python("""
        import json, sys
        from nodesr_arch import compat
        seen = []
        original = compat.before_import

        def spy(name):
            original(name)
            if name == 'basicsr':
                seen.extend(m for m in ('torch', 'torchvision') if m in sys.modules)

        compat.before_import = spy
        import basicsr.data.degradations
        print(json.dumps(seen))
    """)
    assert got == []


def test_import_basicsr_first_works_and_registers_node_sr_on_demand():
    got = python("""
        import json, sys
        import basicsr
        from basicsr.archs import build_network
        build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 2})
        before = 'nodesr_arch.archs' in sys.modules  # the fixes (nodesr_arch.compat) only
        net = build_network({'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2})
        print(json.dumps([before, 'nodesr_arch.archs' in sys.modules, type(net).__name__]))
    """)
    assert got == [False, True, 'NODEVDSR']


def test_plugin_types_list_what_the_package_registers():
    got = python(BASICSR_ALONE + textwrap.dedent("""
        import json
        import basicsr.utils.registry as reg
        from nodesr_arch.registry import PLUGIN_TYPES
        before = {name: set(getattr(reg, name).keys()) for name in PLUGIN_TYPES}
        import nodesr_arch
        nodesr_arch.register()
        print(json.dumps({name: sorted(set(getattr(reg, name).keys()) - before[name]) for name in before}))
    """), env={'NODESR_ARCH_HOOK': '0'})
    from nodesr_arch.registry import PLUGIN_TYPES
    assert got == {name: sorted(names) for name, names in PLUGIN_TYPES.items()}


def _installed():
    try:
        importlib.metadata.distribution('nodesr_arch')
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason='the project is not pip-installed in this environment')
def test_the_installed_project_has_the_start_up_file():
    """``pip install -e .`` (what CI runs) and wheel installs put the .pth at the root of site-packages."""
    dirs = site.getsitepackages() + [site.getusersitepackages()]
    found = [os.path.join(d, 'nodesr_arch_hook.pth') for d in dirs]
    found = [p for p in found if os.path.isfile(p)]
    assert found, f'nodesr_arch_hook.pth in none of {dirs}'
    with open(found[0]) as f, open(PTH) as g:
        assert f.read() == g.read()


def test_a_wheel_carries_the_hook_and_it_works_from_there(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.git', 'tests', 'docs', 'benchmarks', 'build',
                                                             '*.egg-info', '__pycache__', 'experiments', 'results'))
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                           str(tmp_path / 'dist'), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel = next((tmp_path / 'dist').glob('nodesr_arch-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    assert {'nodesr_arch_hook.pth', 'nodesr_arch/hook.py', 'nodesr_arch/compat.py', 'nodesr_arch/option_files.py'} <= \
        set(names)
    # the start-up file is the one file outside the package
    assert [n for n in names if not n.startswith(('nodesr_arch/', 'nodesr_arch-'))] == ['nodesr_arch_hook.pth']
    # BasicSR only through an extra, so installing the project keeps a basicsr-fixed the user has
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('.dist-info/METADATA'))).decode()
    requires = [line.split(':', 1)[1].strip() for line in metadata.splitlines() if line.startswith('Requires-Dist:')]
    assert [r for r in requires if r.startswith('basicsr')] == ['basicsr==1.4.2; extra == "basicsr"',
                                                                'basicsr-fixed==1.4.2; extra == "basicsr-fixed"']
    target = tmp_path / 'site'
    zipfile.ZipFile(wheel).extractall(target)  # what pip puts in site-packages
    # a fresh interpreter without this environment's start-up files: only the wheel's folder is a site dir
    got = python(f"""
        import json, site, sys
        site.addsitedir({str(target)!r})
        sys.path += {[p for p in sys.path if p.endswith('site-packages')]!r}
        hooks = [type(f).find_spec.__code__.co_filename for f in sys.meta_path
                 if type(f).__name__ == 'BasicSRImportHook']
        started = 'nodesr_arch' in sys.modules
        import basicsr
        from basicsr.utils.registry import ARCH_REGISTRY
        print(json.dumps([hooks, started, ARCH_REGISTRY.get('NODEVDSR').__module__,
                          sys.modules['nodesr_arch'].__file__]))
    """, env={'PYTHONPATH': ''}, args=('-S', ), cwd=str(tmp_path))
    assert got[0] == [os.path.join(str(target), 'nodesr_arch', 'hook.py')] and got[1] is False
    assert got[2] == 'nodesr_arch.archs.vdsr_arch' and got[3].startswith(str(target))


# ---- nodesr --version and a missing BasicSR -------------------------------------------------------------------


def run_cli(args, env=None, prelude=''):
    code = f'{prelude}\nimport sys\nfrom nodesr_arch.commands.cli import main\nsys.exit(main({list(args)!r}))'
    return run_with_stderr(code, env=env)


def test_version_names_each_package_and_where_it_is_loaded_from():
    import torch
    import torchdiffeq

    import basicsr
    for flag in ('--version', '-V'):
        proc = run_cli([flag])
        assert proc.returncode == 0 and proc.stderr == '', proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == f'nodesr_arch {importlib.import_module("nodesr_arch").__version__}  ' + \
            os.path.join(ROOT, 'nodesr_arch')
        assert lines[1] == f'  start-up hook  {HOOK_FILE}'
        assert lines[2].startswith(f'BasicSR {basicsr.__version__} (') and os.path.dirname(basicsr.__file__) in lines[2]
        assert 'compatibility fixes apply' in lines[2]
        assert lines[3] == f'torch {torch.__version__.split("+")[0]}  {os.path.dirname(torch.__file__)}' or \
            lines[3].startswith('torch ') and os.path.dirname(torch.__file__) in lines[3]
        assert lines[4].startswith('torchdiffeq ') and os.path.dirname(torchdiffeq.__file__) in lines[4]
        assert not any(line.startswith('warning:') for line in lines)


def other_hook(tmp_path, name='nodesr_arch.hook'):
    """Code that puts, first on ``sys.meta_path``, the finder of a copy of ``hook.py`` in another folder (another
    install's, run as the start-up file runs it)."""
    other = tmp_path / 'other' / 'nodesr_arch' / 'hook.py'
    other.parent.mkdir(parents=True)
    shutil.copy(HOOK_FILE, other)
    return str(other), textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location({name!r}, {str(other)!r})
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        sys.meta_path.insert(0, other.BasicSRImportHook())
    """)


def test_version_warns_when_the_hook_and_the_package_come_from_different_copies(tmp_path):
    other, prelude = other_hook(tmp_path)
    proc = run_cli(['--version'], prelude=prelude)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1] == f'  start-up hook  {other}'
    warning = [line for line in proc.stdout.splitlines() if line.startswith('warning:')]
    assert f'warning: the start-up hook ({other}) and the package ({os.path.join(ROOT, "nodesr_arch")})' in warning[0]
    assert 'different copies' in warning[0]


ASK_EVERYONE = """
class AskEveryone:  # another finder that asks the others in turn, as the hook does
    def find_spec(self, name, path=None, target=None):
        for finder in sys.meta_path:
            spec = finder is not self and hasattr(finder, 'find_spec') and finder.find_spec(name, path, target)
            if spec:
                return spec
sys.meta_path.insert(0, AskEveryone())
"""


@pytest.mark.parametrize('other', ['old_install', 'another_install', 'a_finder_that_asks_back'])
def test_two_installs_of_the_hook_side_by_side_do_not_recurse(tmp_path, other):
    """A second hook in front of this one (an old install's top-level ``nodesr_arch_hook``, another install's
    copy) or a finder that asks ``sys.meta_path`` in turn: BasicSR imports, its loader is wrapped once, and
    NODE-SR registers on demand."""
    if other == 'a_finder_that_asks_back':
        prelude = 'import sys' + ASK_EVERYONE
    else:
        prelude = other_hook(tmp_path, 'nodesr_arch_hook' if other == 'old_install' else 'nodesr_arch.hook')[1]
    got = python(prelude + textwrap.dedent("""
        import json
        from nodesr_arch import compat
        calls = []
        original = compat.before_import

        def spy(name):
            calls.append(name)
            original(name)

        compat.before_import = spy
        import basicsr
        from basicsr.utils.registry import ARCH_REGISTRY
        print(json.dumps([sorted(calls), ARCH_REGISTRY.get('NODEVDSR').__name__]))
    """))
    from nodesr_arch.hook import WATCHED
    assert got == [sorted(WATCHED), 'NODEVDSR']


HIDE_BASICSR = """import sys
class NoBasicSR:  # as if BasicSR were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'basicsr':
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, NoBasicSR())
"""


@pytest.mark.parametrize('args', [['infer', '-i', 'x.png', '-o', 'out', '--scale', '2'], ['train', '-opt', 'x.yml'],
                                  ['test', '-opt', 'x.yml'], ['demo']])
def test_without_basicsr_each_command_says_to_install_it(tmp_path, args):
    proc = run_with_stderr(f'{HIDE_BASICSR}\nfrom nodesr_arch.commands.cli import main\nsys.exit(main({args!r}))',
                           cwd=str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.splitlines() == [f'nodesr {args[0]}: error: BasicSR is not installed: '
                                        'pip install "nodesr_arch[basicsr]" (or "nodesr_arch[basicsr-fixed]")']
    assert os.listdir(tmp_path) == []


def test_without_basicsr_version_says_so_and_the_api_raises_one_line():
    proc = run_cli(['--version'], prelude=HIDE_BASICSR)
    assert proc.returncode == 0 and 'BasicSR is not installed: pip install' in proc.stdout.splitlines()[2]
    proc = run_with_stderr(HIDE_BASICSR + textwrap.dedent("""
        from nodesr_arch.basicsr_source import basicsr_module
        try:
            basicsr_module('basicsr.utils.matlab_functions')
        except ImportError as e:
            print(e)
    """))
    assert proc.stdout.strip() == ('BasicSR is not installed: pip install "nodesr_arch[basicsr]" '
                                   '(or "nodesr_arch[basicsr-fixed]")')
