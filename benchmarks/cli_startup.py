"""Start-up of the ``nodesr`` command line (issue 11, item 6), against ``python -c "import torch"``.

Measured: ``nodesr infer -h``; an argument error; ``nodesr infer``'s start-up (what the command imports, then the
bundled model loaded: all it does before its first image); and a whole ``nodesr infer`` run on a 16x16 image
with the bundled model (its first convolutions add torch's one-off kernel set-up, a few tenths of a second on a
loaded 2-core machine). Each is started as a fresh process, interleaved so machine load affects all alike; the
medians are printed with the ratios to ``import torch`` (target for the start-up: within 1.3) and the ``-h`` time
(target: under 0.5 s).
Then which heavy packages each path imports. The command runs as ``python -m nodesr_arch.commands.cli``
(what the ``nodesr`` console script calls, without a launcher's own start-up).

    python -m benchmarks.cli_startup [--runs 7]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HEAVY = ('torch', 'numpy', 'cv2', 'torchdiffeq', 'scipy', 'torchvision', 'basicsr')
LOADED = ("import sys, runpy\nsys.argv = {argv!r}\ntry:\n    runpy.run_module('nodesr_arch.commands.cli', "
          "run_name='__main__')\nexcept SystemExit:\n    pass\nprint(sorted(m for m in {heavy!r} if m in sys.modules))")


# what nodesr infer imports and runs before its first image: the dispatcher, the command, the API, load_model()
STARTUP = ('import importlib, sys; import nodesr_arch.commands.cli as cli; '
           "importlib.import_module(cli.COMMANDS['infer'][0]); from nodesr_arch.api import load_model; load_model()")


def timed(cmd):
    begin = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - begin, proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=7)
    args = parser.parse_args()
    import cv2
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, 'tiny.png')
        cv2.imwrite(image, np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
        cli = [sys.executable, '-m', 'nodesr_arch.commands.cli']
        infer = ['infer', '-i', image, '-o', os.path.join(tmp, 'out'), '--scale', '2', '--force', '-q']
        cases = {
            'import torch': [sys.executable, '-c', 'import torch'],
            'nodesr infer start-up (model loaded)': [sys.executable, '-c', STARTUP],
            'nodesr infer (16x16, x2)': cli + infer,
            'nodesr infer -h': cli + ['infer', '-h'],
            'nodesr infer --scale x (argument error)': cli + ['infer', '-i', image, '-o', tmp, '--scale', 'x'],
        }
        expected = {'nodesr infer --scale x (argument error)': 2}
        for cmd in cases.values():  # warm the file cache
            timed(cmd)
        times = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, cmd in cases.items():
                seconds, proc = timed(cmd)
                if proc.returncode != expected.get(name, 0):
                    sys.exit(f'{name}: exit status {proc.returncode}\n{proc.stderr[-2000:]}')
                times[name].append(seconds)
        med = {name: statistics.median(v) for name, v in times.items()}
        print(f'python {sys.version.split()[0]}, {os.cpu_count()} cores, load average '
              f'{os.getloadavg()[0]:.1f}, {args.runs} interleaved runs each (median, min-max):')
        for name, v in times.items():
            print(f'  {name:<42} {med[name]:6.2f} s   ({min(v):.2f}-{max(v):.2f})')
        for name, target in (('nodesr infer start-up (model loaded)', ' (target <= 1.3)'),
                             ('nodesr infer (16x16, x2)', '')):
            print(f'{name} / import torch: {med[name] / med["import torch"]:.2f}{target}')
        print(f'nodesr infer -h: {med["nodesr infer -h"]:.2f} s (target < 0.5 s)')
        for name, argv in (('-h', ['nodesr', 'infer', '-h']), ('infer', ['nodesr'] + infer)):
            code = LOADED.format(argv=argv, heavy=HEAVY)
            out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout
            print(f'heavy packages imported by nodesr infer {name}: {out.strip().splitlines()[-1]}')


if __name__ == '__main__':
    main()
