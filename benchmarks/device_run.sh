#!/usr/bin/env bash
# The one command for the GPU machine (no network there, no uv): run from the repository root.
#
#   bash benchmarks/device_run.sh
#
# Installs the carried wheels from .whl/ into /tmp/site (core deps the machine lacks, and
# webdataset with its deps), prints the machine, runs benchmarks.gpu_feed (B7 into device
# memory) under a timeout, then, if time is left, the optional command in $DEVICE_EXTRA (bounded
# by $DEVICE_EXTRA_TIMEOUT). Results: $OUT/gpu_feed.json (+ .log: every child's output); $OUT
# is ./device_out when not set.
#
# Environment: GPU_FEED_ARGS (extra arguments for gpu_feed, e.g. "--budget 200"),
# GPU_FEED_TIMEOUT (seconds, default 330), DEVICE_LIMIT (the call's whole budget, default 560),
# DEVICE_EXTRA, DEVICE_EXTRA_TIMEOUT (default 150), PYTHON (default python3).
set -u
START=$(date +%s)
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
LIMIT=${DEVICE_LIMIT:-560}
FEED_TIMEOUT=${GPU_FEED_TIMEOUT:-330}
EXTRA_TIMEOUT=${DEVICE_EXTRA_TIMEOUT:-150}
SITE=${DEVICE_SITE:-/tmp/site}

echo "== wheels"
if compgen -G ".whl/*.whl" >/dev/null; then
    ls .whl/
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl; then
        echo "pip failed: unpacking the wheels instead"
        mkdir -p "$SITE"
        for w in .whl/*.whl; do "$PY" -m zipfile -e "$w" "$SITE"; done
    fi
else
    echo "no .whl/ here: using what is installed"
fi
export PYTHONPATH="$SITE:$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

echo "== machine"
nvidia-smi 2>&1 | head -20 || echo "no nvidia-smi"
echo "cpus: $(nproc) ($("$PY" -c 'import os; print(os.cpu_count())'))"
free -g 2>/dev/null | head -2
df -h /tmp /dev/shm 2>/dev/null
"$PY" - <<'EOF'
import sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
import atdata, atdata.torch.feed  # noqa: E401  (core deps and the torch path import)
try:
    import webdataset
    print("atdata", atdata.__file__, "webdataset", webdataset.__version__)
except ImportError as exc:
    print("atdata", atdata.__file__, "NO webdataset:", exc)
EOF

echo "== gpu_feed (timeout ${FEED_TIMEOUT}s)"
# shellcheck disable=SC2086  # GPU_FEED_ARGS is a list of arguments
timeout -k 10 "$FEED_TIMEOUT" "$PY" -u -m benchmarks.gpu_feed --out "$OUT/gpu_feed.json" \
    ${GPU_FEED_ARGS:-}
echo "gpu_feed exit $?"

if [ -n "${DEVICE_EXTRA:-}" ]; then
    LEFT=$((LIMIT - ($(date +%s) - START) - 10))
    T=$((EXTRA_TIMEOUT < LEFT ? EXTRA_TIMEOUT : LEFT))
    if [ "$T" -gt 20 ]; then
        echo "== extra (timeout ${T}s): $DEVICE_EXTRA"
        timeout -k 10 "$T" bash -c "$DEVICE_EXTRA"
        echo "extra exit $?"
    else
        echo "== extra skipped: only ${LEFT}s left"
    fi
fi
echo "== done in $(($(date +%s) - START)) s"
