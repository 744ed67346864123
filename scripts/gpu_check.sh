#!/usr/bin/env bash
# The GPU check: the tests marked `gpu` and the speed script, on one GPU, results under --out.
#
#   bash scripts/gpu_check.sh --out DIR [--budget SECONDS] [PYTEST_ARGS ...]
#
# In this order, each under a time limit (its failure or timeout is recorded and the next step runs):
#   1. pytest -m gpu tests/ --junitxml DIR/gpu_tests.xml (test_device.py on CUDA against the CPU; nodesr train
#      of a tiny YAML on the GPU, with BasicSR's CUDA prefetcher, and under torchrun with NCCL); PYTEST_ARGS
#      are added (e.g. -k train, or more test files)
#   2. python -m benchmarks.gpu_speed train --out DIR/train_speed.json (paper-size training speed and memory)
#   3. python -m benchmarks.gpu_speed infer --out DIR/infer_speed.json (inference speed and memory)
# --budget (default 360 s) is shared: the tests get up to 150 s, the speed steps what is left (3/5, then all).
# Every step's output goes to DIR/gpu_check.log; the exit status is 0 only if every step passed. Without a
# CUDA device the script stops at once (exit 2): the gpu tests would all be skipped.
#
# The project need not be installed: the script puts its own checkout first on PYTHONPATH. On a GPU machine
# without BasicSR, install the wheels of scripts/gpu_wheels.sh first, e.g. (GPU machine of this workplace):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#       .whl/*.whl && export PYTHONPATH=/tmp/site && bash scripts/gpu_check.sh --out $OUT
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=""
BUDGET=360
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT_DIR=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) PYTEST_ARGS+=("$1"); shift ;;
    esac
done
[ -n "$OUT_DIR" ] || { echo "gpu_check: --out DIR is required" >&2; exit 2; }
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG=$OUT_DIR/gpu_check.log
START=$(date +%s)
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 2)' \
    || { echo "gpu_check: torch sees no CUDA device" | tee "$LOG" >&2; exit 2; }
: > "$LOG"
FAILED=0

# step NAME LIMIT_S CMD... : run CMD under a time limit (SIGINT first: pytest and Python still write what they
# have), append its output to the log, record its exit status
step() {
    local name=$1 limit=$2 rc
    shift 2
    echo "=== [$name] limit ${limit}s: $*" | tee -a "$LOG"
    timeout -s INT -k 15 "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
    echo "=== [$name] exit $rc after $(( $(date +%s) - START )) s in all" | tee -a "$LOG"
    [ "$rc" = 0 ] || FAILED=1
}
left() { local s=$(( BUDGET - ($(date +%s) - START) )); echo $(( s < 10 ? 10 : s )); }  # 10 s at least

step gpu_tests $(( BUDGET * 150 / 360 )) "$PY" -m pytest -m gpu -q -rfEs -p no:cacheprovider \
    --junitxml="$OUT_DIR/gpu_tests.xml" tests/ "${PYTEST_ARGS[@]}"
limit=$(( $(left) * 3 / 5 ))
step train_speed "$limit" "$PY" -m benchmarks.gpu_speed train --out "$OUT_DIR/train_speed.json" \
    --budget $(( limit > 60 ? limit - 45 : limit / 2 + 1 ))
limit=$(left)
step infer_speed "$limit" "$PY" -m benchmarks.gpu_speed infer --out "$OUT_DIR/infer_speed.json" \
    --budget $(( limit > 50 ? limit - 35 : limit / 2 + 1 ))
tail -n 30 "$LOG"
exit "$FAILED"
