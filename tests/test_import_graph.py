"""The package's import graph (issue 21): no cycle among its modules, each module imports on its own in a fresh
interpreter, and the module map of docs/design.md (section 4) lists the modules there are."""
import ast
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'nodesr_arch'


def package_modules():
    """Every module of the package, by dotted name, with its file (``__init__.py`` for a package)."""
    modules = {}
    for folder, dirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if os.path.isfile(os.path.join(folder, d, '__init__.py')))
        for name in sorted(files):
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-len('.py')].split(os.sep)
                modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return modules


def _imported(node, module, modules):
    """The package modules one ``import``/``from ... import`` statement of ``module`` names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ''
        if node.level:  # relative: from the module's package
            package = module if modules[module].endswith('__init__.py') else module.rpartition('.')[0]
            base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1] + ([base] if base else []))
        names = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in modules:  # import a.b.c of a name inside a module: the module
            name = name.rpartition('.')[0]
        if name and name != module:
            found.add(name)
    return found


def import_graph(top_level_only):
    """``{module: set of package modules it imports}`` from each file's ``ast`` (nothing is imported).

    Args:
        top_level_only (bool): Only the imports that run when the module is imported (not those inside
            functions, which run when called). The parents a submodule's import runs implicitly are no arrows.
    """
    modules = package_modules()
    graph = {}
    for module, path in modules.items():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        edges, stack = set(), [tree]
        while stack:
            node = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    edges |= _imported(child, module, modules)
                elif not (top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))):
                    stack.append(child)
        graph[module] = edges
    return graph


def find_cycle(graph):
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state, path = {}, []

    def visit(node):
        state[node] = 'open'
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open':
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = 'done'
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None


def test_the_graph_reads_imports_as_python_does():
    graph = import_graph(top_level_only=False)
    assert graph['nodesr_arch'] >= {'nodesr_arch.hook', 'nodesr_arch.version', 'nodesr_arch.compat'}
    assert 'nodesr_arch.compat' not in import_graph(top_level_only=True)['nodesr_arch']  # inside register()
    assert 'nodesr_arch.archs.contract' in graph['nodesr_arch.models.option_check']


@pytest.mark.parametrize('top_level_only', [True, False], ids=['at-import', 'with-function-imports'])
def test_no_import_cycle_among_the_package_modules(top_level_only):
    """No cycle, counting the imports done inside functions too: every arrow points down (the ground floor,
    ``option_files``, ``registry``, ``basicsr_source``, ``version``, imports nothing of the package)."""
    graph = import_graph(top_level_only)
    assert find_cycle(graph) is None, ' -> '.join(find_cycle(graph))
    ground = ['option_files', 'registry', 'basicsr_source', 'version'] + (['hook'] if top_level_only else [])
    assert {module: graph[f'{PACKAGE}.{module}'] for module in ground} == {module: set() for module in ground}


#: Imported once before the modules are (no module of the package imports them for a side effect on it).
PRELOAD = ('numpy', 'torch', 'torchvision', 'torchvision.transforms', 'torchvision.models', 'cv2', 'scipy.ndimage',
           'scipy.special', 'scipy.stats', 'yaml', 'lmdb', 'tqdm', 'torchdiffeq', 'skimage', 'PIL.Image',
           'setuptools', 'matplotlib')

ISOLATED = '''
import importlib, os, sys, traceback
for name in {preload!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
failed = []
for module in {modules!r}:
    pid = os.fork()
    if pid == 0:  # a copy of this interpreter in which nothing of nodesr_arch or basicsr is imported yet
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            os._exit(3 if e.name.split('.')[0] in {optional!r} else 1)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status not in (0, 3):
        failed.append((module, status))
print('FAILED', failed)
'''


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs os.fork')
def test_each_module_imports_on_its_own():
    """Each module imported first in a fresh interpreter (a fork of one in which only third-party libraries are
    loaded): an import cycle that works in one order only, or a module that needs another imported first, fails."""
    modules = sorted(package_modules())
    assert len(modules) > 40
    code = ISOLATED.format(preload=PRELOAD, modules=modules, optional=('spandrel', 'onnx', 'onnxscript', 'onnxruntime'))
    assert 'nodesr_arch' not in code.split('failed = []')[0]
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0 and 'FAILED []' in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_the_module_map_lists_every_module():
    """docs/design.md section 4 names every module file of the package, and no file that is not there."""
    with open(os.path.join(ROOT, 'docs', 'design.md'), encoding='utf-8') as f:
        text = f.read()
    section = text[text.index('## 4. '):text.index('## 5. ')]
    listed = set(re.findall(r'`(nodesr_arch/[\w/]+\.py)`', section))
    files = {os.path.relpath(path, ROOT).replace(os.sep, '/') for path in package_modules().values()}
    assert sorted(files - listed) == [] and sorted(listed - files) == []
