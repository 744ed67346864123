#!/usr/bin/env bash
# Build the wheel folder that the GPU check (scripts/gpu_check.sh) installs on a GPU machine without network.
#
# The target machine has Python 3.12 (x86_64, manylinux) with torch, torchvision, torchdiffeq, opencv,
# scikit-image, scipy, tensorboard, pyyaml, tqdm, requests, matplotlib and setuptools, but not BasicSR
# or the packages BasicSR 1.4.2 requires that are missing there: lmdb (binary), addict, future, yapf
# (and yapf's platformdirs). Everything else `import basicsr` and `import nodesr_arch` need is there.
# Run on a machine with network access, from the repository root:
#
#   bash scripts/gpu_wheels.sh [WHEEL_DIR]        # default WHEEL_DIR: .whl (ignored by git)
#
# then, on the GPU machine (no network), from the folder holding WHEEL_DIR:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#
# The folder holds about 2 MB; one version of each package (two would stop `pip install`).
set -euo pipefail

DEST=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
rm -f "$DEST"/*.whl

# BasicSR 1.4.2 is an sdist on PyPI; built without its CUDA extensions it is pure Python (py3-none-any)
"$PY" -m pip wheel -q --no-deps --wheel-dir "$DEST" basicsr==1.4.2

# binary and pure wheels for CPython 3.12 on manylinux x86_64, whatever this machine is
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" \
    lmdb==3.0.0 addict==2.4.0 future==1.0.0 yapf==0.43.0 platformdirs==4.3.8

# checks: BasicSR built as a pure-Python wheel, one file per package, well under the 64 MiB tree limit
ls "$DEST"/basicsr-1.4.2-py3-none-any.whl > /dev/null
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | sort | uniq -d)
if [ -n "$dups" ]; then
    echo "gpu_wheels: more than one wheel of: $dups" >&2
    exit 1
fi
size_kb=$(du -sk "$DEST" | cut -f1)
if [ "$size_kb" -gt 16384 ]; then
    echo "gpu_wheels: $DEST holds ${size_kb} KB, more than expected (16 MB)" >&2
    exit 1
fi
ls -1 "$DEST"
echo "gpu_wheels: $(ls "$DEST"/*.whl | wc -l) wheels, ${size_kb} KB in $DEST"
