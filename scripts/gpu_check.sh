#!/usr/bin/env bash
# The prepared GPU check (issue 12): one run on one GPU, under 8 minutes, writes a Markdown + JSON report.
#
#   bash scripts/gpu_check.sh --out DIR [--budget SECONDS] [--only PART,...] [--suite "TEST_FILE ..."]
#   bash scripts/gpu_check.sh --out DIR --dry-run     # the same logic on the CPU with tiny sizes (a test runs it)
#
# Parts, in this order, each guarded (its failure or timeout is recorded and the next part runs) and each
# limited in time so that the whole run ends inside --budget (default 360 s):
#   env             GPU, driver, torch, CUDA, cudnn, NCCL, BasicSR versions
#   device_tests    (a) NODESR_TEST_DEVICE=cuda pytest tests/test_device.py
#   train_1gpu      (b) nodesr train of a tiny YAML, num_gpu: 1, BasicSR's CUDA prefetcher
#   train_torchrun  (b) the same under torchrun --nproc_per_node 1 ... --launcher pytorch (NCCL)
#   train_speed     (c) paper-size training speed and memory (python -m benchmarks.gpu_speed train)
#   infer_speed     (d) inference speed and memory (python -m benchmarks.gpu_speed infer)
#   suite           (a) the other quick test files (all but test_train.py and this check's own test)
# Output in DIR: gpu_check.md, gpu_check.json (rewritten after every part), gpu_check.log (every part's
# output), train_speed.json, infer_speed.json.
#
# The project need not be installed: the script puts its own checkout first on PYTHONPATH and calls
# `nodesr` if that command exists, else `python -m nodesr_arch.commands.cli`. On a GPU machine without BasicSR,
# install the wheels of scripts/gpu_wheels.sh first, e.g. (GPU machine of this workplace, $OUT given):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#       .whl/*.whl && export PYTHONPATH=/tmp/site && bash scripts/gpu_check.sh --out $OUT
set -uo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=""
DRY=0
BUDGET=""
ONLY=""
SUITE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT_DIR=$2; shift 2 ;;
        --out=*) OUT_DIR=${1#*=}; shift ;;
        --dry-run) DRY=1; shift ;;
        --budget) BUDGET=$2; shift 2 ;;
        --budget=*) BUDGET=${1#*=}; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        --suite) SUITE=$2; shift 2 ;;
        --suite=*) SUITE=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT_DIR" ] || { echo "gpu_check: --out DIR is required" >&2; exit 2; }
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
cd "$ROOT"

PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
LOG=$OUT_DIR/gpu_check.log
: > "$LOG"
: > "$WORK/parts.tsv"

if [ "$DRY" = 1 ]; then
    MODE=dry-run DEVICE=cpu NUM_GPU=0 PREFETCH=()
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tiny tensors: one thread is faster on a shared CPU
    BUDGET=${BUDGET:-240}
    DEVICE_K=(-k "auto_device or closed_form or api_on_device")
    SUITE_FILES=(tests/test_registry.py -k registered)
    SPEED_ARGS=(--tiny --device cpu --max-iters 2)
    TRAIN_BUDGET=6 INFER_BUDGET=6
else
    MODE=gpu DEVICE=cuda NUM_GPU=1 PREFETCH=(--prefetch cuda)
    BUDGET=${BUDGET:-360}
    DEVICE_K=()
    SUITE_FILES=()
    for f in tests/test_*.py; do
        case "$f" in tests/test_train.py|tests/test_device.py|tests/test_gpu_check.py) ;; *) SUITE_FILES+=("$f") ;; esac
    done
    SPEED_ARGS=(--device cuda)
    TRAIN_BUDGET=110 INFER_BUDGET=80
    if "$PY" -c 'import xdist' 2>/dev/null; then SUITE_FILES+=(-n 8); fi
fi
if [ -n "$SUITE" ]; then read -r -a SUITE_FILES <<< "$SUITE"; fi
if command -v nodesr > /dev/null 2>&1; then NODESR=(nodesr); else NODESR=("$PY" -m nodesr_arch.commands.cli); fi
START=$(date +%s)
DEADLINE=$((START + ${BUDGET%.*}))

echo "gpu_check: mode $MODE, budget ${BUDGET} s, out $OUT_DIR, work $WORK, CLI: ${NODESR[*]}" | tee -a "$LOG"

# rewrite the report from what the parts have left so far (cheap: no torch import)
report() {
    local f
    for f in train_speed.json infer_speed.json; do
        if [ -f "$WORK/$f" ]; then cp "$WORK/$f" "$OUT_DIR/"; fi
    done
    "$PY" benchmarks/gpu_check.py report --work "$WORK" --out "$OUT_DIR" --mode "$MODE" >> "$LOG" 2>&1
}

