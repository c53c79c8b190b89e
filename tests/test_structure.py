"""docs/architecture.md's map of the code stays true (issues 12 and 23): every module is on it, a
module imports only modules listed above it, the wings (text, forecast) never import each other and
the core imports no wing, and every module and function reads in one sitting."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "rnnkit"
WINGS = ("text", "forecast")
MAX_LINES, MAX_FUNCTION = 350, 60


def map_order() -> list[str]:
    """Dotted module names (`core.config`, `text.lm`, `cli`) in the order of the map's tables."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    order = []
    for table in doc.split("| module | what it owns |")[1:]:
        for line in table.splitlines()[2:]:
            if not line.startswith("| `"):
                break
            order += re.findall(r"`([\w.]+)`", line.split("|")[1])
    return order


def modules() -> dict[str, Path]:
    found = {}
    for p in PKG.rglob("*.py"):
        if p.stem.startswith("__"):
            continue
        found[".".join(p.relative_to(PKG).with_suffix("").parts)] = p
    return found


def imports(module: str, path: Path) -> set[str]:
    """The rnnkit modules `module` imports (relative imports, at any depth, lazy ones included)."""
    package = module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        name = ".".join(base)
        if name in modules():
            found.add(name)
        else:                                   # from .pkg import module, ...
            found |= {f"{name}.{a.name}".lstrip(".") for a in node.names if f"{name}.{a.name}".lstrip(".") in modules()}
    return found


def wing(module: str) -> str:
    head = module.split(".")[0]
    return head if head in WINGS + ("core",) else "top"


def test_every_module_is_on_the_map():
    have, order = set(modules()), map_order()
    assert len(order) == len(set(order)), "a module is on the map twice"
    assert have == set(order), f"not on the map: {sorted(have - set(order))}; gone: {sorted(set(order) - have)}"


def test_imports_point_up_the_map():
    pos = {m: i for i, m in enumerate(map_order())}
    wrong = [f"{m} imports {dep}" for m, p in modules().items() for dep in imports(m, p) if pos[dep] > pos[m]]
    assert not wrong, wrong


def test_wings_import_the_core_never_each_other():
    wrong = [f"{m} imports {dep}" for m, p in modules().items() for dep in imports(m, p)
             if (wing(m) == "core" and wing(dep) != "core")
             or (wing(m) in WINGS and wing(dep) in WINGS and wing(dep) != wing(m))]
    assert not wrong, wrong


def test_modules_read_in_one_sitting():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_functions_read_in_one_sitting():
    long = {}
    for m, p in modules().items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION:
                    long[f"{m}.{node.name}"] = n
    assert not long, long
