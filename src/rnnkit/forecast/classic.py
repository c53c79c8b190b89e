"""Classical yardsticks from statsmodels (the optional `classic` extra): ETS, ARIMA, Theta, Comb.

Each model is fitted on the training part's target only, then run with those parameters over the
whole series (`results.apply`), so the forecast from origin o uses rows 0..o and nothing later:
one-step and h-step forecasts from the true past, as the network's. The h-step forecast from the
state predicted for row o+1 is  y = d + Z T^(h-1) a + Z sum_j T^j c  (a time-invariant state space).

    ETS    additive errors, damped additive trend, additive season when 1 < s <= 24; on the values
           or their logarithm, whichever has the lower AIC on the same data; the better of two
           fits (initial states estimated or concentrated out)
    ARIMA  (p, d, q) with d from a KPSS test on the training part (as auto.arima), p and q by
           AIC over a few orders (Hannan-Rissanen estimates), and a seasonal MA(1) term among the
           candidates (maximum likelihood); on the seasonal differences when the season is
           strong, so that the "airline" model (0,1,1)(0,1,1)s is one of them
    Theta  the standard, optimised or dynamic Theta model (theta.py: the family statsforecast's
           AutoTheta picks from), on data seasonally adjusted by classical decomposition when the
           ACF test says so; the season, level and line from the rows known at each origin
    Comb   the mean of ETS, ARIMA and Theta: the benchmark the M4 competition asked to beat
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .theta import theta_forecasts

MAX_ETS_SEASON = 24       # a longer season makes the state (and the fit) too slow for the CLI
MAX_ESTIMATED_SEASON = 12  # a longer one: ETS's initial states only concentrated out, not estimated
ORDERS = ((1, 1), (2, 1), (2, 2))
SEASONAL_ORDERS = ((0, 1), (1, 1), (2, 1))   # (p, q) tried with a seasonal MA(1) term
CLASSIC = ("ets", "arima", "theta", "comb")


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


def season_strength(train: np.ndarray, season: int) -> float:
    """1 - Var(remainder) / Var(season + remainder) of a robust STL decomposition (0 without a season)."""
    from statsmodels.tsa.seasonal import STL
    if season <= 1 or len(train) < 2 * season + 1:
        return 0.0
    r = STL(train, period=season, robust=True).fit()
    return max(0.0, 1 - float(np.var(r.resid) / np.var(r.resid + r.seasonal)))


def ets_forecasts(y: np.ndarray, n_train: int, season: int, origins: np.ndarray, horizon: int) -> np.ndarray:
    """ETS on the values, or on their logarithm (a season that grows with the level) when that
    fits the training rows better: the likelihood compared on the same data (the log's minus
    sum log y; the two have the same parameters, so this is their AIC)."""
    raw = _ets(y[:n_train], season)
    if (y > 0).all():
        lg = _ets(np.log(y[:n_train]), season)
        if lg.llf - np.sum(np.log(y[:n_train])) > raw.llf:
            return np.exp(h_step(lg.apply(np.log(y)), origins, horizon))
    return h_step(raw.apply(y), origins, horizon)


def arima_forecasts(y: np.ndarray, n_train: int, season: int, origins: np.ndarray, horizon: int) -> np.ndarray:
    """ARIMA on the values, or on the seasonal differences z_t = y_t - y_(t-s) when the STL season
    strength exceeds 0.64 (auto.arima's seasonal test), summed back: y(o+h) = z(o+h) + y(o+h-s)."""
    if origins.min() < season - 1 or season_strength(y[:n_train], season) <= 0.64:   # no season before o
        return h_step(_arima(y[:n_train], season).apply(y), origins, horizon)
    s = season
    z = y[s:] - y[:-s]                                      # z[t - s] = y[t] - y[t - s]
    zf = h_step(_arima(z[:n_train - s], season).apply(z), origins - s, horizon)
    out = np.empty_like(zf)
    for h in range(1, horizon + 1):
        out[:, h - 1] = zf[:, h - 1] + (y[origins + h - s] if h <= s else out[:, h - 1 - s])
    return out


def _ets(train: np.ndarray, season: int):
    """The damped-trend ETS with the higher likelihood of two fits: initial states estimated with
    the other parameters, or concentrated out of the likelihood. The optimiser lands in different
    optima (UKgas: seasonal smoothing 0.97 one way, 0 the other); keeping the better fit took our
    ETS's geometric mean of MASE against AutoETS over 1..H from 1.006 to 0.957 on 24 textbook
    series, and lowered it on both held-out sets. With a season of more than 12 steps only the
    concentrated fit: estimating 24 hourly initial states took 34 s, concentrating them 4 s."""
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
    seasonal = season if 1 < season <= MAX_ETS_SEASON and len(train) >= 3 * season else None
    fits, failed = [], None
    long = seasonal is not None and seasonal > MAX_ESTIMATED_SEASON
    for init in ("concentrated",) if long else ("estimated", "concentrated"):
        try:
            fits.append(ExponentialSmoothing(train, trend=True, damped_trend=True, seasonal=seasonal,
                                             initialization_method=init).fit(disp=False, maxiter=100))
        except (ValueError, np.linalg.LinAlgError) as e:
            failed = e
    if not fits:
        raise failed
    return max(fits, key=lambda r: r.llf if np.isfinite(r.llf) else -np.inf)


def differences(train: np.ndarray) -> int:
    """1 when a KPSS test rejects a stationary level at 5% (auto.arima's test), else 0; with the
    "short" lag count of tseries' kpss.test, floor(3 sqrt(n) / 13), as statsforecast's ndiffs."""
    from statsmodels.tsa.stattools import kpss
    test = kpss(train, regression="c", nlags=int(3 * np.sqrt(len(train)) / 13))
    return int((test.pvalue if hasattr(test, "pvalue") else test[1]) < 0.05)   # a tuple up to statsmodels 0.15


def invertible(r) -> bool:
    """No root of the non-seasonal AR or MA polynomial within 1.01 of the unit circle, as
    auto.arima asks of its candidates. An MA coefficient of -1 (visnights QLDCntrl, 53 rows) is an
    estimate at the boundary whose forecasts from later origins go astray. auto.arima also checks
    the seasonal terms; here that would drop the seasonal MA near -1 of a steady season (the
    airline model) and cost the 24 textbook series 1% at step H, so it does not."""
    P = np.polynomial.polynomial                            # polyroots([1]) is empty: no AR or MA terms
    roots = np.r_[P.polyroots(np.r_[1, -np.asarray(r.arparams)]), P.polyroots(np.r_[1, np.asarray(r.maparams)])]
    return bool(np.all(np.abs(roots) > 1.01))


def _arima(train: np.ndarray, season: int = 1):
    """The candidate with the lowest AIC among those that fit: (p, d, q) orders by Hannan-Rissanen
    (regressions, no iterative search: fast and stable), and with a season of 2..24 steps, a few
    with a seasonal MA(1) term by maximum likelihood (most of the gain one season ahead; on 24
    textbook series mean MASE at step H 1.22 -> 1.05, about a second per fit). The KPSS test takes
    the few lags statsforecast's ndiffs takes; statsmodels' data-dependent ones left a trending
    series undifferenced more often (us_employment Leisure: MASE at step H 0.99 -> 0.36, AutoARIMA
    0.41). Our ARIMA against AutoARIMA at step H (geometric mean): held-out sets 0.972 -> 0.942,
    1.038 -> 1.038, 1.113 -> 1.029; the 24 textbook series 0.975 -> 0.986."""
    from statsmodels.tsa.arima.model import ARIMA
    d = differences(train)
    trend = "c" if d == 0 else "n"
    cands = [((p, d, q), None) for p, q in ORDERS]
    if 1 < season <= MAX_ETS_SEASON and len(train) >= 3 * season:
        cands += [((p, d, q), (0, 0, 1, season)) for p, q in SEASONAL_ORDERS]
    best = None
    for order, seasonal in cands:
        try:
            if seasonal is None:
                r = ARIMA(train, order=order, trend=trend).fit(method="hannan_rissanen")
            else:
                r = ARIMA(train, order=order, seasonal_order=seasonal, trend=trend).fit()
        except (ValueError, np.linalg.LinAlgError):         # a non-invertible estimate: skip the order
            continue
        if np.isfinite(r.aic) and invertible(r) and (best is None or r.aic < best.aic):
            best = r
    if best is None:                                        # fall back on the likelihood, one order
        from statsmodels.tsa.statespace.sarimax import SARIMAX
        best = SARIMAX(train, order=(1, d, 1), trend=trend, concentrate_scale=True).fit(disp=False, maxiter=50)
    return best


def _fit_one(name: str, y: np.ndarray, n_train: int, season: int, origins: np.ndarray, horizon: int):
    import statsmodels.tools.sm_exceptions  # noqa: F401 (its import sets an "always" filter: before ours)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")               # convergence chatter from the optimiser
            if name == "theta":
                f = theta_forecasts(y, n_train, season, origins, horizon)
            else:
                f = (ets_forecasts if name == "ets" else arima_forecasts)(y, n_train, season, origins, horizon)
        return f if np.isfinite(f).all() else "the fit gave non-finite forecasts"
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError) as e:
        return f"the fit failed ({str(e).splitlines()[0][:80]})"


