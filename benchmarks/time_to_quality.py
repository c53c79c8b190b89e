"""Validation loss against wall time for rnnkit's recommended CPU recipe on tinyshakespeare.

    python benchmarks/time_to_quality.py                 # the full 10-minute recipe
    python benchmarks/time_to_quality.py --minutes 1     # a quick look
    python benchmarks/time_to_quality.py --steps 4100    # a fixed number of steps (noise-free quality)

Trains with `rnnkit train` (first 90% train, last 10% validation), then evaluates the whole
validation split as one stream with the state carried, and from cold starts every 100 characters.
Prints the validation curve (loss vs seconds) and the final figures; the reference is the plain
PyTorch LSTM measured at the same budget (1.466 nats, 1.55 from cold starts).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
RECIPE = ["--cell", "lstm", "--layers", "2", "--hidden", "256", "--embed", "64", "--dropout", "0.2",
          "--seq-len", "100", "--batch", "64", "--lr", "2e-3", "--schedule", "cosine", "--clip", "1.0",
          "--batching", "streams", "--eval-every", "250", "--save-every", "500", "--log-every", "100",
          "--seed", "1337"]
REFERENCE = {"loss": 1.466, "cold_loss": 1.55}


def rnnkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnkit", *args], check=True, text=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=None, help="train a fixed number of steps instead")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--threads", default="2", help="CPU threads (the recipe: 2, this machine's cores)")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="rnnkit-ttq-")) / "run"
    limit = ["--max-steps", str(a.steps)] if a.steps else ["--max-time", str(a.minutes * 60)]
    rnnkit("train", a.data, "--out", str(out), *RECIPE, "--threads", a.threads, *limit)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(f"{'seconds':>8} {'chars':>12} {'val loss':>9} {'val bpc':>8}")
    for r in recs:
        if "val_loss" in r:
            print(f"{r['time']:>8.0f} {r['chars']:>12,} {r['val_loss']:>9.4f} {r['val_bpc']:>8.3f}")
    steps = [r for r in recs if "chars_per_s" in r]
    speed = sorted(r["chars_per_s"] for r in steps[1:])[len(steps[1:]) // 2] if len(steps) > 1 else float("nan")
    val = out.parent / "val.txt"
    text = Path(a.data).read_text(encoding="utf-8")
    val.write_text(text[len(text) - int(len(text) * 0.1):], encoding="utf-8")
    res = json.loads(rnnkit("eval", str(out), str(val), "--json", "--cold", "100").stdout.splitlines()[-1])
    print(f"\ntrained {recs[-1].get('time', 0):.0f}s, median {speed:,.0f} chars/s")
    print(f"whole validation split ({res['chars']:,} chars) as one stream: {res['loss']:.4f} nats/char "
          f"({res['bpc']:.3f} bpc); ratio to the plain-LSTM reference {res['loss'] / REFERENCE['loss']:.3f}")
    print(f"from cold starts every 100 chars: {res['cold_loss']:.4f} nats/char; "
          f"ratio to reference {res['cold_loss'] / REFERENCE['cold_loss']:.3f}")
    print(json.dumps({"loss": res["loss"], "cold_loss": res["cold_loss"], "chars_per_s": speed,
                      "target_met": res["loss"] <= 1.47}))


if __name__ == "__main__":
    main()
