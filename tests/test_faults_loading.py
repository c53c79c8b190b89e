"""Promises 1, 4 and 5: loading runs no code; damaged files are named, not crashed on (fuzzed);
incompatible checkpoints are refused with the difference spelled out."""
from __future__ import annotations

import pickle
import random
import re
import struct
from pathlib import Path

import pytest
import torch

from faults_helpers import cli, copy_run, deadline, one_line_error, resign, text_of, trained_run
from rnnkit.core.checkpoint import CheckpointError, find_checkpoint, load_checkpoint, load_model

SRC = Path(__file__).resolve().parents[1] / "src" / "rnnkit"


@pytest.fixture
def run(tmp_path_factory, tmp_path) -> Path:
    return copy_run(trained_run(tmp_path_factory), tmp_path / "run")


# ---- 1. loading runs no code -----------------------------------------------------------------

class Payload:
    """Unpickling this runs code: it writes `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('the payload ran')",))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"model": Payload(marker)})


def evil_pt(marker: Path, path: Path) -> Path:
    torch.save({"state_dict": Payload(marker)}, path)    # torch's zip + pickle format
    return path


def test_the_payloads_are_live(tmp_path):
    """Without this the other tests could pass on a harmless file."""
    a, b = tmp_path / "ran-a", tmp_path / "ran-b"
    pickle.loads(evil_pickle(a))
    torch.load(evil_pt(b, tmp_path / "m.pt"), weights_only=False)
    assert a.read_text() == b.read_text() == "the payload ran"


def plant(tmp_path: Path, where: str, marker: Path) -> Path:
    """A run directory holding only malicious files."""
    d = tmp_path / "evil"
    d.mkdir(exist_ok=True)
    if where == "last-is-pickle":
        (d / "last.safetensors").write_bytes(evil_pickle(marker))
    elif where == "best-is-pt":
        evil_pt(marker, d / "best.safetensors")
        (d / "prev.safetensors").write_bytes(evil_pickle(marker))
    elif where == "model.pt":
        evil_pt(marker, d / "model.pt")
        (d / "weights.pkl").write_bytes(evil_pickle(marker))
    elif where == "forecast":
        (d / "forecast.safetensors").write_bytes(evil_pickle(marker))
    return d


CASES = [  # (planted, command, words in the one-line error)
    ("last-is-pickle", ["sample", "{d}"], "last.safetensors: damaged or not an rnnkit checkpoint"),
    ("last-is-pickle", ["eval", "{d}", "{text}"], "last.safetensors: damaged or not an rnnkit checkpoint"),
    ("last-is-pickle", ["train", "--resume", "{d}"], "last.safetensors: damaged or not an rnnkit checkpoint"),
    ("last-is-pickle", ["sample", "{d}/last.safetensors"], "damaged or not an rnnkit checkpoint"),
    ("best-is-pt", ["sample", "{d}"], "best.safetensors: damaged or not an rnnkit checkpoint"),
    ("best-is-pt", ["eval", "{d}/best.safetensors", "{text}"], "damaged or not an rnnkit checkpoint"),
    ("best-is-pt", ["train", "--resume", "{d}"], "prev.safetensors: damaged"),
    ("model.pt", ["sample", "{d}"], "found model.pt, weights.pkl: pickle files are never loaded"),
    ("model.pt", ["train", "--resume", "{d}"], "found model.pt, weights.pkl: pickle files are never loaded"),
    ("model.pt", ["sample", "{d}/model.pt"], "model.pt: pickle-based files are never loaded"),
    ("model.pt", ["eval", "{d}/weights.pkl", "{text}"], "weights.pkl: pickle-based files are never loaded"),
    ("forecast", ["forecast", "--predict", "{d}", "{csv}"], "forecast.safetensors: damaged or not an rnnkit checkpoint"),
    ("model.pt", ["forecast", "--predict", "{d}/model.pt", "{csv}"], "model.pt: pickle-based files are never loaded"),
]


@pytest.mark.parametrize("planted, argv, words", CASES)
def test_malicious_files_are_refused_and_never_run(capsys, tmp_path, run, planted, argv, words):
    marker = tmp_path / "pwned"
    d = plant(tmp_path, planted, marker)
    csv = tmp_path / "rows.csv"
    csv.write_text("Open,Close\n" + "".join(f"{i},{i + 1}\n" for i in range(20)))
    args = [a.format(d=d, text=text_of(run), csv=csv) for a in argv]
    rc, out, err = cli(capsys, *args)
    line = one_line_error(rc, err, codes=(2,))
    assert words in line
    assert not marker.exists(), "a payload ran"


def test_a_planted_pickle_beside_good_checkpoints_is_never_touched(capsys, tmp_path, run):
    marker = tmp_path / "pwned"
    (run / "last.safetensors").write_bytes(evil_pickle(marker))     # `last` replaced by a pickle
    evil_pt(marker, run / "model.pt")
    rc, out, err = cli(capsys, "train", "--resume", run, "--max-steps", "8")
    assert rc == 0, err
    assert "last.safetensors: damaged or not an rnnkit checkpoint" in err
    assert "using prev.safetensors instead" in err and "Traceback" not in err
    assert load_checkpoint(run / "last.safetensors")[1]["state"]["step"] == 8
    assert not marker.exists()


def test_no_unpickling_code_in_the_package():
    """Nothing in rnnkit can unpickle: no torch.load, no pickle, no allow_pickle, no weights_only."""
    found = []
    for f in sorted(SRC.glob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"torch\.load\b|\bpickle\.\w|import pickle|allow_pickle\s*=\s*True|weights_only|"
                         r"\bdill\b|joblib|marshal\.load", code):
                found.append(f"{f.name}:{n}: {line.strip()}")
    assert not found, found


# ---- 4. damaged files are named, not crashed on ---------------------------------------------

def damaged_variants(good: bytes, seed: int = 0) -> list[tuple[str, bytes]]:
    """Truncations (every byte of the first 64, then every 41st through the JSON header, random ones in
    the tensors) and single bit flips (every byte of the length field, every 31st of the header,
    random ones in the tensors), plus a few wholesale damages."""
    rng = random.Random(seed)
    header_end = 8 + struct.unpack("<Q", good[:8])[0]
    out = []
    cuts = set(range(0, 64)) | set(range(64, header_end + 64, 41)) | {len(good) - 1, len(good) - 8}
    cuts |= {rng.randrange(header_end, len(good)) for _ in range(120)}
    out += [(f"cut at {c}", good[:c]) for c in sorted(cuts)]
    flips = list(range(8)) + list(range(8, header_end, 31)) + [rng.randrange(header_end, len(good)) for _ in range(250)]
    for pos in flips:
        b = bytearray(good)
        b[pos] ^= 1 << rng.randrange(8)
        out.append((f"bit flip at {pos}", bytes(b)))
    out += [("appended bytes", good + b"\0" * 16), ("zeroed tensors", good[:header_end] + bytes(len(good) - header_end)),
            ("header length huge", struct.pack("<Q", 2**63) + good[8:]), ("empty", b"")]
    return out


def test_fuzzed_checkpoints_raise_checkpoint_error_or_load_unchanged(tmp_path, run):
    good_path = run / "last.safetensors"
    good = good_path.read_bytes()
    ref_tensors, ref_meta = load_checkpoint(good_path)
    variants = damaged_variants(good)
    path = tmp_path / "fuzzed.safetensors"
    refused = same = 0
    with deadline(120, "loading fuzzed checkpoints"):
        for what, data in variants:
            path.write_bytes(data)
            try:
                tensors, meta = load_checkpoint(path)
            except CheckpointError as e:
                msg = str(e)
                assert msg.startswith(str(path)) and "\n" not in msg, (what, msg)
                refused += 1
                continue
            # a flip in JSON whitespace may leave the content intact; anything else must be refused
            assert meta == ref_meta and tensors.keys() == ref_tensors.keys(), what
            assert all(torch.equal(tensors[k], ref_tensors[k]) for k in tensors), what
            same += 1
    assert refused + same == len(variants) and len(variants) > 600
    assert refused >= 0.9 * len(variants), (refused, same)
    print(f"fuzz: {len(variants)} damaged checkpoints, {refused} refused, {same} loaded with identical content")


@pytest.mark.parametrize("k", range(8))
def test_damaged_checkpoint_on_the_command_line_is_one_line_naming_the_file(capsys, tmp_path, run, k):
    good = (run / "last.safetensors").read_bytes()
    what, data = damaged_variants(good, seed=k)[[5, 40, 90, 200, 260, 420, 600, -1][k]]
    bad = tmp_path / f"damaged {k}.safetensors"          # a space in the name, too
    bad.write_bytes(data)
    argv = [["sample", bad], ["eval", bad, text_of(run)]][k % 2]
    with deadline(60, what):
        rc, out, err = cli(capsys, *argv)
    line = one_line_error(rc, err, codes=(2,))
    assert str(bad) in line, (what, line)
    assert out == ""


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_resume_falls_back_to_prev_and_says_so(capsys, run):
    prev_step = load_checkpoint(run / "prev.safetensors")[1]["state"]["step"]
    truncate(run / "last.safetensors")
    rc, out, err = cli(capsys, "train", "--resume", run, "--max-steps", "9")
    assert rc == 0, err
    assert re.search(r"warning: .*last\.safetensors: damaged .*; using prev\.safetensors instead", err), err
    assert f"resuming {run} at step {prev_step}" in out
    assert (run / "last.safetensors.damaged").exists()          # kept for inspection, never rotated into prev
    assert load_checkpoint(run / "last.safetensors")[1]["state"]["step"] == 9
    load_checkpoint(run / "prev.safetensors")                     # both good again


def test_sample_falls_back_from_a_damaged_best(capsys, run):
    b = bytearray((run / "best.safetensors").read_bytes())
    b[-5] ^= 0x10
    (run / "best.safetensors").write_bytes(bytes(b))
    rc, out, err = cli(capsys, "sample", run, "--length", "20", "--seed", "1")
    assert rc == 0 and len(out) >= 20, err
    assert "best.safetensors: damaged or not an rnnkit checkpoint (checksum mismatch" in err
    assert "using last.safetensors instead" in err


def test_all_checkpoints_damaged(capsys, run):
    for name in ("best", "last", "prev"):
        truncate(run / f"{name}.safetensors", 0.3)
    line = one_line_error(*cli(capsys, "train", "--resume", run)[::2], codes=(2,))
    assert "last.safetensors: damaged" in line
    with pytest.raises(CheckpointError, match="best.safetensors: damaged"):
        load_model(run)


# ---- 5. incompatible checkpoints: the difference spelled out ---------------------------------

def set_model(**kw):
    return lambda m: m["model"].update(kw)


def drop_vocab_symbol(m):
    m["vocab"]["symbols"] = m["vocab"]["symbols"][:-1]


def grow_moment(t):
    k = next(k for k in t if k.startswith("optim.") and k.endswith("exp_avg"))
    t[k] = torch.zeros(t[k].shape[0] + 1, *t[k].shape[1:])


def narrow_carried(t):
    t["carried.h"] = t["carried.h"][:, :2]


INCOMPATIBLE = [  # (id, meta edit, tensor edit, command, words)
    ("vocabulary", drop_vocab_symbol, None, "sample", "vocabulary has {V1} symbols but the model expects {V}"),
    ("cell", set_model(cell="gru"), None, "sample", "weights do not match the model config (gru, 1 layers, hidden 8): "
                                                    "rnn.bias_hh_l0 has shape (32,), the config needs (24,)"),
    ("hidden", set_model(hidden=16), None, "sample", "(lstm, 1 layers, hidden 16): head.weight has shape ({V}, 8), "
                                                     "the config needs ({V}, 16)"),
    ("layers", set_model(layers=2), None, "eval", "rnn.bias_hh_l1 missing"),
    ("one-hot", set_model(embed=0), None, "sample", "embedding.weight unexpected; rnn.weight_ih_l0 has shape (32, 4), the config needs (32, {V})"),
    ("unknown model key", set_model(heads=4), None, "sample", "model config has unknown key(s) heads"),
    ("bad model value", set_model(hidden="eight"), None, "sample", "--hidden must be of type int (got 'eight')"),
    ("newer schema", lambda m: m.update(schema=2), None, "sample", "written by a newer rnnkit (schema 2, this one reads <= 1)"),
    ("schema not a number", lambda m: m.update(schema="1"), None, "eval", "no valid schema version ('1')"),
    ("no schema", lambda m: m.update(schema=None), None, "resume", "no valid schema version (None)"),
    ("kind", lambda m: m.update(kind="forecast"), None, "sample", "holds a 'forecast' model, not a character language model"),
    ("charlm as forecaster", None, None, "predict", "holds a 'charlm' model, not a forecaster"),
    ("no training state", lambda m: m.pop("state"), None, "resume", "not a resumable rnnkit training checkpoint"),
    ("optimizer moments", None, grow_moment, "resume", "training state does not fit the model: optimizer exp_avg"),
    ("carried state", None, narrow_carried, "resume", "carried state has shape (1, 2, 8), the model needs (1, 4, 8)"),
    ("broken optimizer groups", lambda m: m["state"].update(optim_groups="x"), None, "resume",
     "training state does not fit the model"),
    ("missing weight", None, lambda t: t.pop("model.head.bias"), "resume", "head.bias missing"),
]


@pytest.mark.parametrize("name, meta_edit, tensor_edit, command, words", INCOMPATIBLE, ids=[c[0] for c in INCOMPATIBLE])
def test_incompatible_checkpoint_refused_with_the_difference(capsys, tmp_path, run, name, meta_edit, tensor_edit, command, words):
    for other in ("best", "prev"):
        (run / f"{other}.safetensors").unlink()
    V = len(load_checkpoint(run / "last.safetensors")[1]["vocab"]["symbols"])
    path = resign(run / "last.safetensors", run / "last.safetensors", meta_edit, tensor_edit)
    before = path.read_bytes()
    csv = tmp_path / "rows.csv"
    csv.write_text("Open,Close\n" + "".join(f"{i},{i + 1}\n" for i in range(20)))
    argv = {"sample": ["sample", run], "eval": ["eval", run, text_of(run)],
            "resume": ["train", "--resume", run, "--max-steps", "9"],
            "predict": ["forecast", "--predict", path, csv]}[command]
    words = words.format(V=V, V1=V - 1)
    line = one_line_error(*cli(capsys, *argv)[::2], codes=(2,))
    assert str(path) in line and words in line, line
    assert path.read_bytes() == before                      # refused, not rewritten
    if command in ("sample", "eval"):
        with pytest.raises(CheckpointError):
            load_model(run)


def test_text_outside_the_vocabulary_is_refused_by_eval(capsys, tmp_path, run):
    other = tmp_path / "other.txt"
    other.write_text("the quick fox ÄÖÜ and Zebras\n")
    line = one_line_error(*cli(capsys, "eval", run, other)[::2], codes=(2,))
    assert "character(s) the checkpoint's vocabulary lacks" in line and "'Ä'" in line and "'Z'" in line


def test_find_checkpoint_reports_each_damaged_candidate(run):
    truncate(run / "best.safetensors")
    warnings = []
    path, _, meta = find_checkpoint(run, warn=warnings.append)
    assert path.name == "last.safetensors" and len(warnings) == 1 and "best.safetensors" in warnings[0]
