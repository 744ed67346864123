"""Benchmark 6: cost of the start-up hook (``nodesr_arch_hook.pth``) at interpreter start-up.

Starts ``python -c pass`` with the hook on and off (``NODESR_ARCH_HOOK=0``), interleaved so machine load
affects both alike, and prints the median of each and their difference; then the hook module's own
import time from ``python -X importtime``, and which heavy modules a bare start-up has loaded. Target:
under 5 ms, no torch import.

    python -m benchmarks.startup_hook [--runs 40]
"""
import argparse
import os
import re
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
    self_us = []
    for _ in range(10):
        err = subprocess.run([sys.executable, '-X', 'importtime', '-c', 'pass'], env=on, capture_output=True,
                             text=True, check=True).stderr
        found = re.search(r'import time:\s+(\d+) \|\s+(\d+) \|\s+nodesr_arch_hook$', err, re.M)
        if found:
            self_us.append(int(found.group(2)))
    if self_us:
        print(f'nodesr_arch_hook import (-X importtime, cumulative): {statistics.median(self_us) / 1000:.2f} ms')
    else:
        print('nodesr_arch_hook not imported at start-up (not installed, or NODESR_ARCH_HOOK=0)')
    loaded = subprocess.run(
        [sys.executable, '-c', "import sys; print(sorted(m for m in ('torch', 'basicsr', 'nodesr_arch', "
         "'nodesr_arch_compat', 'numpy') if m in sys.modules))"], env=on, capture_output=True, text=True,
        check=True).stdout.strip()
    print(f'heavy modules loaded by a bare start-up: {loaded}')


if __name__ == '__main__':
    main()
