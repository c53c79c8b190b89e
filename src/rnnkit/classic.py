"""Classical yardsticks from statsmodels (the optional `classic` extra): ETS and ARIMA.

Each model is fitted on the training part's target only, then run with those parameters over the
whole series (`results.apply`), so the forecast from origin o uses rows 0..o and nothing later:
one-step and h-step forecasts from the true past, as the network's. The h-step forecast from the
state predicted for row o+1 is  y = d + Z T^(h-1) a + Z sum_j T^j c  (a time-invariant state space).

    ETS    additive errors, damped additive trend, additive season when 1 < s <= 24
    ARIMA  (p, d, q) with d from an ADF test on the training part, p and q by AIC over a few orders,
           Hannan-Rissanen estimates
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

MAX_ETS_SEASON = 24       # a longer season makes the state (and the fit) too slow for the CLI
ORDERS = ((1, 1), (2, 1), (2, 2))


def available() -> Optional[str]:
    """None when statsmodels can be used, else the reason."""
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        return "statsmodels is not installed (pip install 'rnnkit[classic]')"
    return None


def h_step(results, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(M,) origins -> (M, H) forecasts of rows o+1 .. o+H from the filtered states."""
    fr = results.filter_results
    Z, T = fr.design[:, :, 0], fr.transition[:, :, 0]
    c, d = fr.state_intercept[:, 0], fr.obs_intercept[0, 0]
    a = fr.predicted_state[:, origins + 1]                  # (k, M): state for row o+1 given 0..o
    out = np.empty((len(origins), horizon))
    for h in range(horizon):
        out[:, h] = d + (Z @ a).ravel()
        a = T @ a + c[:, None]
    return out


def _ets(train: np.ndarray, season: int):
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
    seasonal = season if 1 < season <= MAX_ETS_SEASON and len(train) >= 3 * season else None
    return ExponentialSmoothing(train, trend=True, damped_trend=True, seasonal=seasonal).fit(disp=False, maxiter=100)


def _arima(train: np.ndarray):
    """Hannan-Rissanen estimates (regressions, no iterative likelihood search: fast and stable
    enough for a yardstick); the order with the lowest AIC among those that fit."""
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.stattools import adfuller
    d = 0 if adfuller(train, maxlag=min(12, len(train) // 4), autolag="AIC")[1] < 0.05 else 1
    best = None
    for p, q in ORDERS:
        try:
            r = ARIMA(train, order=(p, d, q), trend="c" if d == 0 else "n").fit(method="hannan_rissanen")
        except (ValueError, np.linalg.LinAlgError):         # a non-invertible estimate: skip the order
            continue
        if np.isfinite(r.aic) and (best is None or r.aic < best.aic):
            best = r
    if best is None:                                        # fall back on the likelihood, one order
        from statsmodels.tsa.statespace.sarimax import SARIMAX
        best = SARIMAX(train, order=(1, d, 1), trend="c" if d == 0 else "n",
                       concentrate_scale=True).fit(disp=False, maxiter=50)
    return best


def classic_forecasts(y: np.ndarray, n_train: int, season: int, origins: np.ndarray,
                      horizon: int) -> dict:
    """name -> (M, H) forecasts, or name -> str (why the model is missing)."""
    why = available()
    if why:
        return {"ets": why, "arima": why}
    if n_train < 20:
        return {"ets": f"needs >= 20 training rows (has {n_train})",
                "arima": f"needs >= 20 training rows (has {n_train})"}
    out: dict = {}
    for name, fit in (("ets", lambda t: _ets(t, season)), ("arima", _arima)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")               # convergence chatter from the optimiser
                res = fit(y[:n_train]).apply(y)
                f = h_step(res, origins, horizon)
            out[name] = f if np.isfinite(f).all() else "the fit gave non-finite forecasts"
        except (ValueError, np.linalg.LinAlgError) as e:
            out[name] = f"the fit failed ({str(e).splitlines()[0][:80]})"
    return out
