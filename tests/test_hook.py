"""The start-up hook (``nodesr_arch_hook.pth``): light at start-up, installed by wheel and editable installs,
off with ``NODESR_ARCH_HOOK=0``, and NODE-SR registered only when something names its types."""
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
                                                                   'nodesr_arch_compat') if m in sys.modules)}))
"""


def test_start_up_installs_only_a_finder():
    assert python(LOADED) == {'hooks': ['BasicSRImportHook'], 'loaded': []}


def test_hook_is_off_with_the_environment_variable():
    assert python(LOADED, env={'NODESR_ARCH_HOOK': '0'}) == {'hooks': [], 'loaded': []}


def test_import_basicsr_first_works_and_registers_node_sr_on_demand():
    got = python("""
        import json, sys
        import basicsr
        from basicsr.archs import build_network
        build_network({'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 2})
        before = 'nodesr_arch' in sys.modules
        net = build_network({'type': 'NODEVDSR', 'num_feat': 4, 'num_layer': 2})
        print(json.dumps([before, 'nodesr_arch' in sys.modules, type(net).__name__]))
    """)
    assert got == [False, True, 'NODEVDSR']


def test_plugin_types_list_what_the_package_registers():
    got = python("""
        import json
        import nodesr_arch_compat
        nodesr_arch_compat.fix_imports()
        import basicsr.utils.registry as reg
        before = {name: set(getattr(reg, name).keys()) for name in nodesr_arch_compat.PLUGIN_TYPES}
        import nodesr_arch
        print(json.dumps({name: sorted(set(getattr(reg, name).keys()) - before[name]) for name in before}))
    """, env={'NODESR_ARCH_HOOK': '0'})
    import nodesr_arch_compat
    assert got == {name: sorted(names) for name, names in nodesr_arch_compat.PLUGIN_TYPES.items()}


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
    with open(found[0]) as f, open(os.path.join(ROOT, 'nodesr_arch_hook.pth')) as g:
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
    assert {'nodesr_arch_hook.pth', 'nodesr_arch_hook.py', 'nodesr_arch_compat.py'} <= set(names)
    target = tmp_path / 'site'
    zipfile.ZipFile(wheel).extractall(target)  # what pip puts in site-packages
    # a fresh interpreter without this environment's start-up files: only the wheel's folder is a site dir
    got = python(f"""
        import json, site, sys
        site.addsitedir({str(target)!r})
        sys.path += {[p for p in sys.path if p.endswith('site-packages')]!r}
        import nodesr_arch_hook
        import basicsr
        from basicsr.utils.registry import ARCH_REGISTRY
        print(json.dumps([nodesr_arch_hook.__file__, ARCH_REGISTRY.get('NODEVDSR').__module__]))
    """, args=('-S', ), cwd=str(tmp_path))
    assert got[0].startswith(str(target)) and got[1] == 'nodesr_arch.archs.vdsr_arch'
