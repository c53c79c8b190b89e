#!/usr/bin/env bash
# The one prepared GPU run (issue 24): the GPU's own tests, training and sampling speed against the
# plain loop at 2x512 batch 64 and 2x1024 batch 128, and torchrun + nccl + DDP. Under 9 minutes on
# one GPU, from a fresh copy of the tree, with nothing installed but the machine's own PyTorch
# (numpy, safetensors, matplotlib and pytest beside it).
#
#     bash benchmarks/gpu_suite.sh                  # CUDA; logs and a table under $OUT (or a temp dir)
#     DEVICE=cpu bash benchmarks/gpu_suite.sh       # a short smoke run on a CPU: tiny sizes, no pytest
#     STEPS=150 SAMPLE=300 bash benchmarks/gpu_suite.sh    # shorter timings
#
# Data: RNNKIT_BENCH_DATA, else ../shared/data/tinyshakespeare.txt. Each part runs under its own
# time limit and a failing part does not stop the others; the table at the end says which failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Without PYTHON, a python3 that lacks torch falls back to the project's venv (make setup) if there is one.
if [ -z "${PYTHON:-}" ] && ! "$PY" -c "import torch" 2>/dev/null && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
DEVICE=${DEVICE:-cuda}
RES=${OUT:-$(mktemp -d -t rnnkit-gpu-suite-XXXX)}
mkdir -p "$RES"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SUMMARY="$RES/gpu_suite.md"
: > "$SUMMARY"

part() {   # part NAME LIMIT_S COMMAND...: run, log to $RES/NAME.log, note the outcome
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$RES/$name.log" 2>&1
    local rc=$?
    echo "| $name | $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)") | $((SECONDS - t0)) s |" >> "$SUMMARY.parts"
    return 0
}

: > "$SUMMARY.parts"
if [ "$DEVICE" = cpu ]; then
    part check_small 300 "$PY" benchmarks/gpu_check.py --device cpu --steps 5 --warmup 2 --hidden 32 --sample-length 30
    part ddp 300 env PYTHON="$PY" DEVICE=cpu STEPS=10 EXTRA="--hidden 32" OUT="$RES/ddp" bash benchmarks/gpu_ddp_check.sh
else
    "$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" > "$RES/device.log" 2>&1
    part check_512 180 "$PY" benchmarks/gpu_check.py --hidden 512 --batch 64 --steps "${STEPS:-300}" --sample-length "${SAMPLE:-500}"
    part check_1024 180 "$PY" benchmarks/gpu_check.py --hidden 1024 --batch 128 --steps "${STEPS:-300}" --sample-length "${SAMPLE:-500}"
    part pytest_gpu 240 env RNNKIT_TEST_GPU=1 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests
    part ddp 180 env PYTHON="$PY" OUT="$RES/ddp" STEPS="${STEPS:-300}" bash benchmarks/gpu_ddp_check.sh
fi

{
    echo "# gpu_suite ($DEVICE): $(cat "$RES/device.log" 2>/dev/null || echo CPU)"
    echo
    echo "| part | outcome | time |"
    echo "|---|---|---|"
    cat "$SUMMARY.parts"
    for f in "$RES"/check_*.log; do
        [ -f "$f" ] || continue
        echo
        grep -E "^(NVIDIA|CPU|[A-Z].*hidden)" "$f" | head -n 1
        grep -E "^\|" "$f"
    done
    [ -f "$RES/pytest_gpu.log" ] && { echo; echo "pytest -m gpu: $(tail -n 1 "$RES/pytest_gpu.log")"; }
    [ -f "$RES/ddp.log" ] && { echo; grep -E "^median" "$RES/ddp.log"; }
} > "$SUMMARY"
rm -f "$SUMMARY.parts"
cat "$SUMMARY"
