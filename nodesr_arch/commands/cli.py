"""The ``nodesr`` command: ``nodesr {train,test,infer,benchmark,prepare,demo,export} ...``.

Each subcommand lives in its own module with a ``main(argv)`` function; this only dispatches, so a
subcommand imports nothing it does not need.
"""
import importlib
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
    lines = ['usage: nodesr <command> [options]', '', 'commands:']
    lines += [f'  {name:<10} {help_}' for name, (_, help_) in COMMANDS.items()]
    lines += ['', "run 'nodesr <command> -h' for a command's options"]
    return '\n'.join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage())
        return 0
    name = argv.pop(0)
    if name not in COMMANDS:
        print(f"nodesr: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f'nodesr {name}'] + argv
    return module.main(argv) or 0


if __name__ == '__main__':
    sys.exit(main())
