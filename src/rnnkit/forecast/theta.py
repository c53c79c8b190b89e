"""Theta: the standard, optimised and dynamic Theta models of Fiorucci et al. (2016), the family
statsforecast's AutoTheta chooses from, run from every origin with the training part's parameters.

On the seasonally adjusted series z_1..z_T (T rows known at the origin), with A_T, B_T the
intercept and slope of the least-squares line through them and l_T the simple exponential
smoothing level (l_t = alpha z_t + (1 - alpha) l_(t-1), from l_0):

    z_hat(T+h) = l_T + (1 - 1/theta) ((1 - alpha)^T A_T + (h - 1 + (1 - (1 - alpha)^(T+1)) / alpha) B_T)

theta = 2 is the classic Theta method (statsmodels' ThetaModel: the SES level plus half the
line's slope); the optimised models fit theta too. The four candidates differ in the in-sample
errors that fit them: STM and OTM (theta 2, theta fitted) use the line through all training rows,
DSTM and DOTM the line through the rows up to each origin. l_0, alpha and theta minimise the mean
squared 1..3-step error on the training rows; the candidate with the lowest one-step MSE is kept.
From an origin every model uses the rows known there and nothing later: the level and the line
from rows 0..o, the season from the whole seasons among them (classical decomposition,
multiplicative unless a value is <= 0, when the ACF test at lag m says there is one; m >= 4 and
two seasons known). On 57 monthly and quarterly series, one season ahead, this is level with
AutoTheta (geometric mean of MASE 0.99-1.03 of it), where statsmodels' ThetaModel run with the
training part's line and season was at 1.03-1.12.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

MODELS = ("STM", "OTM", "DSTM", "DOTM")
NMSE = 3                    # the fit's loss: the mean squared error over steps 1..NMSE
SEASON_Z = 1.6448536269514722   # the ACF test's one-sided 95% normal quantile (a 90% two-sided test)


@dataclass
class ThetaParams:
    model: str              # one of MODELS
    level0: float           # l_0
    alpha: float            # in [0.1, 0.99]
    theta: float            # 2 for STM / DSTM, >= 1 otherwise
    mse: float              # one-step in-sample MSE (picks the model)


def lines(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) -> intercept A and slope B of the least-squares line through z_1..z_t, for t = 1..T
    (a single row: its value and slope 0)."""
    t = np.arange(1, len(z) + 1, dtype=float)
    mean_z, mean_tz = np.cumsum(z) / t, np.cumsum(t * z) / t
    with np.errstate(divide="ignore", invalid="ignore"):
        B = np.where(t > 1, 6 * (2 * mean_tz - (t + 1) * mean_z) / (t ** 2 - 1), 0.0)
    return mean_z - (t + 1) / 2 * B, B


def paths(z: np.ndarray, p: ThetaParams, A: np.ndarray, B: np.ndarray, origins: np.ndarray,
          horizon: int) -> np.ndarray:
    """(M,) origins (row o: rows 0..o known, T = o + 1) -> (M, H) forecasts of z at o+1 .. o+H."""
    from scipy.signal import lfilter
    a = p.alpha
    level = lfilter([a], [1.0, a - 1.0], z, zi=[(1 - a) * p.level0])[0]
    T = (origins + 1)[:, None].astype(float)
    h = np.arange(1, horizon + 1)[None, :]
    trend = (1 - a) ** T * A[origins][:, None] + (h - 1 + (1 - (1 - a) ** (T + 1)) / a) * B[origins][:, None]
    return level[origins][:, None] + (1 - 1 / p.theta) * trend


