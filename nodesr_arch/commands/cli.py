"""The ``nodesr`` command: ``nodesr {train,test,infer,benchmark,prepare,demo,export} ...`` and ``nodesr --version``.

Each subcommand lives in its own module with a ``main(argv)`` function; this only dispatches, so a
subcommand imports nothing it does not need.
"""
import importlib
import os
import sys

COMMANDS = {
    'train': ('nodesr_arch.commands.train', 'train from a BasicSR option YAML (-opt X.yml)'),
    'test': ('nodesr_arch.commands.test', 'test from a BasicSR option YAML (-opt Y.yml)'),
    'infer': ('nodesr_arch.commands.infer', 'super-resolve images at any scale or size'),
    'benchmark': ('nodesr_arch.commands.benchmark', 'PSNR/SSIM tables over datasets and scales'),
    'prepare': ('nodesr_arch.commands.prepare', 'make LMDBs and benchmark LR sets'),
    'demo': ('nodesr_arch.commands.demo', 'run the bundled model on scikit-image pictures'),
    'export': ('nodesr_arch.commands.export', 'write a NODE model as an ONNX graph (solver unrolled)'),
}


def usage():
    lines = ['usage: nodesr <command> [options]', '       nodesr --version', '', 'commands:']
    lines += [f'  {name:<10} {help_}' for name, (_, help_) in COMMANDS.items()]
    lines += ['', "run 'nodesr <command> -h' for a command's options"]
    return '\n'.join(lines)


def _spec_folder(name):
    """Where the module ``name`` is (or would be) imported from, without importing it; None if absent."""
    import importlib.util
    module = sys.modules.get(name)
    if module is not None and getattr(module, '__file__', None):
        return os.path.dirname(os.path.abspath(module.__file__))
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return os.path.abspath(list(spec.submodule_search_locations)[0])
    return os.path.dirname(os.path.abspath(spec.origin)) if spec.origin else None


def _owner(package, folder):
    """The installed distribution whose files hold ``folder`` (the ``package`` folder), with its version."""
    import importlib.metadata
    for dist in importlib.metadata.distributions():
        for f in dist.files or ():
            if str(f).replace(os.sep, '/') == f'{package}/__init__.py':
                if os.path.realpath(os.path.dirname(f.locate())) == os.path.realpath(folder):
                    return dist.metadata['Name'], dist.version
                break
    return None


def version_report():
    """The lines of ``nodesr --version``: the plugin, BasicSR, torch and torchdiffeq, each with its version and
    the folder it is imported from (nothing of them is imported), and warnings for a mixed install.

    Returns:
        list[str]: The lines; warnings start with ``warning:``.
    """
    import importlib.metadata

    import nodesr_arch
    from nodesr_arch import hook
    from nodesr_arch.basicsr_source import BASICSR_MISSING, basicsr_fit
    plugin = os.path.dirname(os.path.abspath(nodesr_arch.__file__))
    hook_file = hook.finder_file()
    lines = [f'nodesr_arch {nodesr_arch.__version__}  {plugin}', f'  start-up hook  {hook_file or "not installed"}'
             + ('  (off: NODESR_ARCH_HOOK)' if hook.hook_off() else '')]
    warnings = []
    if hook_file and os.path.realpath(os.path.dirname(hook_file)) != os.path.realpath(plugin):
        warnings.append(f'warning: the start-up hook ({hook_file}) and the package ({plugin}) come from different '
                        'copies of nodesr_arch: uninstall one (pip uninstall nodesr_arch, for each copy)')
    try:
        listed = importlib.metadata.distribution('nodesr_arch').version
    except importlib.metadata.PackageNotFoundError:
        listed = None
    if listed is not None and listed != nodesr_arch.__version__:
        warnings.append(f'warning: pip lists nodesr_arch {listed}, but {nodesr_arch.__version__} runs ({plugin})')
    fit = basicsr_fit()
    if fit.root is None:
        lines.append(BASICSR_MISSING)
    else:
        owner = _owner('basicsr', fit.root)
        fixes = ('compatibility fixes apply' + (f' ({", ".join(sorted(fit.needs))} shims)' if fit.needs else '')
                 if fit.reason is None else f'no compatibility fix applies: {fit.reason}')
        lines.append(f'BasicSR {fit.version or "?"}' + (f' ({owner[0]} {owner[1]})' if owner else '')
                     + f'  {fit.root}  [{fixes}]')
    for name in ('torch', 'torchdiffeq'):
        folder = _spec_folder(name)
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = '?'
        lines.append(f'{name} {version}  {folder}' if folder else f'{name}: not installed')
    lines.append(f'Python {sys.version.split()[0]}  {sys.executable}')
    return lines + warnings


def require_basicsr(prog='nodesr'):
    """Exit with one line (status 2) when BasicSR is not installed: every ``nodesr`` command needs it."""
    from nodesr_arch.basicsr_source import BASICSR_MISSING, basicsr_root
    if basicsr_root() is None:
        print(f'{prog}: error: {BASICSR_MISSING}', file=sys.stderr)
        raise SystemExit(2)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage())
        return 0
    if argv[0] in ('-V', '--version'):
        print('\n'.join(version_report()))
        return 0
    name = argv.pop(0)
    if name not in COMMANDS:
        print(f"nodesr: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    if not set(argv) & {'-h', '--help'}:
        require_basicsr(f'nodesr {name}')
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f'nodesr {name}'] + argv
    return module.main(argv) or 0


if __name__ == '__main__':
    sys.exit(main())
