#!/usr/bin/env bash
# The prepared GPU training run (issue 20): one command on one GPU, under 9 minutes, writes a JSON report.
#
#   bash scripts/gpu_train.sh --out DIR [--data .gpudata] [--wheels .whl] [--seconds 165] [--budget 540]
#   bash scripts/gpu_train.sh --out DIR --dry-run --data DIR    # the same on the CPU, tiny sizes (tests/test_gpu_train.py)
#
# Prepare on a CPU machine first (docs/gpu.md): `bash scripts/gpu_wheels.sh` (.whl: BasicSR and the packages the
# GPU machine lacks) and `python scripts/pack_train_data.py --src DATA --dest .gpudata` (T91 + BSD200, Set5, Set14).
# Parts, in this order, each limited in time so that the whole run ends inside --budget seconds:
#   install   the wheels of --wheels into a temporary site folder (not in a dry run)
#   speed     one NODE-VDSR, VDSR+t and NODE-RDN training step at the paper's batches: eager, torch.compile,
#             CUDA graphs (python -m benchmarks.gpu_train speed)
#   NODEVDSR  NODE-VDSR (options/train/train_NODEVDSR_T291_gpu.yml) trained for --seconds, evaluated on Set5 and
#             Set14 at x1.5, x2, x3, x4
#   VDSRt     its twin VDSR+t (options/train/train_VDSRt_T291_gpu.yml), the same
#   bundled   the bundled models NODEVDSR_S and VDSRt_S evaluated on the same sets (the reference)
#   report    DIR/gpu_train.json from the parts' files (python -m benchmarks.gpu_train_report)
# Output in DIR: gpu_train.json, speed.json, bundled.json, NODEVDSR_T291_gpu.{pth,json,log},
# VDSRt_T291_gpu.{pth,json,log} (the .pth: EMA weights, fp32), gpu_train.log (every part's output), parts.tsv
# (exit status and seconds).
set -uo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="" DRY=0 DATA=.gpudata WHEELS=.whl SECONDS_EACH="" BUDGET=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT_DIR=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_train: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT_DIR" ] || { echo "gpu_train: --out DIR is required" >&2; exit 2; }
case "$DATA" in /*) ;; *) DATA=$ROOT/$DATA ;; esac
case "$WHEELS" in /*) ;; *) WHEELS=$ROOT/$WHEELS ;; esac
[ -d "$DATA/train" ] || { echo "gpu_train: no packed data in $DATA (python scripts/pack_train_data.py)" >&2; exit 2; }
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
cd "$ROOT"

PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
LOG=$OUT_DIR/gpu_train.log
: > "$LOG"
: > "$OUT_DIR/parts.tsv"
if [ "$DRY" = 1 ]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    # generous limits: on a busy CPU each part's imports alone can take a minute
    SECONDS_EACH=${SECONDS_EACH:-2} BUDGET=${BUDGET:-1100} SPEED_BUDGET=150 OVERHEAD=200 BUNDLED=200
    DRYFLAG=(--dry-run)
else
    # 540 s: about 100 for the speed check, per model 165 of training and up to 40 of start, evaluation and
    # saving, 30 for the bundled models' evaluation
    SECONDS_EACH=${SECONDS_EACH:-165} BUDGET=${BUDGET:-540} SPEED_BUDGET=100 OVERHEAD=40 BUNDLED=30 DRYFLAG=()
fi
START=$(date +%s)
DEADLINE=$((START + ${BUDGET%.*}))
echo "gpu_train: $([ "$DRY" = 1 ] && echo dry-run || echo gpu), budget ${BUDGET} s, ${SECONDS_EACH} s of training" \
    "per model, data $DATA, out $OUT_DIR" | tee -a "$LOG"

# seconds a part may take: at most $1, leaving $2 seconds for the parts after it
limit_for() {
    local want=$1 left
    left=$((DEADLINE - $(date +%s) - $2))
    [ "$left" -lt "$want" ] && want=$left
    [ "$want" -lt 5 ] && want=5
    echo "$want"
}

# part NAME LIMIT_S CMD... : run CMD with a time limit (SIGINT first: Python stops and still writes what it has)
part() {
    local name=$1 limit=$2 rc t0
    shift 2
    echo "=== [$name] limit ${limit}s: $*" | tee -a "$LOG"
    t0=$(date +%s)
    timeout -s INT -k 15 "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" $(($(date +%s) - t0)) "$limit" >> "$OUT_DIR/parts.tsv"
    echo "=== [$name] exit $rc after $(($(date +%s) - t0)) s" | tee -a "$LOG"
    return "$rc"
}

if [ "$DRY" = 0 ]; then
    ls "$WHEELS"/*.whl > /dev/null 2>&1 || { echo "gpu_train: no wheels in $WHEELS (bash scripts/gpu_wheels.sh)" >&2; exit 2; }
    SITE=$(mktemp -d "${TMPDIR:-/tmp}/gpu_train_site.XXXXXX")
    part install 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
DRIVER=("$PY" -m benchmarks.gpu_train)
TRAIN_LIMIT=$((${SECONDS_EACH%.*} + OVERHEAD))

limit=$(limit_for $((SPEED_BUDGET + 15)) $((2 * TRAIN_LIMIT + BUNDLED)))
part speed "$limit" "${DRIVER[@]}" speed --out "$OUT_DIR/speed.json" --budget $((limit > 25 ? limit - 15 : 10)) \
    "${DRYFLAG[@]}"
for opt in NODEVDSR VDSRt; do
    left=$BUNDLED
    [ "$opt" = NODEVDSR ] && left=$((TRAIN_LIMIT + BUNDLED))
    part "$opt" "$(limit_for "$TRAIN_LIMIT" "$left")" "${DRIVER[@]}" train -opt "options/train/train_${opt}_T291_gpu.yml" \
        --out "$OUT_DIR" --data "$DATA" --seconds "$SECONDS_EACH" "${DRYFLAG[@]}"
done
part bundled "$(limit_for "$BUNDLED" 1)" "${DRIVER[@]}" bundled --out "$OUT_DIR" --data "$DATA" "${DRYFLAG[@]}"
part report 30 "$PY" -m benchmarks.gpu_train_report --out "$OUT_DIR" --names NODEVDSR_T291_gpu VDSRt_T291_gpu \
    "${DRYFLAG[@]}"
sed -n '/^=== \[report\] limit/,/^=== \[report\] exit/p' "$LOG" | sed '1d;$d'  # the summary, on stdout too
echo "gpu_train: done in $(( $(date +%s) - START )) s; report: $OUT_DIR/gpu_train.json" | tee -a "$LOG"
# the exit status says whether every part passed
! cut -f2 "$OUT_DIR/parts.tsv" | grep -qv '^0$'
