"""Correlated noise and short guide periods (issue 13: noise the statistics must survive)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.signal import lfilter

from ..choices import FIT_PARAMETERS
from .plan import _VisitPlan
from .psf import _Noise, gaussian_frames

NoiseQuantity = Literal["x", "y", "flux", "width"]
NoiseKind = Literal["white", "ar1", "random_walk", "power_law"]
_NOISE_QUANTITIES = ("x", "y", "flux", "width")
_NOISE_KINDS = ("white", "ar1", "random_walk", "power_law")


def _ar1(rng: np.random.Generator, n: int, dt_s: float, tau_s: float, rms: float) -> np.ndarray:
    """Mean-reverting random walk (AR(1) / Ornstein-Uhlenbeck) with stationary RMS ``rms``."""
    if n == 0 or rms == 0:
        return np.zeros(n)
    phi = math.exp(-dt_s / tau_s)
    e = rng.standard_normal(n) * (rms * math.sqrt(1.0 - phi * phi))
    e[0] = rng.standard_normal() * rms
    return lfilter([1.0], [1.0, -phi], e)


@dataclass(frozen=True)
class CorrelatedNoise:
    """One noise process added to a per-frame quantity, drawn afresh for every guide period.

    ``quantity``: ``'x'``/``'y'`` (centroid, additive [px]), ``'flux'`` (relative, total flux
    x (1 + n)) or ``'width'`` (relative, both PSF widths x (1 + n); the flux is kept, so the
    peak amplitude falls as the PSF widens). ``kind``:

    * ``'white'``: independent per frame, RMS ``rms``;
    * ``'ar1'``: Ornstein-Uhlenbeck with correlation time ``tau_s`` [s] (lag-1 autocorrelation
      ``exp(-cadence / tau_s)``) and stationary RMS ``rms``;
    * ``'random_walk'``: starts at 0 at each guide period (re-acquisition) and drifts; ``rms``
      is the RMS of its change over ``tau_s`` seconds (variance grows linearly with lag);
    * ``'power_law'``: spectrum ``~ f^-alpha`` from 1 / (guide period) to Nyquist, RMS ``rms``
      over a guide period.

    Give the size either as ``rms`` (px for x/y, a fraction for flux/width) or as ``share``:
    the process's fraction of the quantity's per-frame variance, relative to the photon
    (white) noise of a frame of that visit's star, ``rms^2 = share / (1 - share) sigma_white^2``
    (for a random walk, of the variance of its change over ``tau_s``). ``sigma_white`` is the
    Cramer-Rao bound of the Gaussian fit at the visit's PSF (flux: of the summed star counts);
    both are written to ``truth/noise.parquet``.
    """

    quantity: NoiseQuantity
    kind: NoiseKind
    share: float | None = None
    rms: float | None = None
    tau_s: float = 20.0
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.quantity not in _NOISE_QUANTITIES:
            raise ValueError(f"CorrelatedNoise.quantity must be one of {_NOISE_QUANTITIES}")
        if self.kind not in _NOISE_KINDS:
            raise ValueError(f"CorrelatedNoise.kind must be one of {_NOISE_KINDS}")
        if (self.share is None) == (self.rms is None):
            raise ValueError("CorrelatedNoise needs exactly one of share= or rms=")
        if self.share is not None and not 0.0 <= self.share < 1.0:
            raise ValueError(f"CorrelatedNoise.share must be in [0, 1), not {self.share}")
        if self.rms is not None and self.rms < 0:
            raise ValueError(f"CorrelatedNoise.rms must be >= 0, not {self.rms}")
        if self.tau_s <= 0:
            raise ValueError(f"CorrelatedNoise.tau_s must be > 0 s, not {self.tau_s}")


def _on(quantities: Sequence[str], kind: NoiseKind, share: float, **kw: float) -> list:
    return [CorrelatedNoise(q, kind, share=share, **kw) for q in quantities]  # type: ignore[arg-type]


_ALL_Q = ("x", "y", "flux", "width")

#: Named noise programs for ``simulate_program(correlated_noise=...)``. ``'white'`` adds
#: nothing (today's simulator: photon noise plus the pointing model); the others add
#: correlated noise at seconds-to-minutes scales to centroids, widths and flux.
NOISE_PRESETS: dict[str, tuple[CorrelatedNoise, ...]] = {
    "white": (),
    # AR(1) at tau 20 s holding 10 % of each quantity's per-frame variance
    "ar1": tuple(_on(_ALL_Q, "ar1", 0.10, tau_s=20.0)),
    # slow AR(1) at 1 % (the audit's 'mildly red')
    "ar1_weak": tuple(_on(_ALL_Q, "ar1", 0.01, tau_s=60.0)),
    # random walk whose change over 60 s has 10 % of the per-frame variance
    "random_walk": tuple(_on(_ALL_Q, "random_walk", 0.10, tau_s=60.0)),
    "power_law": tuple(_on(_ALL_Q, "power_law", 0.10, alpha=1.5)),
    # a mixture at several time scales (the bench's held-out kind: nothing was tuned to it)
    "realistic": tuple(
        _on(("flux",), "ar1", 0.03, tau_s=4.0)
        + _on(("flux", "width"), "power_law", 0.05, alpha=1.2)
        + _on(("width",), "random_walk", 0.04, tau_s=120.0)
        + _on(("x", "y"), "ar1", 0.05, tau_s=90.0)
        + _on(("x", "y", "flux"), "random_walk", 0.02, tau_s=300.0)
    ),
}


def resolve_noise(
    correlated_noise: str | Sequence[CorrelatedNoise] | None,
) -> tuple[CorrelatedNoise, ...]:
    """A preset name (``NOISE_PRESETS``), a list of components, or None -> the components."""
    if correlated_noise is None:
        return ()
    if isinstance(correlated_noise, str):
        if correlated_noise not in NOISE_PRESETS:
            raise ValueError(
                f"unknown noise preset {correlated_noise!r}; presets: {', '.join(NOISE_PRESETS)}"
            )
        return NOISE_PRESETS[correlated_noise]
    out = tuple(correlated_noise)
    for c in out:
        if not isinstance(c, CorrelatedNoise):
            raise TypeError(f"correlated_noise items must be CorrelatedNoise, not {type(c)}")
    return out


def white_noise_sigmas(base: Mapping[str, float], noise: _Noise) -> dict[str, float]:
    """Per-frame photon-noise sigma of x, y [px], width and flux (relative) for PSF ``base``.

    x/y/width: Cramer-Rao bound of the 7-parameter Gaussian fit with the simulator's pixel
    variance (``model / (gain t) + (read noise / (gain t))^2``); width is relative
    ``x_stddev``. flux: sqrt(summed pixel variance) / star flux (aperture sum, known sky).
    """
    names = FIT_PARAMETERS  # the Gaussian2D + offset parameters, in the fitter's order
    p0 = np.array([float(base[k]) for k in names])
    steps = np.array([1e-4 * p0[0], 1e-4, 1e-4, 1e-5, 1e-5, 1e-5, 1e-4 * max(p0[6], 1.0)])
    cols = np.repeat(p0[None, :], 1 + 2 * len(names), axis=0)
    for j, h in enumerate(steps):
        cols[1 + 2 * j, j] += h
        cols[2 + 2 * j, j] -= h
    m = gaussian_frames(*cols.T).reshape(cols.shape[0], -1)
    gt = noise.gt
    var = m[0] / gt + (noise.read_noise_e / gt) ** 2
    jac = np.stack([(m[1 + 2 * j] - m[2 + 2 * j]) / (2 * h) for j, h in enumerate(steps)], 1)
    cov = np.linalg.inv(jac.T @ (jac / var[:, None]))
    star = 2 * np.pi * p0[0] * p0[3] * p0[4]
    return {
        "x": float(math.sqrt(cov[1, 1])),
        "y": float(math.sqrt(cov[2, 2])),
        "width": float(math.sqrt(cov[3, 3]) / p0[3]),
        "flux": float(math.sqrt(var.sum()) / star),
    }


def _component_rms(c: CorrelatedNoise, sigma_white: float) -> float:
    if c.rms is not None:
        return float(c.rms)
    s = float(c.share)  # type: ignore[arg-type]
    return sigma_white * math.sqrt(s / (1.0 - s))


def _power_law(rng: np.random.Generator, n: int, alpha: float, rms: float) -> np.ndarray:
    """Gaussian noise with spectrum ~ f^-alpha (no DC) and expected RMS ``rms``."""
    if n < 2 or rms == 0:
        return np.zeros(n)
    f = np.fft.rfftfreq(n)
    h = np.zeros(f.size)
    h[1:] = f[1:] ** (-alpha / 2.0)
    w = np.fft.rfft(rng.standard_normal(n))
    x = np.fft.irfft(w * h, n)
    # expected variance of x: (1/n) * two-sided sum of h^2 (Parseval with E|w_k|^2 = n)
    h2 = h * h
    two_sided = 2.0 * h2[1:].sum() - (h2[-1] if n % 2 == 0 else 0.0)
    return x * (rms / math.sqrt(two_sided / n))


def noise_series(
    c: CorrelatedNoise, n: int, cadence_s: float, rms: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` frames at ``cadence_s`` [s] of component ``c`` with resolved size ``rms``."""
    if n == 0 or rms == 0:
        return np.zeros(n)
    if c.kind == "white":
        return rng.standard_normal(n) * rms
    if c.kind == "ar1":
        return _ar1(rng, n, cadence_s, c.tau_s, rms)
    if c.kind == "random_walk":
        steps = rng.standard_normal(n) * (rms * math.sqrt(cadence_s / c.tau_s))
        steps[0] = 0.0
        return np.cumsum(steps)
    return _power_law(rng, n, c.alpha, rms)