def model_lines(z: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
    """The lines a model's in-sample forecasts use: through the rows up to each origin (DSTM,
    DOTM), or through all training rows (STM, OTM)."""
    A, B = lines(z)
    if not model.startswith("D"):
        A, B = np.full(len(z), A[-1]), np.full(len(z), B[-1])
    return A, B


def in_sample_errors(z: np.ndarray, p: ThetaParams, steps: int,
                     AB: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """(T-1, steps) errors of the forecasts from every training origin (NaN past the last row);
    AB: model_lines(z, p.model), when the caller has them."""
    n = len(z)
    A, B = AB if AB is not None else model_lines(z, p.model)
    origins = np.arange(n - 1)
    rows = origins[:, None] + np.arange(1, steps + 1)[None, :]
    f = paths(z, p, A, B, origins, steps)
    return np.where(rows < n, f - z[np.minimum(rows, n - 1)], np.nan)


def fit_one(z: np.ndarray, model: str) -> ThetaParams:
    """l_0, alpha (and theta for OTM / DOTM) minimising the mean squared 1..NMSE-step error."""
    from scipy.optimize import minimize
    free_theta = model in ("OTM", "DOTM")
    sd = float(np.std(z)) or 1.0
    AB = model_lines(z, model)                      # fixed while the optimiser moves l_0, alpha, theta

    def params(x) -> ThetaParams:     # l_0 in sd about z_1, theta as its weight 1 - 1/theta: even steps
        theta = 1 / (1 - float(x[2])) if free_theta else 2.0
        return ThetaParams(model, float(z[0] + sd * x[0]), float(x[1]), theta, 0.0)

    def loss(x) -> float:
        e = in_sample_errors(z, params(x), NMSE, AB)
        return float(np.nanmean(np.nanmean(e ** 2, axis=0))) / sd ** 2

    x0 = [-0.5 * z[0] / sd, 0.5] + ([0.5] if free_theta else [])
    bounds = [(-1e6, 1e6), (0.1, 0.99)] + ([(0.0, 0.999)] if free_theta else [])     # theta in [1, 1000]
    with np.errstate(all="ignore"):
        best = minimize(loss, x0, method="Nelder-Mead", bounds=bounds,
                        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 2000})
        p = params(best.x)
        p.mse = float(np.nanmean(in_sample_errors(z, p, 1, AB) ** 2))
    return p


def fit(z: np.ndarray) -> ThetaParams:
    """The candidate of MODELS with the lowest one-step in-sample MSE."""
    fits = [fit_one(z, m) for m in MODELS]
    return min((f for f in fits if np.isfinite(f.mse)), key=lambda f: f.mse, default=fits[0])


def season(y: np.ndarray, m: int) -> Optional[tuple[np.ndarray, bool]]:
    """(m,) seasonal indices by row % m and whether they multiply, or None when the ACF at lag m is
    not significant (or m < 4, or fewer than two seasons). The test and the classical
    decomposition are statsmodels' (acf, seasonal_decompose), written here in numpy: they run once
    per origin, and on a weekly series of 2,000 rows statsmodels' took 5 s a fit."""
    if m < 4 or len(y) < 2 * m:
        return None
    d = y - y.mean()
    r = np.array([d[:-k] @ d[k:] for k in range(1, m + 1)]) / (d @ d)      # ACF at lags 1..m
    if not abs(r[-1]) > SEASON_Z * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(y)):
        return None
    mul = bool(y.min() > 0)
    idx = _indices(y, m, mul)
    if mul and (idx < 0.01).any():                  # a near-zero index would blow the adjusted series up
        mul, idx = False, _indices(y, m, False)
    return idx, mul


def _indices(y: np.ndarray, m: int, mul: bool) -> np.ndarray:
    """Classical decomposition: y over (or minus) its centred moving average of one season,
    averaged by row % m, normalised to mean 1 (or 0)."""
    w = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    trend = np.full(len(y), np.nan)
    half = len(w) // 2
    trend[half:len(y) - half] = np.convolve(y, w, mode="valid")
    detrended = y / trend if mul else y - trend
    rows = -(-len(y) // m)
    by_pos = np.nanmean(np.r_[detrended, np.full(rows * m - len(y), np.nan)].reshape(rows, m), axis=0)
    return by_pos / by_pos.mean() if mul else by_pos - by_pos.mean()


def adjust(y: np.ndarray, m: int, s: Optional[tuple[np.ndarray, bool]]) -> np.ndarray:
    """y seasonally adjusted by the indices s (None: no season)."""
    if s is None:
        return y
    by_row = s[0][np.arange(len(y)) % m]
    return y / by_row if s[1] else y - by_row


def theta_forecasts(y: np.ndarray, n_train: int, m: int, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(M, H) forecasts of rows o+1 .. o+H from every origin o: the model and its parameters from
    rows < n_train; the level and line from rows 0..o, and the season from the whole seasons among
    them (refreshed once a season: the same forecasts whichever origins are asked, in O(n^2 / m))."""
    p = fit(adjust(y[:n_train], m, season(y[:n_train], m)))
    h = np.arange(1, horizon + 1)
    out = np.empty((len(origins), horizon))
    seen = (origins + 1) // m * m if m >= 4 else np.zeros_like(origins)   # rows the season is read from
    for rows in np.unique(seen):
        at = np.flatnonzero(seen == rows)
        s = season(y[:rows], m) if rows else None
        z = adjust(y[:origins[at].max() + 1], m, s)
        A, B = lines(z)
        f = paths(z, p, A, B, origins[at], horizon)
        if s is not None:
            idx = s[0][(origins[at][:, None] + h[None, :]) % m]
            f = f * idx if s[1] else f + idx
        out[at] = f
    return out
