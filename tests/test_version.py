"""The version lives in one place, pyproject.toml, and `rnnkit --version` reports it (issue 23)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import rnnkit
from rnnkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_comes_from_pyproject(capsys):
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M).group(1)
    assert rnnkit.__version__ == declared
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnkit {declared}"