def _correlated_series(
    components: Sequence[CorrelatedNoise],
    rms: Sequence[float],
    n: int,
    cadence_s: float,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The summed correlated noise per quantity for one guide period (quantities present)."""
    out: dict[str, np.ndarray] = {}
    for c, r in zip(components, rms, strict=True):
        s = noise_series(c, n, cadence_s, r, rng)
        out[c.quantity] = out[c.quantity] + s if c.quantity in out else s
    return out


def _noise_rows(
    program: int,
    v: _VisitPlan,
    components: Sequence[CorrelatedNoise],
    rms: Sequence[float],
    sigmas: Mapping[str, float],
    preset: str | None,
) -> list[dict[str, Any]]:
    return [
        {
            "program": program,
            "observation": v.observation,
            "visit": v.visit,
            "gs_id": v.star.gs_id,
            "preset": preset,
            "component": i,
            "quantity": c.quantity,
            "kind": c.kind,
            "share": c.share,
            "rms": r,
            "tau_s": c.tau_s,
            "alpha": c.alpha,
            "white_sigma": sigmas[c.quantity],
        }
        for i, (c, r) in enumerate(zip(components, rms, strict=True))
    ]


_NOISE_SCHEMA = {
    "program": pl.Int64,
    "observation": pl.Int64,
    "visit": pl.Int64,
    "gs_id": pl.Utf8,
    "preset": pl.Utf8,
    "component": pl.Int64,
    "quantity": pl.Utf8,
    "kind": pl.Utf8,
    "share": pl.Float64,
    "rms": pl.Float64,
    "tau_s": pl.Float64,
    "alpha": pl.Float64,
    "white_sigma": pl.Float64,
}


def _short_guide_periods(rng: np.random.Generator, total: int, lo: int, hi: int) -> list[int]:
    """Split ``total`` frames into guide periods of log-uniform length in [lo, hi] frames."""
    if not 1 <= lo <= hi:
        raise ValueError(f"guide_period_frames must be 1 <= lo <= hi, not ({lo}, {hi})")
    out: list[int] = []
    left = total
    while left > 0:
        n = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        n = min(n, left)
        if 0 < left - n < lo:  # do not leave a stub shorter than lo
            n = left if left <= hi else left - lo
        out.append(n)
        left -= n
    return out
