"""Benchmark 6: cost of the start-up hook (``nodesr_arch_hook.pth``) at interpreter start-up.

Starts ``python -c pass`` with the hook on and off (``NODESR_ARCH_HOOK=0``), interleaved so machine load
affects both alike, and prints the median of each and their difference; then the time of the start-up
file's line alone (it runs ``nodesr_arch/hook.py``), and which heavy modules a bare start-up has loaded. Target:
under 5 ms, no torch import.

    python -m benchmarks.startup_hook [--runs 40]
"""
import argparse
import os
import site
import statistics
import subprocess
import sys
import time


def start(env, args=('-c', 'pass')):
    begin = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - begin


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=40)
    args = parser.parse_args()
    on = dict(os.environ)
    on.pop('NODESR_ARCH_HOOK', None)
    off = dict(on, NODESR_ARCH_HOOK='0')
    start(on), start(off)  # warm the file cache
    times = {'on': [], 'off': []}
    for _ in range(args.runs):
        times['on'].append(start(on))
        times['off'].append(start(off))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f'python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} interleaved starts each, '
          f'PYTHONDONTWRITEBYTECODE={os.environ.get("PYTHONDONTWRITEBYTECODE", "")!r}')
    print(f'python -c pass, hook on:  {med["on"]:.1f} ms (median)')
    print(f'python -c pass, hook off: {med["off"]:.1f} ms (median)')
    print(f'difference: {med["on"] - med["off"]:+.2f} ms')
    # the start-up file's own line (it runs nodesr_arch/hook.py without an import, so -X importtime misses it)
    pth = next((p for p in (os.path.join(d, 'nodesr_arch_hook.pth') for d in site.getsitepackages()) if
                os.path.isfile(p)), None)
    if pth and not os.environ.get('NODESR_ARCH_HOOK'):
        code = (f'import os, time; os.environ.pop("NODESR_ARCH_HOOK"); line = open({pth!r}).read(); '
                't = time.perf_counter(); exec(line); print(time.perf_counter() - t)')
        line_s = [float(subprocess.run([sys.executable, '-c', code], env=off, capture_output=True, text=True,
                                       check=True).stdout) for _ in range(10)]
        print(f'{pth} line (median of 10): {statistics.median(line_s) * 1000:.2f} ms')
    else:
        print('nodesr_arch_hook.pth not installed (or NODESR_ARCH_HOOK set)')
    loaded = subprocess.run(
        [sys.executable, '-c', "import sys; print(sorted(m for m in ('torch', 'basicsr', 'nodesr_arch', "
         "'nodesr_arch.compat', 'numpy') if m in sys.modules))"], env=on, capture_output=True, text=True,
        check=True).stdout.strip()
    print(f'heavy modules loaded by a bare start-up: {loaded}')


if __name__ == '__main__':
    main()
