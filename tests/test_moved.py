"""Old flat import paths keep working for one release (issue 23): the same module object under the
old name, so monkeypatching either path patches both, with one DeprecationWarning naming the new path."""
from __future__ import annotations

import subprocess
import sys

import pytest

import rnnkit
from rnnkit import _moved


@pytest.mark.parametrize("old, new", sorted(_moved.MOVED.items()))
def test_old_name_is_the_new_module(old, new):
    import importlib
    assert importlib.import_module(f"rnnkit.{old}") is importlib.import_module(f"rnnkit.{new}")


def test_monkeypatching_an_old_path_patches_the_new_module(monkeypatch):
    from rnnkit.core import train
    from rnnkit.text import lm
    monkeypatch.setattr("rnnkit.lm.StreamBatches", "patched")
    monkeypatch.setattr("rnnkit.train.FAST_STEP", "patched")
    assert lm.StreamBatches == "patched" and train.FAST_STEP == "patched"
    assert rnnkit.lm is lm


def test_old_forecast_module_names_still_import():
    from rnnkit.forecast import fit_forecast, load_forecaster, metrics, naive_forecast, predict_file, run_forecast  # noqa: F401


def test_warns_once_naming_the_new_path():
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import rnnkit.sample\nfrom rnnkit.probe import activations\nimport rnnkit.sample\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    lines = [line for line in err.splitlines() if "DeprecationWarning" in line]
    assert len(lines) == 2, err
    assert "rnnkit.sample moved to rnnkit.text.sample" in lines[0] and lines[0].startswith("<string>:2")
    assert "rnnkit.probe moved to rnnkit.text.probe" in lines[1]
