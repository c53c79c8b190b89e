"""Several `rnnkit train` runs at once on one GPU, each scored on the training text's own tail.

    python benchmarks/gpu_sweep.py --data tinyshakespeare.txt --limit "--max-time 150" --out sweep \
        --run "defaults=" --run "wide=--hidden 1024 --lr 1e-3" ...
    python benchmarks/gpu_sweep.py --grid stall --limit "--max-steps 300" --no-score --out stall

One small LSTM leaves a GPU nearly idle, so K candidates train side by side as K processes (each
on its own CPU core). Every run sees only the first 90% of the text (`tail.txt`): rnnkit trains on
its first 90% (81% of the text) and the tail, the next 9%, is scored as one stream with the state
carried, from the `last` checkpoint (`--score`; by default the run's own last evaluation of the
whole tail, `--eval-chars 0`, 16 streams, costs nothing more). The validation split one reports later (the last 10%) is
never seen, so a recipe picked here is picked honestly. Runs that share the GPU get a share of it:
a run limited by --max-time makes fewer steps than it would alone (the steps are reported).
Prints one row per run (steps, training loss at a few steps, tail loss) and writes sweep.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# named grids: name -> {run name: rnnkit train options}
GRIDS = {
    # which regulariser holds a wide model at the unigram plateau (issue: 3x1024, batch 256, lr 2e-3)
    "stall": {
        "on-2e-3": "--lr 2e-3",
        "no-wdecay": "--lr 2e-3 --weight-decay 0",
        "no-wdrop": "--lr 2e-3 --weight-drop 0",
        "no-locked": "--lr 2e-3 --locked-dropout 0",
        "off-2e-3": "--lr 2e-3 --weight-drop 0 --locked-dropout 0 --weight-decay 0",
        "on-5e-3": "--lr 5e-3",
        "on-1e-3": "--lr 1e-3",
        "on-5e-4": "--lr 5e-4",
    },
}
STALL_MODEL = "--layers 3 --hidden 1024 --batch 256 --decay-steps 3000 --eval-every 1000 --save-every 1000"


def tail_files(data: Path, out: Path) -> tuple[Path, Path]:
    """tail.txt: the first 90% of the text (what the runs see); tail_val.txt: its last 10%."""
    text = data.read_text(encoding="utf-8")
    seen = text[: len(text) - int(len(text) * 0.1)]
    tail = seen[len(seen) - int(len(seen) * 0.1):]
    (out / "tail.txt").write_text(seen, encoding="utf-8")
    (out / "tail_val.txt").write_text(tail, encoding="utf-8")
    return out / "tail.txt", out / "tail_val.txt"


def losses_at(run: Path, steps=(100, 200, 300, 500)) -> dict:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in recs if "loss" in r]
    out = {}
    for s in steps:
        near = [r["loss"] for r in train if s - 20 < r["step"] <= s]
        if near:
            out[f"loss@{s}"] = sum(near) / len(near)
    last = max((r["step"] for r in recs if "step" in r), default=0)
    warn = [r["not_learning"] for r in recs if "not_learning" in r]
    vals = [r["val_loss"] for r in recs if r.get("val_loss") is not None]
    return {"steps": last, **out, "final_loss": train[-1]["loss"] if train else None,
            "tail_16": vals[-1] if vals else None, "not_learning": warn}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--run", action="append", default=[], help="NAME=OPTIONS (repeat)")
    ap.add_argument("--grid", choices=sorted(GRIDS), help="a named grid instead of --run")
    ap.add_argument("--limit", default="--max-time 150", help="the limit every run gets")
    ap.add_argument("--common", default="", help="options every run gets")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--score", action="store_true", help="also score the tail as one stream (rnnkit eval)")
    ap.add_argument("--no-score", action="store_true", help="(kept for old scripts; scoring is off by default)")
    ap.add_argument("--dynamic", action="store_true", help="also score the tail with --dynamic")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = dict(GRIDS[a.grid]) if a.grid else {}
    common = a.common or (STALL_MODEL if a.grid == "stall" else "")
    for spec in a.run:
        name, _, opts = spec.partition("=")
        runs[name.strip()] = opts
    tail, tail_val = tail_files(Path(a.data), out)
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    rnnkit = [sys.executable, "-m", "rnnkit"]
    procs, t0 = {}, time.time()
    for name, opts in runs.items():
        cmd = rnnkit + ["train", str(tail), "--out", str(out / name), "--device", a.device, "--threads", "1",
                        "--sample-chars", "0", "--eval-chars", "0", *shlex.split(a.limit), *shlex.split(common),
                        *shlex.split(opts)]
        procs[name] = subprocess.Popen(cmd, stdout=open(out / f"{name}.log", "w"), stderr=subprocess.STDOUT, env=env)
    rows = {}
    for name, p in procs.items():
        rc = p.wait()
        rows[name] = {"options": runs[name], "rc": rc, "wall_s": round(time.time() - t0, 1)}
        if rc == 0:
            rows[name] |= losses_at(out / name)
    print(f"{len(runs)} runs side by side, {time.time() - t0:.0f} s", flush=True)
    # written now and after each score: a call cut off by its time limit keeps what was trained
    (out / "sweep.json").write_text(json.dumps(rows, indent=2))
    if a.score:
        for name, row in rows.items():
            if row["rc"]:
                continue
            for kind, extra in (("tail", []), ("tail_dynamic", ["--dynamic"]))[: 2 if a.dynamic else 1]:
                done = subprocess.run(rnnkit + ["eval", str(out / name), str(tail_val), "--json", "--device",
                                                a.device, *extra], capture_output=True, text=True, env=env)
                if done.returncode == 0:
                    row[kind] = json.loads(done.stdout.splitlines()[-1])["loss"]
                (out / "sweep.json").write_text(json.dumps(rows, indent=2))
    keys = ["steps", "loss@100", "loss@200", "loss@300", "loss@500", "final_loss", "tail_16", "tail", "tail_dynamic"]
    print("| run | " + " | ".join(keys) + " | options |")
    print("|---" * (len(keys) + 2) + "|")
    rank = lambda kv: kv[1].get("tail") or kv[1].get("tail_16") or kv[1].get("final_loss") or 9   # noqa: E731
    for name, row in sorted(rows.items(), key=rank):
        cells = [f"{row[k]:.4f}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        print(f"| {name} | " + " | ".join(cells) + f" | {row['options']}" + (f" (rc {row['rc']})" if row["rc"] else "") + " |")


if __name__ == "__main__":
    main()