# seconds a part may take: at most $1, leaving for the parts after it $2 seconds of a 360 s budget (scaled)
limit_for() {
    local want=$1 reserve=$(($2 * ${BUDGET%.*} / 360)) left
    left=$((DEADLINE - $(date +%s) - reserve))
    [ "$left" -lt "$want" ] && want=$left
    [ "$want" -lt 5 ] && want=5
    echo "$want"
}

wanted() { [ "$1" = env ] || [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# part NAME LIMIT_S CMD... : run CMD with a time limit, log it, record its exit status, rewrite the report
part() {
    local name=$1 limit=$2 rc t0 t1 ms
    shift 2
    wanted "$name" || return 0
    printf '%q ' "$@" > "$WORK/$name.cmd"
    echo "=== [$name] limit ${limit}s: $*" | tee -a "$LOG"
    t0=$(date +%s%N)
    if [ "${GPU_CHECK_FAIL_PART:-}" = "$name" ]; then  # for the test of this script: a part that fails
        echo "simulated failure of part $name (GPU_CHECK_FAIL_PART)" > "$WORK/$name.log"
        rc=99
    else
        # SIGINT first: pytest and Python then stop cleanly and still write what they have
        timeout -s INT -k 15 "$limit" "$@" > "$WORK/$name.log" 2>&1
        rc=$?
    fi
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    cat "$WORK/$name.log" >> "$LOG"
    printf '%s\t%s\t%d.%03d\t%s\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) "$limit" >> "$WORK/parts.tsv"
    echo "=== [$name] exit $rc after $((ms / 1000)) s" | tee -a "$LOG"
    report
}

# script FILE CMD... : append one shell-quoted command line to FILE (the train parts run such a file)
script() {
    local file=$1
    shift
    printf '%q ' "$@" >> "$file"
    printf '\n' >> "$file"
}

# ---- env -------------------------------------------------------------------------------------------------
part env "$(limit_for 60 300)" "$PY" benchmarks/gpu_check.py env --out "$WORK/env.json"

# ---- (a) device tests ------------------------------------------------------------------------------------
part device_tests "$(limit_for 120 260)" env NODESR_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider \
    -rfEs --junitxml="$WORK/device_tests.xml" tests/test_device.py "${DEVICE_K[@]}"

# ---- (b) nodesr train, one process and under torchrun ----------------------------------------------------
TRAIN_DIR=$WORK/train
mkdir -p "$TRAIN_DIR"
CHECK=("$PY" "$ROOT/benchmarks/gpu_check.py")
printf 'set -e\ncd %q\n' "$TRAIN_DIR" | tee "$WORK/train_1gpu.sh" > "$WORK/train_torchrun.sh"
script "$WORK/train_1gpu.sh" "${CHECK[@]}" tiny-train . --name tiny_1gpu --num-gpu "$NUM_GPU" "${PREFETCH[@]}"
script "$WORK/train_1gpu.sh" "${NODESR[@]}" train -opt tiny_1gpu.yml
script "$WORK/train_1gpu.sh" "${CHECK[@]}" check-train . --name tiny_1gpu
script "$WORK/train_torchrun.sh" "${CHECK[@]}" tiny-train . --name tiny_torchrun --num-gpu "$NUM_GPU"
script "$WORK/train_torchrun.sh" env NCCL_DEBUG=VERSION "$PY" -m torch.distributed.run --standalone \
    --nproc_per_node 1 -m nodesr_arch.train -opt tiny_torchrun.yml --launcher pytorch
script "$WORK/train_torchrun.sh" "${CHECK[@]}" check-train . --name tiny_torchrun
part train_1gpu "$(limit_for 90 230)" bash -x "$WORK/train_1gpu.sh"
part train_torchrun "$(limit_for 90 200)" bash -x "$WORK/train_torchrun.sh"

# ---- (c), (d) speed --------------------------------------------------------------------------------------
limit=$(limit_for $((TRAIN_BUDGET + 45)) 100)
part train_speed "$limit" "$PY" -m benchmarks.gpu_speed train --out "$WORK/train_speed.json" \
    --budget $((limit - 45 > 3 ? limit - 45 : 3)) "${SPEED_ARGS[@]}"
limit=$(limit_for $((INFER_BUDGET + 35)) 30)
part infer_speed "$limit" "$PY" -m benchmarks.gpu_speed infer --out "$WORK/infer_speed.json" \
    --budget $((limit - 35 > 3 ? limit - 35 : 3)) "${SPEED_ARGS[@]}"

# ---- (a) the other quick test files, in what time is left --------------------------------------------------
part suite "$(limit_for 150 10)" env NODESR_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider -rfE \
    --junitxml="$WORK/suite.xml" "${SUITE_FILES[@]}"

report
echo "gpu_check: done in $(( $(date +%s) - START )) s; report: $OUT_DIR/gpu_check.md" | tee -a "$LOG"
tail -n +1 "$OUT_DIR/gpu_check.md"
# the exit status says whether every part that ran passed
! cut -f2 "$WORK/parts.tsv" | grep -qv '^0$'