def classic_forecasts(y: np.ndarray, n_train: int, season: int, origins: np.ndarray,
                      horizon: int) -> dict:
    """name -> (M, H) forecasts, or name -> str (why the model is missing): ets, arima, theta and
    comb, their mean (missing when one of the three is)."""
    why = available()
    if why is None and n_train < 20:
        why = f"needs >= 20 training rows (has {n_train})"
    if why:
        return {name: why for name in CLASSIC}
    out = {name: _fit_one(name, y, n_train, season, origins, horizon) for name in CLASSIC[:3]}
    bad = [n for n in CLASSIC[:3] if isinstance(out[n], str)]
    out["comb"] = f"{bad[0]} is missing" if bad else (out["ets"] + out["arima"] + out["theta"]) / 3
    return out


@dataclass
class ClassicFit:
    """The classical forecasts of y from every origin first .. len(y) - 2, parameters fitted on
    y[:n_fit]: fitted once for the combination's tail windows and sliced again for the test part."""
    y: np.ndarray
    n_fit: int
    season: int
    first: int
    forecasts: dict                  # classic_forecasts' name -> (M, H) or the reason

    @classmethod
    def from_origin(cls, y: np.ndarray, n_fit: int, season: int, first: int, horizon: int) -> "ClassicFit":
        origins = np.arange(first, len(y) - 1)
        return cls(y, n_fit, season, first, classic_forecasts(y, n_fit, season, origins, horizon))

    def covers(self, y: np.ndarray, n_fit: int, origins: np.ndarray) -> bool:
        """Whether these are the forecasts classic_forecasts(y, n_fit, season, origins) would give
        (ARIMA's method depends on whether the first origin has a season behind it)."""
        return (n_fit == self.n_fit and len(y) == len(self.y) and np.array_equal(y, self.y)
                and self.first <= origins.min() and origins.max() <= len(y) - 2
                and (self.first >= self.season - 1 or origins.min() < self.season - 1))

    def at(self, origins: np.ndarray) -> dict:
        return {k: v[origins - self.first] if isinstance(v, np.ndarray) else v for k, v in self.forecasts.items()}


def forecasts_for(known: Optional[ClassicFit], y: np.ndarray, n_fit: int, season: int, origins: np.ndarray,
                  horizon: int) -> dict:
    """classic_forecasts(y, n_fit, season, origins, horizon), sliced from `known` when it holds them."""
    if known is not None and known.covers(y, n_fit, origins):
        return known.at(origins)
    return classic_forecasts(y, n_fit, season, origins, horizon)
