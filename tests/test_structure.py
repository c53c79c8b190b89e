"""The README's map of the code stays true: every module is on it, and a module imports only
modules listed above it (data flows one way, issue 12)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "rnnkit"


def map_order() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| module | what it owns |"):].splitlines()[2:]
    order = []
    for line in table:
        if not line.startswith("| `"):
            break
        order += re.findall(r"`(\w+)`", line.split("|")[1])
    return order


def imports(module: str) -> set[str]:
    src = (PKG / f"{module}.py").read_text(encoding="utf-8")
    found = set(re.findall(r"^\s*from \.(\w+) import", src, flags=re.M))
    for names in re.findall(r"^\s*from \. import ([\w, ]+)", src, flags=re.M):
        found |= {n.strip() for n in names.split(",")}
    return found


def test_every_module_is_on_the_map():
    modules = {p.stem for p in PKG.glob("*.py") if not p.stem.startswith("__")}
    order = map_order()
    assert modules == set(order), f"not on the map: {sorted(modules - set(order))}; gone: {sorted(set(order) - modules)}"


def test_imports_point_up_the_map():
    pos = {m: i for i, m in enumerate(map_order())}
    wrong = [f"{m} imports {dep}" for m in pos for dep in imports(m) if dep in pos and pos[dep] > pos[m]]
    assert not wrong, wrong


def test_modules_read_in_one_sitting():
    long = {p.name: n for p in PKG.glob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long
