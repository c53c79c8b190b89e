#!/usr/bin/env bash
# One CUDA GPU through rnnkit's distributed path: torchrun, nccl, DDP (world size 1), against the
# plain single-process run on the same GPU. Trains STEPS steps of the CPU recipe's model (LSTM
# 2 x 256, embed 64, seq 100, batch 64, bf16 autocast), resumes the torchrun run for 50 more, and
# prints each run's median chars/s and their ratio (the cost of the process group and DDP).
#
#     bash benchmarks/gpu_ddp_check.sh                 # 300 steps
#     STEPS=500 PYTHON=/path/to/python bash benchmarks/gpu_ddp_check.sh
#     DEVICE=cpu STEPS=30 EXTRA="--hidden 32" bash benchmarks/gpu_ddp_check.sh   # dry run on CPU (gloo)
#
# Needs a Python with a CUDA build of torch, numpy, safetensors and matplotlib. Data: $RNNKIT_BENCH_DATA, the shared
# tinyshakespeare.txt when present, else the built-in python-stdlib corpus (no download). Results
# go to $OUT (or a temporary directory): the two run directories and gpu_ddp_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STEPS=${STEPS:-300}
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then BACKEND=gloo; else BACKEND=nccl; fi
RES=${OUT:-$(mktemp -d -t rnnkit-gpu-XXXX)}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

[ "$DEVICE" = cpu ] || "$PY" - <<'PYEOF'
import sys, torch
for mod in ("numpy", "safetensors", "matplotlib"):
    __import__(mod)
if not torch.cuda.is_available():
    sys.exit(f"gpu_ddp_check: torch {torch.__version__} sees no CUDA GPU")
if not torch.distributed.is_nccl_available():
    sys.exit("gpu_ddp_check: this torch build has no nccl")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, nccl {'.'.join(map(str, torch.cuda.nccl.version()))}, "
      f"{torch.cuda.get_device_name(0)}")
PYEOF

if [ -n "${RNNKIT_BENCH_DATA:-}" ]; then DATA=("$RNNKIT_BENCH_DATA")      # the text the other GPU checks read
elif [ -f ../shared/data/tinyshakespeare.txt ]; then DATA=(../shared/data/tinyshakespeare.txt); else DATA=(--corpus python-stdlib); fi
RECIPE=(--preset cpu --cell lstm --layers 2 --hidden 256 --embed 64 --dropout 0.2 --seq-len 100 --batch 64
        --batching streams --lr 2e-3 --eval-every 100000 --save-every 100 --eval-chars 100000
        --sample-chars 200 --log-every 25 --device "$DEVICE" --seed 1337 ${EXTRA:-})

echo "== plain process, ${STEPS} steps"
"$PY" -m rnnkit train "${DATA[@]}" --out "$RES/plain" "${RECIPE[@]}" --max-steps "$STEPS"
echo "== torchrun --nproc-per-node 1 ($BACKEND + DDP), ${STEPS} steps"
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m rnnkit train "${DATA[@]}" \
    --out "$RES/ddp" "${RECIPE[@]}" --max-steps "$STEPS" | tee "$RES/ddp.log"
grep -q "1 process ($BACKEND)" "$RES/ddp.log" || { echo "gpu_ddp_check: the torchrun run did not use $BACKEND"; exit 1; }
echo "== torchrun resume to $((STEPS + 50))"
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m rnnkit train --resume "$RES/ddp" \
    --max-steps "$((STEPS + 50))"

"$PY" - "$RES" "$STEPS" <<'PYEOF'
import json, statistics, sys
from pathlib import Path
res, steps = Path(sys.argv[1]), int(sys.argv[2])
def speed(run):
    recs = [json.loads(l) for l in (res / run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["chars_per_s"] for r in recs if "chars_per_s" in r and r["step"] <= steps]
    return statistics.median(rates[1:] or rates), recs  # [1:]: the first window holds the warm-up
plain, plain_recs = speed("plain")
ddp, ddp_recs = speed("ddp")
last = max(r["step"] for r in ddp_recs)  # the final evaluation's record
assert last == steps + 50, f"the resumed run stopped at step {last}"
out = {"plain_chars_per_s": plain, "ddp_world1_chars_per_s": ddp, "ratio": ddp / plain,
       "plain_val_loss": [r["val_loss"] for r in plain_recs if "val_loss" in r][-1],
       "ddp_val_loss": [r["val_loss"] for r in ddp_recs if "val_loss" in r and r["step"] == steps][-1],
       "resumed_to": last}
print(f"median chars/s: plain {plain:,.0f}, torchrun+DDP (world 1) {ddp:,.0f} (ratio {ddp / plain:.2f}); "
      f"val loss at step {steps}: {out['plain_val_loss']:.4f} vs {out['ddp_val_loss']:.4f}; resumed to {last}")
(res / "gpu_ddp_check.json").write_text(json.dumps(out, indent=2))
print(json.dumps(out))
PYEOF
