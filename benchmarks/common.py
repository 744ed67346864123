"""Shared helpers of the benchmark scripts: machine description, timing and peak-memory measurement."""
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch


def machine():
    """One line describing this machine and the torch build."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads, python {platform.python_version()}')


def timeit(fn, repeat=3, warmup=1):
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def peak_rss_mb():
    """Peak resident memory of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_isolated(module_args, env=None):
    """Run ``python <module_args>`` (e.g. ``['-m', 'benchmarks.tiling', ...]``) from the repository root in a
    fresh process (own peak RSS); return the JSON its last stdout line holds."""
    out = subprocess.run([sys.executable] + module_args, check=True, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])
