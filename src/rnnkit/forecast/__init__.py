"""Forecasting numeric series: reading, seasons, inputs, the model, baselines and classical
yardsticks, intervals, fitting, backtests, results, files and the future (docs/architecture.md).

`rnnkit.forecast` was one module until 0.1; the names it held are re-exported here from run.py,
the command's glue.
"""
from .run import *  # noqa: F401,F403
from .run import __all__  # noqa: F401
