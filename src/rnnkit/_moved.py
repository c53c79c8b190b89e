"""Old flat import paths (`rnnkit.sample`, `rnnkit.lm`, ...) keep working for one release.

Until 0.1 every module sat flat in `rnnkit/`; now they live in `rnnkit/core/`, `rnnkit/text/` and
`rnnkit/forecast/` (docs/architecture.md). This finder maps each old dotted name to its new module,
the same module object (so monkeypatching either name patches both), and warns once per name with a
DeprecationWarning that names the new path. `rnnkit.forecast` itself is now the forecast package,
which re-exports what the old module held.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old name under rnnkit. -> new name under rnnkit.
MOVED = {
    "fields": "core.fields", "config": "core.config", "fileio": "core.fileio", "vocab": "core.vocab",
    "windows": "core.windows", "checkpoint": "core.checkpoint", "models": "core.models",
    "regularize": "core.regularize", "presets": "core.presets", "precision": "core.precision",
    "distributed": "core.distributed", "train": "core.train", "resume": "core.resume",
    "runlog": "core.runlog", "watch": "core.watch", "plots": "core.plots",
    "rundir": "text.rundata", "corpus": "text.corpus", "lm": "text.lm", "evaluate": "text.evaluate",
    "dynamic": "text.dynamic", "step": "text.step", "decode": "text.decode", "graphs": "text.graphs",
    "sample": "text.sample", "score": "text.score", "serve_input": "text.serve_input", "serve": "text.serve",
    "export": "text.export", "probe": "text.probe", "report": "text.report",
    "fill": "forecast.fill", "series": "forecast.series", "demo_series": "forecast.demo_series",
    "seasons": "forecast.seasons", "forecast_inputs": "forecast.inputs", "forecast_model": "forecast.model",
    "baselines": "forecast.baselines", "classic": "forecast.classic", "intervals": "forecast.intervals",
    "forecast_fit": "forecast.fit", "backtest": "forecast.backtest", "forecast_report": "forecast.report",
    "forecast_io": "forecast.files", "forecast_future": "forecast.future",
}
_warned: set[str] = set()


def new_name(old: str) -> str:
    """The new module of an old flat name (`rnnkit.lm` -> `rnnkit.text.lm`), warning once."""
    new = "rnnkit." + MOVED[old.removeprefix("rnnkit.")]
    if old not in _warned:
        _warned.add(old)
        warnings.warn(f"{old} moved to {new}; the old path goes in the next release", DeprecationWarning,
                      stacklevel=_importer_level())
    return new


def _importer_level() -> int:
    """The stacklevel of the code that asked for the old name, so that the warning is attributed to
    (and shown for) the importing module. warnings.warn skips the import system's frozen frames
    itself; importlib.import_module and rnnkit's own __getattr__ are counted and stepped over here."""
    f, level = sys._getframe(3), 3      # 1: new_name, 2: exec_module
    while f is not None:
        if not ("importlib" in f.f_code.co_filename and "_bootstrap" in f.f_code.co_filename):
            if f.f_globals.get("__name__") not in ("importlib", "rnnkit", __name__):
                return level
            level += 1
        f = f.f_back
    return level


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return None                     # a throwaway module; exec_module puts the real one in its place

    def exec_module(self, module) -> None:
        # the import system returns whatever sys.modules holds under the old name after this call
        sys.modules[module.__name__] = importlib.import_module(new_name(module.__name__))


class MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("rnnkit.") and fullname.removeprefix("rnnkit.") in MOVED:
            return importlib.util.spec_from_loader(fullname, _Loader())
        return None


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
