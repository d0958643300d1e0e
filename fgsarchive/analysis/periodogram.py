"""Lomb-Scargle periodograms of guide-star time series, and instrumental lines across stars.

``periodogram_series`` computes the periodograms of several parameters of one series (flux,
x_mean, y_mean, ...) together (an exact FFT Lomb-Scargle when the times lie on the cadence grid,
else one batched nifty-ls call), on a grid that stops at the Nyquist frequency
of the real cadence, and lists the strongest peaks with false-alarm probabilities against the
series' own noise continuum (``noise_continuum``; Baluev's white-noise value kept as fap_white).
``instrumental_lines`` finds frequencies that recur in the peaks of many distinct guide stars
(they belong to the telescope, not the star); ``label_instrumental`` marks peaks that match them.

Pure array maths, no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numba
import numpy as np
import polars as pl

from .anomalies import SPIKE_SIGMA, STEP_SUFFIXES, _despike, _diff_noise, parameter_family
from .detrend import (
    DETREND_METHODS,
    DetrendMethod,
    check_option,
    decorrelate_pointing,
    despike,
    detrend_series,
    diff_noise,
    file_rows,
    median_cadence_s,
    median_inplace,
)

__all__ = [
    "Backend",
    "fft_lombscargle",
    "FFT_MAX_OFFSETS",
    "FFT_TIME_TOLERANCE",
    "PeriodogramResult",
    "periodogram_series",
    "find_peaks",
    "instrumental_lines",
    "label_instrumental",
    "MIN_POINTS",
    "Significance",
    "local_continuum",
    "fitted_continuum",
    "noise_continuum",
    "continuum_fap",
    "refine_peak_offset",
    "spike_mask",
    "pointing_lines",
    "POINTING_LINE_CONTRAST",
    "line_contrast",
    "condition_for_periodogram",
    "DECORRELATED_FLUXES",
    "MAX_MASKED_FRACTION",
    "PERIODOGRAM_DECORRELATION_BIN",
]

Backend = Literal["fft", "nifty", "astropy"]
BACKENDS: tuple[str, ...] = get_args(Backend)
Significance = Literal["continuum", "local", "white"]
SIGNIFICANCES: tuple[str, ...] = get_args(Significance)

CONTINUUM_HALF_WIDTH = 0.5
"""Half-width of the window the local continuum is fitted on, as a fraction of the frequency
(0.5: f/1.5 .. 1.5 f, about +-0.18 dex), never below ``CONTINUUM_MIN_ELEMENTS``."""
CONTINUUM_MIN_ELEMENTS = 30
"""Fewest resolution elements (1/baseline) on each side of a frequency in its continuum window
(shifted, not shrunk, at the ends of the grid)."""
CONTINUUM_CORE_ELEMENTS = 2
"""Resolution elements on each side of a frequency left out of its own continuum (a line must
not raise the level it is judged against)."""
CONTINUUM_CLIP = 10.0
"""Ordinates above this many times the previous pass's continuum are clipped to it before the
next pass (a chance of e^-10 per noise ordinate; a strong line's side lobes are not noise)."""
CONTINUUM_PASSES = 3
"""Fits of the continuum; each after the first clips the ordinates to ``CONTINUUM_CLIP`` times
the previous one."""
_EULER_GAMMA = 0.5772156649015329
_LOG_EXP_VAR = np.pi**2 / 6.0  # variance of log of an exponential variable

MIN_POINTS = 16
"""Fewest finite samples per series that ``periodogram_series`` accepts."""

SIDELOBE_FACTOR = 3.0
"""A peak below ``SIDELOBE_FACTOR / (pi x)^2`` times a stronger peak x resolution elements away is
taken for one of its side lobes and not listed (see ``find_peaks``)."""


@dataclass(frozen=True)
class PeriodogramResult:
    """Periodograms of k series on one regular frequency grid ``f0_hz + df_hz * arange(nf)``.

    ``power`` has shape (k, nf) (standard normalisation, 0..1, as astropy's default).
    ``peaks`` is a polars DataFrame with one row per peak: series, rank (1 = strongest in that
    series), frequency_hz, period_s, power, fap (false-alarm probability over the grid against
    the noise continuum), continuum, fap_white (Baluev's). ``continuum`` and
    ``continuum_var_log`` (k, nf; float32) are each series' continuum and the variance of its log
    (None with ``significance="white"``).
    """

    f0_hz: float
    df_hz: float
    nf: int
    power: np.ndarray
    peaks: pl.DataFrame
    names: tuple[str, ...]
    n_points: tuple[int, ...]
    baseline_s: float
    cadence_s: float
    detrend: str
    backend: str
    t0_s: float = 0.0
    significance: str = "continuum"
    continuum: np.ndarray | None = field(default=None, repr=False, compare=False)
    continuum_var_log: np.ndarray | None = field(default=None, repr=False, compare=False)
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def fmax_hz(self) -> float:
        """Last frequency of the grid (inclusive)."""
        return self.f0_hz + self.df_hz * (self.nf - 1)

    def frequency_hz(self) -> np.ndarray:
        """The frequency grid (Hz), derived on demand."""
        return self.f0_hz + self.df_hz * np.arange(self.nf)

    def period_s(self) -> np.ndarray:
        """The period grid (s), 1 / frequency."""
        return 1.0 / self.frequency_hz()

    def power_of(self, name: str) -> np.ndarray:
        """Power of the series called ``name``."""
        if name not in self.names:
            raise ValueError(f"unknown series {name!r}; valid values: {', '.join(self.names)}")
        return self.power[self.names.index(name)]


def local_maxima(power: np.ndarray) -> np.ndarray:
    """Indices of the interior bins higher than their left neighbour and not lower than their
    right one (the candidates of :func:`find_peaks`)."""
    p = np.asarray(power, dtype=np.float64)
    if p.size < 3:
        return np.empty(0, dtype=np.int64)
    inner = p[1:-1]
    return np.flatnonzero((inner > p[:-2]) & (inner >= p[2:]) & np.isfinite(inner)) + 1


def find_peaks(
    power: np.ndarray,
    n_peaks: int,
    bins_per_resolution: float,
    *,
    sidelobe_factor: float = SIDELOBE_FACTOR,
    order: np.ndarray | None = None,
    envelope: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the ``n_peaks`` strongest local maxima of ``power``, strongest first.

    ``order``: rank the maxima by these values instead (e.g. their significance);
    ``envelope``: values the side-lobe test below compares (default ``power``; e.g. the power
    over its local continuum); ``candidates``: the local maxima (:func:`local_maxima`), with
    ``order`` and ``envelope`` then given at those bins only (a spectrum's other bins need none).

    A local maximum is an interior bin higher than its left neighbour and not lower than its right
    one.  Going down in power, a maximum at ``x`` resolution elements (``bins_per_resolution``
    grid bins each, i.e. 1/baseline) from a stronger kept peak of power ``P`` is skipped when
    ``x < 1`` or when its power is below ``P * sidelobe_factor / (pi x)^2`` -- the envelope of
    the side lobes of a sinusoid (the window function sinc^2 falls as 1/(pi x)^2).
    """
    p = np.asarray(power, dtype=np.float64)
    if p.size < 3 or n_peaks < 1:
        return np.empty(0, dtype=np.int64)
    if candidates is None:
        cand = local_maxima(p)
        rank = p[cand] if order is None else np.asarray(order, dtype=np.float64)[cand]
        env = p[cand] if envelope is None else np.asarray(envelope, dtype=np.float64)[cand]
    else:
        cand = np.asarray(candidates, dtype=np.int64)
        rank = p[cand] if order is None else np.asarray(order, dtype=np.float64)
        env = p[cand] if envelope is None else np.asarray(envelope, dtype=np.float64)
    if cand.size == 0:
        return np.empty(0, dtype=np.int64)
    m = min(cand.size, max(1000, 50 * n_peaks))
    while True:
        # positions in ``cand``, strongest first
        top = np.argpartition(-rank, m - 1)[:m] if m < cand.size else np.arange(cand.size)
        top = top[np.argsort(-rank[top], kind="stable")]
        kept: list[int] = []  # positions in ``cand``
        for i in top:
            ok = True
            for j in kept:
                x = abs(int(cand[i]) - int(cand[j])) / bins_per_resolution
                if x < 1.0 or env[i] < env[j] * sidelobe_factor / (np.pi * x) ** 2:
                    ok = False
                    break
            if ok:
                kept.append(int(i))
                if len(kept) == n_peaks:
                    break
        if len(kept) == n_peaks or m >= cand.size:
            return cand[np.asarray(kept, dtype=np.int64)]
        m = min(cand.size, 8 * m)


def independent_frequencies(time_s: np.ndarray, fmax_hz: float) -> float:
    """Baluev's effective number of independent frequencies up to ``fmax_hz`` (Hz):
    ``fmax sqrt(4 pi var(t))``, t in seconds (as astropy's ``fap_baluev``)."""
    return float(fmax_hz) * float(np.sqrt(4.0 * np.pi * np.var(np.asarray(time_s, np.float64))))


def _baluev_fap(t: np.ndarray, power: np.ndarray, fmax: float) -> np.ndarray:
    """Baluev's (2008, eq. 6, table 1) white-noise FAP of standard-normalised powers ``power``
    on times ``t`` (s) up to ``fmax`` (Hz): ``1 - (1 - p) exp(-tau)`` with the single-frequency
    ``p = (1 - z)^((N - 3) / 2)`` and the Davies term ``tau`` (astropy's ``fap_baluev``, in a few
    array operations instead of a ``LombScargle`` object per series): the bound depends on the
    times and fmax alone."""
    from scipy.special import gammaln

    if power.size == 0:
        return np.empty(0)
    z = np.clip(np.asarray(power, dtype=np.float64), 0.0, 1.0)
    n = t.size
    n_null, n_model = n - 1, n - 3  # degrees of freedom without and with the sinusoid
    width = independent_frequencies(t, fmax)
    gamma = np.sqrt(2.0 / n_null) * np.exp(gammaln(n_null / 2) - gammaln((n_null - 1) / 2))
    single = (1.0 - z) ** (0.5 * n_model)
    tau = gamma * width * (1.0 - z) ** (0.5 * (n_model - 1)) * np.sqrt(0.5 * n_null * z)
    fap = -np.expm1(-tau) + single * np.exp(-tau)  # 1 - (1 - p) e^-tau, precise when small
    return np.clip(fap, 0.0, 1.0)


def local_continuum(
    power: np.ndarray, f0_hz: float, df_hz: float, bins_per_resolution: float
) -> tuple[np.ndarray, np.ndarray]:
    """Local continuum of a periodogram, and the variance of its log, at every grid frequency.

    A noise periodogram's ordinate is its spectrum S(f) times an exponential variable (Gaussian
    noise, any colour), so ``log P = log S - gamma + e`` with ``var(e) = pi^2 / 6``. At each
    frequency f, a straight line in (log f, log P) is fitted by least squares over the window
    f / (1 + h) .. f (1 + h) (``CONTINUUM_HALF_WIDTH``; at least ``CONTINUUM_MIN_ELEMENTS``
    resolution elements each side, the window shifted inside the grid at its ends), leaving out
    ``CONTINUUM_CORE_ELEMENTS`` elements around f; the continuum is ``exp(fit(log f) + gamma)``,
    the mean power the noise would have there. The log mean follows a power law of any slope
    without bias, and a line elsewhere in the window weighs only by its log. Returns
    ``(continuum, var_log)``: ``var_log`` is the variance of the fitted log continuum, from the
    number of independent ordinates (grid bins / ``bins_per_resolution``) and the leverage of f
    in its window.

    Fast: sums per resolution element, cumulative sums over elements, the fit evaluated at every
    element up to ``2 * CONTINUUM_MIN_ELEMENTS / CONTINUUM_HALF_WIDTH`` cycles and then at
    frequencies 1 % apart (the continuum is smooth on that scale), interpolated to every bin.
    """
    log_cont, var_log = _local_log_continuum(power, f0_hz, df_hz, bins_per_resolution)
    return np.exp(log_cont), var_log.copy()


def _local_log_continuum(
    power: np.ndarray, f0_hz: float, df_hz: float, bins_per_resolution: float
) -> tuple[np.ndarray, np.ndarray]:
    """``local_continuum`` as (log continuum, var_log; var_log the grid's read-only array): the
    windows and sums that depend only on the grid come from ``_local_grid`` (shared by the series
    of a group), the passes are compiled."""
    p = np.asarray(power, dtype=np.float64)
    nf = p.size
    g = _local_grid(nf, float(f0_hz), float(df_hz), float(bins_per_resolution))
    # ordinates are floored at 1e-8 of the median; the median (a partition of the whole
    # spectrum) is needed only when the smallest could lie below that: never when it is above
    # 1e-8 of twice the mean, a bound on the median of non-negative values
    pmin = float(p.min()) if nf else 1.0
    if pmin >= 0 and pmin >= max(2.01 * float(p.mean()), 1e-300) * 1e-8:
        y = np.log(p)
    else:
        med = float(np.median(p)) if nf else 1.0
        y = np.log(np.maximum(p, max(med, 1e-300) * 1e-8))
    y0 = float(y.mean())
    log_cont = np.empty(nf)
    # the passes after the first clip the ordinates far above the previous continuum to it:
    # the side lobes of a strong line would otherwise raise the continuum it is judged against
    _local_passes(
        y,
        y0,
        _EULER_GAMMA + np.log(CONTINUUM_CLIP),
        CONTINUUM_PASSES,
        _EULER_GAMMA,
        g.xs,
        g.lo,
        g.hi,
        g.clo,
        g.chi,
        g.s0,
        g.sx,
        g.vxx,
        g.xe,
        g.xm,
        g.at,
        g.bins,
        g.split,
        log_cont,
    )
    return log_cont, g.var_log


@dataclass(frozen=True)
class _LocalGrid:
    """What ``local_continuum`` needs of a frequency grid alone: per resolution element the log
    frequency of its bins ``xs`` (m, c; centred on the grid's mean), and per evaluation element
    its window [lo, hi) less its core [clo, chi), the window's sums ``s0``, ``sx``, ``vxx``, mean
    ``xm``, its own log frequency ``xe`` and bin position ``at``; ``var_log`` at every bin and
    ``misfit_margin`` (``MODEL_MISFIT_SIGMA`` of its standard deviations, for ``noise_continuum``)."""

    xs: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    clo: np.ndarray
    chi: np.ndarray
    s0: np.ndarray
    sx: np.ndarray
    vxx: np.ndarray
    xe: np.ndarray
    xm: np.ndarray
    at: np.ndarray
    bins: np.ndarray
    split: np.ndarray
    var_log: np.ndarray
    misfit_margin: np.ndarray


@functools.lru_cache(maxsize=1)
def _local_grid(nf: int, f0_hz: float, df_hz: float, bpr: float) -> _LocalGrid:
    """The grid-only part of ``local_continuum`` (one per group: its k series share the grid)."""
    c = max(1, int(round(bpr)))  # grid bins per element
    m = -(-nf // c)
    pad = m * c - nf
    f = f0_hz + df_hz * np.arange(m * c)
    x = np.log(f)
    x0 = float(x[:nf].mean())
    xs = (x - x0).reshape(m, c)
    w2 = np.concatenate((np.ones(nf), np.zeros(pad))).reshape(m, c)
    # evaluation elements: all of them at low frequency, then 1 % apart in frequency
    cycles0 = f0_hz / (df_hz * bpr)  # f * baseline at the first bin
    e_lin = np.arange(min(m, int(2 * CONTINUUM_MIN_ELEMENTS / CONTINUUM_HALF_WIDTH) + 1))
    hi_cycles = cycles0 + m
    start = max(cycles0 + e_lin[-1], 1.0)
    n_log = int(np.ceil(np.log(max(hi_cycles / start, 1.0)) / np.log1p(0.01))) + 1
    e_log = np.round(start * (1.01 ** np.arange(n_log)) - cycles0).astype(np.int64)
    e = np.unique(np.clip(np.concatenate((e_lin, e_log, [m - 1])), 0, m - 1))
    fe = f0_hz + df_hz * (e * c + 0.5 * (c - 1))
    half = np.maximum(CONTINUUM_MIN_ELEMENTS, CONTINUUM_HALF_WIDTH * fe / (df_hz * bpr))
    half = np.minimum(np.round(half).astype(np.int64), max(1, (m - 1) // 2))
    width = 2 * half + 1
    lo = np.clip(e - half, 0, np.maximum(m - width, 0))
    hi = np.minimum(lo + width, m)
    core = int(CONTINUUM_CORE_ELEMENTS)
    clo = np.clip(e - core, lo, hi)
    chi = np.clip(e + core + 1, lo, hi)
    xe = np.log(fe) - x0
    at = e * c + 0.5 * (c - 1)
    zero = np.zeros(1)
    sums = [np.concatenate((zero, np.cumsum(a.sum(axis=1)))) for a in (w2, xs * w2, xs * xs * w2)]
    s0, sx, sxx = ((q[hi] - q[lo]) - (q[chi] - q[clo]) for q in sums)
    s0 = np.maximum(s0, 1.0)
    xm = sx / s0
    vxx = np.maximum(sxx - sx * xm, 1e-300)
    var_e = _LOG_EXP_VAR * bpr * (1.0 / s0 + (xe - xm) ** 2 / vxx)
    bins = np.arange(nf, dtype=np.float64)
    var_log = np.interp(bins, at, var_e)
    at = at.astype(np.float64)
    split = np.searchsorted(bins, at)
    misfit_margin = MODEL_MISFIT_SIGMA * np.sqrt(var_log)
    grid = _LocalGrid(
        xs, lo, hi, clo, chi, s0, sx, vxx, xe, xm, at, bins, split, var_log, misfit_margin
    )
    for a in vars(grid).values():
        a.flags.writeable = False
    return grid


@numba.njit(cache=True, nogil=True)
def _element_sums(y, y0, xflat, start, stop, clip, previous, clip_log):  # pragma: no cover
    """Sums of ``v`` and ``x v`` over bins ``start:stop``: one element of a local-continuum pass;
    ``v = y - y0``, with ``clip`` ``v = min(y, previous + clip_log) - y0`` (NaN kept)."""
    s = 0.0
    sxy = 0.0
    for b in range(start, stop):
        yb = y[b]
        if clip:
            cap = previous[b] + clip_log
            if not (yb <= cap or yb != yb):  # np.minimum, NaN kept
                yb = cap
        v = yb - y0
        s += v
        sxy += xflat[b] * v
    return s, sxy


@numba.njit(cache=True, nogil=True)
def _local_passes(
    y, y0, clip_log, passes, offset, xs, lo, hi, clo, chi, s0, sx, vxx, xe, xm, at, bins, split, out
):  # pragma: no cover
    """The least-squares passes of ``local_continuum`` (its ``_LocalGrid``) into ``out``: each
    the line through ``yy - y0`` in each evaluation element's window less its core, evaluated
    there, plus ``y0``, interpolated linearly (as ``np.interp``) to the ``bins``; ``yy`` is ``y``,
    after the first pass ``min(y, previous + clip_log)``. Then ``offset`` is added.

    The element sums of ``y`` are taken once: a later pass resums only the elements holding an
    ordinate it clips (a few per spectrum: those above the previous continuum + ``clip_log``,
    found by one comparison per bin against the lower end of its interpolation interval), the
    others keep their sums, the same numbers; the continuum is interpolated to every bin only
    after the last pass. Non-finite ``y`` takes every pass in full (``_local_passes_full``)."""
    m, c = xs.shape
    nf = out.size
    xflat = xs.ravel()
    es = np.empty(m)
    esx = np.empty(m)
    finite = True
    for j in range(m):
        es[j], esx[j] = _element_sums(y, y0, xflat, j * c, min(j * c + c, nf), False, y, 0.0)
        finite = finite and np.isfinite(es[j]) and np.isfinite(esx[j])
    ws = es.copy()
    wsx = esx.copy()
    previous = np.empty(nf)  # the previous continuum, at the bins of the elements resummed
    cy = np.empty(m + 1)
    cxy = np.empty(m + 1)
    val = np.empty(lo.size)
    finite = finite and _local_values(
        ws, wsx, y0, lo, hi, clo, chi, s0, sx, vxx, xe, xm, cy, cxy, val
    )
    if not finite:
        _local_passes_full(
            y, y0, clip_log, passes, xs, lo, hi, clo, chi, s0, sx, vxx, xe, xm, at, bins, split, out
        )
        for i in range(nf):
            out[i] = out[i] + offset
        return
    last = at.size - 1
    changed = np.zeros(m, dtype=np.bool_)
    for _k in range(1, passes):
        # elements with an ordinate above the previous continuum + clip_log
        n_changed = 0
        for r in range(last + 2):
            if r == 0:
                a, e, f_lo, slope, x_a, f_a = 0, split[0], val[0], 0.0, 0.0, val[0]
            elif r == last + 1:
                a, e, f_lo, slope, x_a, f_a = split[last], nf, val[last], 0.0, 0.0, val[last]
            else:
                j = r - 1
                a, e = split[j], split[j + 1]
                f_lo = min(val[j], val[j + 1])
                slope = (val[j + 1] - val[j]) / (at[j + 1] - at[j])
                x_a, f_a = at[j], val[j]
            bound = f_lo - 1e-9 * (1.0 + abs(f_lo)) + clip_log
            above = 0
            for b in range(a, e):  # vectorised count; the rare bins found below
                above += y[b] >= bound
            if not above:
                continue
            for b in range(a, e):
                if y[b] >= bound:
                    if r == 0 or r == last + 1:
                        cap = f_a + clip_log
                    else:
                        cap = (slope * (bins[b] - x_a) + f_a) + clip_log
                    if y[b] > cap and not changed[b // c]:
                        changed[b // c] = True
                        n_changed += 1
        ws[:] = es
        wsx[:] = esx
        if n_changed:
            for j in range(m):
                if not changed[j]:
                    continue
                changed[j] = False
                stop = min(j * c + c, nf)
                for b in range(j * c, stop):
                    previous[b] = _interp_at(b, bins, at, val, split)
                ws[j], wsx[j] = _element_sums(y, y0, xflat, j * c, stop, True, previous, clip_log)
        _local_values(ws, wsx, y0, lo, hi, clo, chi, s0, sx, vxx, xe, xm, cy, cxy, val)
    _interp_split(bins, at, val, split, out)
    for i in range(nf):
        out[i] = out[i] + offset


@numba.njit(cache=True, nogil=True)
def _local_values(
    es, esx, y0, lo, hi, clo, chi, s0, sx, vxx, xe, xm, cy, cxy, val
):  # pragma: no cover - compiled
    """The fitted line of each evaluation element from the element sums ``es`` (of ``yy - y0``)
    and ``esx`` (of x (yy - y0)), into ``val``; False if a value is not finite."""
    m = es.size
    cy[0] = 0.0
    cxy[0] = 0.0
    for j in range(m):
        cy[j + 1] = cy[j] + es[j]
        cxy[j + 1] = cxy[j] + esx[j]
    finite = True
    for q in range(lo.size):
        sy = (cy[hi[q]] - cy[lo[q]]) - (cy[chi[q]] - cy[clo[q]])
        sxy = (cxy[hi[q]] - cxy[lo[q]]) - (cxy[chi[q]] - cxy[clo[q]])
        ym = sy / s0[q]
        slope = (sxy - sx[q] * ym) / vxx[q]
        val[q] = ym + slope * (xe[q] - xm[q]) + y0
        finite = finite and np.isfinite(val[q])
    return finite


@numba.njit(cache=True, nogil=True)
def _interp_at(i, x, xp, fp, split):  # pragma: no cover - compiled
    """``_interp_split``'s value at the single point ``x[i]`` (its interval by bisection)."""
    last = xp.size - 1
    if i < split[0]:
        return fp[0]
    if i >= split[last]:
        return fp[last]
    a, b = 0, last  # split[a] <= i < split[b]
    while b - a > 1:
        mid = (a + b) // 2
        if split[mid] <= i:
            a = mid
        else:
            b = mid
    slope = (fp[a + 1] - fp[a]) / (xp[a + 1] - xp[a])
    return slope * (x[i] - xp[a]) + fp[a]


@numba.njit(cache=True, nogil=True)
def _local_passes_full(
    y, y0, clip_log, passes, xs, lo, hi, clo, chi, s0, sx, vxx, xe, xm, at, bins, split, out
):  # pragma: no cover
    """``_local_passes`` without its shortcuts (each pass sums every bin), without the offset."""
    m, c = xs.shape
    nf = out.size
    xflat = xs.ravel()
    es = np.empty(m)
    esx = np.empty(m)
    cy = np.empty(m + 1)
    cxy = np.empty(m + 1)
    val = np.empty(lo.size)
    for k in range(passes):
        for j in range(m):
            es[j], esx[j] = _element_sums(
                y, y0, xflat, j * c, min(j * c + c, nf), k > 0, out, clip_log
            )
        _local_values(es, esx, y0, lo, hi, clo, chi, s0, sx, vxx, xe, xm, cy, cxy, val)
        _interp_split(bins, at, val, split, out)


@numba.njit(cache=True, nogil=True)
def _interp_split(x, xp, fp, split, out):  # pragma: no cover - compiled
    """``out = np.interp(x, xp, fp)`` for increasing ``x`` and ``xp``, given
    ``split = np.searchsorted(x, xp)`` (fixed by the grid): node by node, the same formula."""
    last = xp.size - 1
    for i in range(split[0]):
        out[i] = fp[0]
    for j in range(last):
        slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        a = xp[j]
        f = fp[j]
        lo, hi = split[j], split[j + 1]
        seg, xseg = out[lo:hi], x[lo:hi]  # slices: the loop vectorises (the same formula)
        for i in range(hi - lo):
            seg[i] = slope * (xseg[i] - a) + f
    for i in range(split[last], x.size):
        out[i] = fp[last]


@numba.njit(cache=True, nogil=True)
def _clip_candidates(p, x, xp, fp, split, clip):  # pragma: no cover - compiled
    """Bins whose ordinate ``p`` may reach ``clip`` times exp of ``np.interp(x, xp, fp)`` (at
    or above ``clip`` exp of the lower node of its interval, less 1e-9 in the log), and that
    interpolated log at each (the formula of ``_interp_split``). Returns (bins, log)."""
    n = x.size
    last = xp.size - 1
    idx = np.empty(n, dtype=np.int64)
    val = np.empty(n)
    k = 0
    bound = clip * np.exp(fp[0] - 1e-9)
    for i in range(split[0]):
        if p[i] >= bound:
            idx[k] = i
            val[k] = fp[0]
            k += 1
    for j in range(last):
        bound = clip * np.exp(min(fp[j], fp[j + 1]) - 1e-9)
        slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        a = xp[j]
        f = fp[j]
        for i in range(split[j], split[j + 1]):
            if p[i] >= bound:
                idx[k] = i
                val[k] = slope * (x[i] - a) + f
                k += 1
    bound = clip * np.exp(fp[last] - 1e-9)
    for i in range(split[last], n):
        if p[i] >= bound:
            idx[k] = i
            val[k] = fp[last]
            k += 1
    return idx[:k], val[:k]


MODEL_LINEAR_ELEMENTS = 24
"""Resolution elements binned one by one at the low end of the grid in ``fitted_continuum``
(where a red spectrum changes fastest); above them the bins grow by ``MODEL_BIN_STEP``."""
MODEL_BIN_STEP = 0.04
"""Fractional frequency width of the bins the continuum model is fitted on, above the lowest
``MODEL_LINEAR_ELEMENTS`` elements (the model is smooth on that scale)."""
MODEL_SLOPES = (1.0, 2.0)
"""Range of the model's red slope alpha: 2 is AR(1) and a random walk, 1-1.5 flicker and power
laws; a steeper knee would let a line at the lowest frequencies pass for red noise."""
MODEL_LEAVE_OUT_ELEMENTS = 16
"""The lowest resolution elements whose continuum is refitted with their own core left out."""
MODEL_SELECT_NLL = 4.0
"""The red model replaces plain white noise only when it lowers Whittle's -log likelihood by
more than this (a likelihood-ratio test of its 3 extra parameters at ~5 %): a white spectrum
then gets a continuum measured by all its ordinates, not a red part fitted to nothing."""
MODEL_LEAVE_OUT_CORE = 1
"""Elements each side of an element left out of its refit (more would leave out the red
evidence of a random walk at the lowest frequencies, and its refit would fall too low)."""
MODEL_LEAVE_OUT_RATIO = 4.0
"""Only elements holding an ordinate this many times the model are refitted without it."""
MODEL_MISFIT_SIGMA = 2.0
"""The local continuum replaces the fitted model where it lies this many of its own standard
deviations (of the log) above it: the model misfits there (a bump, a knee it cannot follow)."""
MODEL_VAR_FLOOR = 0.01
"""Variance added to the log of the fitted model (10 % in level): the allowance for a
spectrum that is not exactly of the model's form even where the misfit test passes."""


def _model_terms(f: np.ndarray, theta: np.ndarray):
    """log S and d log S / d theta of ``S = W + A / (1 + (f / f_k)^alpha)``,
    ``theta = (log W, log A, log f_k, alpha)``; the gradient has shape (4, f.size)."""
    lw, la, lk, alpha = theta
    w, a = np.exp(lw), np.exp(la)
    lr = np.log(f) - lk
    u = np.exp(np.clip(alpha * lr, -700.0, 700.0))
    red = a / (1.0 + u)
    s = w + red
    g = np.empty((4, f.size))
    g[0] = w / s
    g[1] = red / s
    dred = red * u / (1.0 + u) / s  # d log S / d (alpha * log(f / f_k)), negated
    g[2] = dred * alpha
    g[3] = -dred * lr
    return np.log(s), g


def fitted_continuum(
    power: np.ndarray, f0_hz: float, df_hz: float, bins_per_resolution: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A parametric noise spectrum fitted to a whole periodogram, and the variance of its log.

    ``S(f) = W + A / (1 + (f / f_k)^alpha)`` -- white noise (A = 0), AR(1) (alpha = 2), a
    random walk or power law (f_k below the grid) -- fitted by Whittle's likelihood
    ``sum(log S + P / S)`` over the independent ordinates (cf. Vaughan 2010, MNRAS 402, 307),
    on the powers averaged in bins (``MODEL_LINEAR_ELEMENTS`` single resolution elements, then
    ``MODEL_BIN_STEP`` wide in frequency). Two more fits clip ordinates above
    ``CONTINUUM_CLIP`` times the previous model (a line must not raise its own continuum). So
    the level at the lowest frequencies, where only a few elements lie, is constrained by the
    thousands of elements of the whole spectrum. Returns ``(continuum, var_log, theta)``:
    ``var_log`` is the delta-method variance of log S from the Fisher information of the fit.
    """
    log_s, var_log, theta = _fitted_log_continuum(power, f0_hz, df_hz, bins_per_resolution)
    return np.exp(log_s), var_log, theta


@dataclass(frozen=True)
class _ModelGrid:
    """What ``fitted_continuum`` needs of a frequency grid alone: its frequencies ``f``, the
    number of single-element bins ``n_lin`` (``c`` grid bins each), the bin ``edges``, bin sizes ``count``, mean
    frequencies ``fb`` and independent ordinates ``n_ind``; the frequencies ``xs`` the model is
    evaluated at and interpolated from in log f (``lxs``, ``lf``, ``split`` as
    ``_interp_split``; None: evaluated at every f)."""

    f: np.ndarray
    c: int
    n_lin: int
    edges: np.ndarray
    count: np.ndarray
    fb: np.ndarray
    n_ind: np.ndarray
    xs: np.ndarray | None
    lxs: np.ndarray | None
    lf: np.ndarray | None
    split: np.ndarray | None


@functools.lru_cache(maxsize=1)
def _model_grid(nf: int, f0_hz: float, df_hz: float, bpr: float) -> _ModelGrid:
    """The grid-only part of ``fitted_continuum`` (one per group: its k series share the grid)."""
    c = max(1, int(round(bpr)))
    f = f0_hz + df_hz * np.arange(nf)
    # bin edges: single elements at the low end, then bins MODEL_BIN_STEP wide in frequency
    lin = np.arange(0, min(nf, MODEL_LINEAR_ELEMENTS * c), c)
    start = lin[-1] + c if lin.size else 0
    edges = [lin]
    if start < nf:
        fe = f[start] * (1.0 + MODEL_BIN_STEP) ** np.arange(
            int(np.log(f[-1] / f[start]) / np.log1p(MODEL_BIN_STEP)) + 2
        )
        e = np.unique(np.clip(np.searchsorted(f, fe), start, nf))
        edges.append(e[e < nf])
    edges = np.unique(np.concatenate(edges))
    count = np.diff(np.append(edges, nf)).astype(np.float64)
    fb = np.add.reduceat(f, edges) / count
    n_ind = count / bpr  # independent ordinates per bin
    xs = lxs = lf = split = None
    if f.size > 4 * fb.size:  # see _model_and_var
        xs = np.unique(np.concatenate(([f[0]], fb, [f[-1]])))
        lxs, lf = np.log(xs), np.log(f)
        split = np.searchsorted(lf, lxs)
    grid = _ModelGrid(f, c, lin.size, edges, count, fb, n_ind, xs, lxs, lf, split)
    for a in vars(grid).values():
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return grid


def _fitted_log_continuum(
    power: np.ndarray, f0_hz: float, df_hz: float, bins_per_resolution: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fitted_continuum`` as (log continuum, var_log, theta)."""
    p = np.asarray(power, dtype=np.float64)
    nf = p.size
    bpr = max(float(bins_per_resolution), 1.0)
    grid = _model_grid(nf, float(f0_hz), float(df_hz), bpr)
    c, f, edges, count, fb = grid.c, grid.f, grid.edges, grid.count, grid.fb
    n_ind = grid.n_ind
    # w0: the median of the upper half of the positive ordinates over log 2 (a partition of a
    # copy: np.median's number)
    pos = p if nf and p.min() > 0 else p[p > 0]
    w0 = median_inplace(pos[pos.size // 2 :].copy()) / np.log(2.0) if pos.size else 1e-300
    w0 = max(float(w0), 1e-300)

    pbar = np.add.reduceat(p, edges) / count
    low = float(np.mean(pbar[: min(3, pbar.size)]))
    a0 = max(low - w0, 1e-3 * w0)
    half = np.flatnonzero(pbar < w0 + 0.5 * a0)
    fk0 = float(fb[half[0]]) if half.size else float(fb[-1])
    lf0, lf1 = np.log(fb[0]), np.log(fb[-1])
    bounds = [
        (np.log(w0) - 10.0, np.log(w0) + 10.0),
        (np.log(w0) - 25.0, np.log(w0) + 40.0),
        (lf0 - 3.0, lf1),
        MODEL_SLOPES,
    ]
    lo_b = np.array([b[0] for b in bounds], dtype=np.float64)
    hi_b = np.array([b[1] for b in bounds], dtype=np.float64)
    cold_starts = [
        np.array([np.log(w0), np.log(a0), np.clip(np.log(fk0), lf0, lf1), alpha0])
        for alpha0 in MODEL_SLOPES
    ]
    fits: dict[tuple, np.ndarray] = {}

    def fit(pbar, weight, start=None, warm_only=False):
        """Red model or white, whichever Whittle prefers by more than MODEL_SELECT_NLL
        (``warm_only``: the red model started from ``start`` only, for the leave-out refits).
        A fit of the same bins, weights and starts as an earlier one of this spectrum (a white
        spectrum with nothing to clip) is that one's result: the fits are deterministic."""
        cold = not (warm_only and start is not None)
        key = (pbar.tobytes(), weight.tobytes(), None if start is None else start.tobytes(), cold)
        known = fits.get(key)
        if known is not None:
            return known
        w_white = float(np.sum(weight * pbar) / max(np.sum(weight), 1e-300))
        nll_white = float(np.sum(weight * (np.log(w_white) + pbar / w_white)))
        starts = [start] if start is not None else []
        if cold:
            starts += cold_starts
        best, best_nll = None, np.inf
        for theta0 in starts:
            th, val = _whittle_fit(fb, pbar, weight, theta0, lo_b, hi_b)
            if val < best_nll:
                best, best_nll = th, val
        if nll_white - best_nll < MODEL_SELECT_NLL:
            lw = float(np.clip(np.log(w_white), *bounds[0]))
            best = np.array([lw, bounds[1][0], lf0, MODEL_SLOPES[0]])
        fits[key] = best
        return best

    theta = fit(pbar, n_ind)
    pbar_all = pbar
    for _ in range(CONTINUUM_PASSES - 1):
        if grid.xs is None:
            log_s = _model_and_var(f, fb, n_ind, theta, bounds, grid=grid, with_var=False)[0]
            clipped = np.minimum(p, CONTINUUM_CLIP * np.exp(log_s))
            pbar = np.add.reduceat(clipped, edges) / count
        else:
            # only ordinates that may exceed CONTINUUM_CLIP times the model are clipped: those
            # above it at the lower end of their interpolation interval (the model interpolated
            # there exactly as _model_and_var does); the others keep p, as np.minimum would
            log_nodes = _model_terms(grid.xs, theta)[0]
            idx, log_at = _clip_candidates(
                p, grid.lf, grid.lxs, log_nodes, grid.split, CONTINUUM_CLIP
            )
            if idx.size:
                clipped = p.copy()
                clipped[idx] = np.minimum(p[idx], CONTINUUM_CLIP * np.exp(log_at))
                pbar = np.add.reduceat(clipped, edges) / count
            else:
                pbar = pbar_all
        theta = fit(pbar, n_ind, theta if theta[1] > bounds[1][0] else None, warm_only=True)
    log_s, var_log = _model_and_var(f, fb, n_ind, theta, bounds, grid=grid)
    # the lowest elements, where a few ordinates weigh on the red part: each refitted with its
    # own core (+- CONTINUUM_CORE_ELEMENTS) left out -- a line there must not raise its own level
    core = int(MODEL_LEAVE_OUT_CORE)
    n_out_elements = min(MODEL_LEAVE_OUT_ELEMENTS, grid.n_lin - core)
    if n_out_elements <= 0:
        return log_s, var_log, theta
    end = min(n_out_elements * c, nf)
    # elements holding an ordinate a refit could make significant (one comparison for all:
    # a refit changes only its own element's log_s)
    hot = p[:end] > MODEL_LEAVE_OUT_RATIO * np.exp(log_s[:end])
    for e in range(n_out_elements):
        lo, hi = e * c, min((e + 1) * c, nf)
        if not hot[lo:hi].any():
            continue
        n_out = np.array(n_ind)
        n_out[max(0, e - core) : e + core + 1] = 0.0
        th = fit(pbar, n_out, theta if theta[1] > bounds[1][0] else None, warm_only=True)
        ls_e, v_e = _model_and_var(f[lo:hi], fb, n_out, th, bounds)
        log_s[lo:hi], var_log[lo:hi] = ls_e, v_e
    return log_s, var_log, theta


def _whittle_fit(fb, pbar, weight, theta0, lo, hi, iterations=40):
    """Fisher scoring of Whittle's -log likelihood ``sum(weight (log S + pbar / S))`` over the
    bins ``fb``, from ``theta0`` within the bounds ``lo``, ``hi`` (arrays of 4; steps halved
    until the likelihood rises). Returns (theta, -log likelihood). Compiled
    (``_whittle_fit_compiled``): nine series of a visit need ~70 of these small fits."""
    theta, val = _whittle_fit_compiled(
        np.ascontiguousarray(fb, dtype=np.float64),
        np.ascontiguousarray(pbar, dtype=np.float64),
        np.ascontiguousarray(weight, dtype=np.float64),
        np.asarray(theta0, dtype=np.float64),
        lo,
        hi,
        int(iterations),
    )
    return theta, float(val)


@numba.njit(cache=True, nogil=True)
def _whittle_terms(lfb, pbar, weight, theta, tail, limit, u, red, sv, q):  # pragma: no cover
    """-log likelihood at ``theta`` from the log bin frequencies ``lfb`` (the model of
    ``_model_terms``), keeping per bin ``u = (f / f_k)^alpha``, the red part, S and
    ``q = pbar / S``. Stops with +inf as soon as the partial sum plus ``tail`` (a lower bound
    of the remaining terms) exceeds ``limit``: the full sum would exceed it too."""
    w, a = np.exp(theta[0]), np.exp(theta[1])
    lk, alpha = theta[2], theta[3]
    total = 0.0
    for i in range(lfb.size):
        x = min(max(alpha * (lfb[i] - lk), -700.0), 700.0)
        ui = np.exp(x)
        ri = a / (1.0 + ui)
        si = w + ri
        ls = np.log(si)
        qi = pbar[i] * np.exp(-ls)
        u[i] = ui
        red[i] = ri
        sv[i] = si
        q[i] = qi
        total += weight[i] * (ls + qi)
        if total + tail[i + 1] > limit:
            return np.inf
    return total


@numba.njit(cache=True, nogil=True)
def _whittle_tail(pbar, weight, lo, hi):  # pragma: no cover - compiled
    """Lower bounds of the sums of the last terms of Whittle's -log likelihood whatever the
    model: ``tail[i] = sum(weight (log pbar + 1))`` over the bins from i (``log S + pbar / S``
    is smallest at S = pbar), and the margin that covers the rounding of the terms and sums
    (1e-9 of their magnitude: ~1e7 times the rounding of ~200 terms). None applies (tail -inf)
    when an ordinate is not positive or a weight not finite."""
    n = pbar.size
    tail = np.empty(n + 1)
    tail[n] = 0.0
    # |log S| within the bounds: W <= S <= W + A
    ls_max = max(abs(lo[0]), abs(hi[0]), abs(hi[1])) + 1.0
    scale = 0.0
    ok = True
    for i in range(n - 1, -1, -1):
        wi = weight[i]
        term = 0.0
        if wi != 0.0:
            ok = ok and pbar[i] > 0.0 and np.isfinite(pbar[i]) and np.isfinite(wi) and wi > 0.0
            if ok:
                lp = np.log(pbar[i])
                term = wi * (lp + 1.0)
                scale += wi * (abs(lp) + ls_max + 3.0)
        tail[i] = tail[i + 1] + term
    if not ok or not np.isfinite(scale):
        tail[:] = -np.inf
        scale = 0.0
    return tail, 1e-9 * scale


@numba.njit(cache=True, nogil=True)
def _whittle_fit_compiled(fb, pbar, weight, theta0, lo, hi, iterations):  # pragma: no cover
    """The loop of ``_whittle_fit`` (see there), compiled: the log frequencies taken once, the
    gradient of log S formed while summing the score and the Fisher information in one pass
    over the bins (each sum in bin order), and a line-search candidate's likelihood abandoned
    once it is bound to exceed the current one (``_whittle_terms``): the same steps, the same
    numbers as evaluating every candidate in full."""
    n = fb.size
    lfb = np.empty(n)
    for i in range(n):
        lfb[i] = np.log(fb[i])
    tail, margin = _whittle_tail(pbar, weight, lo, hi)
    theta = np.minimum(np.maximum(theta0, lo), hi)
    u, red, sv, q = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    u2, red2, sv2, q2 = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    val = _whittle_terms(lfb, pbar, weight, theta, tail, np.inf, u, red, sv, q)
    score = np.empty(4)
    fisher = np.empty((4, 4))
    d = np.empty(4)
    for _ in range(iterations):
        w = np.exp(theta[0])
        lk, alpha = theta[2], theta[3]
        s0 = s1 = s2 = s3 = 0.0
        f00 = f01 = f02 = f03 = f10 = f11 = f12 = f13 = 0.0
        f20 = f21 = f22 = f23 = f30 = f31 = f32 = f33 = 0.0
        for i in range(n):
            # d log S / d theta (as _model_terms)
            si = sv[i]
            ri = red[i]
            ui = u[i]
            g0 = w / si
            g1 = ri / si
            dred = ri * ui / (1.0 + ui) / si
            g2i = dred * alpha
            g3 = -dred * (lfb[i] - lk)
            wi = weight[i]
            r = q[i] - 1.0
            h0, h1, h2, h3 = g0 * wi, g1 * wi, g2i * wi, g3 * wi
            s0 += h0 * r
            s1 += h1 * r
            s2 += h2 * r
            s3 += h3 * r
            f00 += h0 * g0
            f01 += h0 * g1
            f02 += h0 * g2i
            f03 += h0 * g3
            f10 += h1 * g0
            f11 += h1 * g1
            f12 += h1 * g2i
            f13 += h1 * g3
            f20 += h2 * g0
            f21 += h2 * g1
            f22 += h2 * g2i
            f23 += h2 * g3
            f30 += h3 * g0
            f31 += h3 * g1
            f32 += h3 * g2i
            f33 += h3 * g3
        score[0], score[1], score[2], score[3] = s0, s1, s2, s3
        fisher[0, 0], fisher[0, 1], fisher[0, 2], fisher[0, 3] = f00, f01, f02, f03
        fisher[1, 0], fisher[1, 1], fisher[1, 2], fisher[1, 3] = f10, f11, f12, f13
        fisher[2, 0], fisher[2, 1], fisher[2, 2], fisher[2, 3] = f20, f21, f22, f23
        fisher[3, 0], fisher[3, 1], fisher[3, 2], fisher[3, 3] = f30, f31, f32, f33
        for k in range(4):
            d[k] = np.sqrt(max(fisher[k, k], 1e-300))
        scaled = fisher / np.outer(d, d)
        step = (np.linalg.pinv(scaled, 1e-9) @ (score / d)) / d
        t = 1.0
        accepted = False
        v2 = val
        cand = theta
        limit = val + margin
        for _ls in range(12):
            cand = np.minimum(np.maximum(theta + t * step, lo), hi)
            v2 = _whittle_terms(lfb, pbar, weight, cand, tail, limit, u2, red2, sv2, q2)
            if v2 <= val:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        done = val - v2 < 1e-4  # in units of log likelihood
        theta = cand
        val = v2
        u, u2 = u2, u
        red, red2 = red2, red
        sv, sv2 = sv2, sv
        q, q2 = q2, q
        if done:
            break
    return theta, val


def _model_and_var(f, fb, n_ind, theta, bounds, grid=None, with_var=True):
    """log S of the model at ``f`` and its delta-method variance from the Whittle Fisher
    information on the bins ``fb`` (parameters at a bound held fixed: a red part fitted to zero
    leaves its knee and slope undetermined, not uncertain). ``grid``: the ``_ModelGrid`` of
    ``f`` (its interpolation nodes, computed once); ``with_var=False``: log S only (var None)."""
    # evaluated at the bins (and the ends) and interpolated in log f: smooth on that scale
    if grid is not None and grid.xs is not None:
        xs, lx, lf, split = grid.xs, grid.lxs, grid.lf, grid.split
    elif f.size <= 4 * fb.size:
        xs, lx, lf = f, None, None
    else:
        xs = np.unique(np.concatenate(([f[0]], fb, [f[-1]])))
        lx, lf = np.log(xs), np.log(f)
        split = np.searchsorted(lf, lx)
    log_s, g = _model_terms(xs, theta)
    var_log = None
    if with_var:
        free = np.array(
            [lo + 1e-6 < t < hi - 1e-6 for t, (lo, hi) in zip(theta, bounds, strict=True)]
        )
        if theta[1] <= bounds[1][0] + 1e-6:
            free[1:] = False
        _ls, gb = _model_terms(fb, theta)
        gb = gb[free]
        fisher = (gb * n_ind) @ gb.T
        if free.any():
            d = np.sqrt(np.maximum(np.diag(fisher), 1e-300))
            # near-degenerate directions (a knee below the grid trades A for f_k) move log S
            # nowhere in the data: dropped, not given an unbounded variance
            cov = np.linalg.pinv(fisher / np.outer(d, d), rcond=1e-6) / np.outer(d, d)
        else:
            cov = np.zeros((0, 0))
        g = g[free]
        var_log = np.maximum(np.einsum("in,ij,jn->n", g, cov, g), 0.0)
    if lf is None:
        return log_s, var_log
    out = np.empty(lf.size)
    _interp_split(lf, lx, log_s, split, out)
    if var_log is not None:
        v = np.empty(lf.size)
        _interp_split(lf, lx, var_log, split, v)
        var_log = v
    return out, var_log


def noise_continuum(
    power: np.ndarray, f0_hz: float, df_hz: float, bins_per_resolution: float
) -> tuple[np.ndarray, np.ndarray]:
    """The continuum each ordinate is judged against, and the variance of its log.

    The fitted model of the whole spectrum (``fitted_continuum``, its log variance plus
    ``MODEL_VAR_FLOOR``), except where the local continuum (``local_continuum``) lies more than
    ``MODEL_MISFIT_SIGMA`` of its own standard deviations above the model: there the model
    misfits and the local continuum, with its own variance, is the more conservative measure.
    """
    log_model, var_model, _theta = _fitted_log_continuum(power, f0_hz, df_hz, bins_per_resolution)
    log_local, var_local = _local_log_continuum(power, f0_hz, df_hz, bins_per_resolution)
    margin = _local_grid(
        np.asarray(power).size, float(f0_hz), float(df_hz), float(bins_per_resolution)
    ).misfit_margin
    _choose_continuum(log_local, margin, var_local, log_model, var_model, MODEL_VAR_FLOOR)
    return np.exp(log_model), var_model


@numba.njit(cache=True, nogil=True)
def _choose_continuum(
    log_local, margin, var_local, log_model, var_model, floor
):  # pragma: no cover
    """``noise_continuum``'s choice per bin, in place into the model's arrays: the local
    continuum where ``log_local - margin > log_model`` (NaN: the model), else the model with
    ``floor`` added to its log variance."""
    for i in range(log_model.size):
        if log_local[i] - margin[i] > log_model[i]:
            log_model[i] = log_local[i]
            var_model[i] = var_local[i]
        else:
            var_model[i] = var_model[i] + floor


def _single_p(ratio: np.ndarray, var_log: np.ndarray) -> np.ndarray:
    """Chance that one noise ordinate exceeds ``ratio`` times a continuum whose log has variance
    ``var_log``: ``(1 + r v)^(-1/v)``, the F(2, 2/v) tail (-> exp(-r) for an exact continuum)."""
    v = np.maximum(np.asarray(var_log, dtype=np.float64), 1e-12)
    r = np.maximum(np.asarray(ratio, dtype=np.float64), 0.0)
    return np.exp(-np.log1p(r * v) / v)


def continuum_fap(
    ratio: np.ndarray, var_log: np.ndarray, time_s: np.ndarray, fmax_hz: float
) -> np.ndarray:
    """False-alarm probability of peaks ``ratio`` times their local continuum, over the grid.

    Baluev's bound with the single-frequency chance of a noise ordinate taken against the local
    continuum (``_single_p``) instead of the white-noise variance:
    ``FAP = 1 - (1 - p) exp(-W p sqrt(-log p))``, ``W = fmax sqrt(4 pi var(t))`` the effective
    number of independent frequencies (as astropy's ``fap_baluev``). On white noise this is
    Baluev's FAP; on coloured noise each frequency is judged against its own noise level.
    """
    p = np.clip(_single_p(ratio, var_log), 1e-300, 1.0)
    t = np.asarray(time_s, dtype=np.float64)
    w = independent_frequencies(t, fmax_hz)
    tau = w * p * np.sqrt(np.maximum(-np.log(p), 0.0))
    return np.clip(-np.expm1(np.log1p(-np.minimum(p, 1 - 1e-16)) - tau), 0.0, 1.0)


def periodogram_series(
    time_s: np.ndarray,
    values: np.ndarray,
    *,
    fmin_hz: float | None = None,
    fmax_hz: float | None = None,
    samples_per_peak: float = 5,
    detrend: DetrendMethod = "median",
    detrend_window_s: float | None = None,
    backend: Backend = "fft",
    n_peaks: int = 5,
    names: Sequence[str] | None = None,
    significance: Significance = "continuum",
) -> PeriodogramResult:
    """Lomb-Scargle periodograms of k parameters sampled at the same times.

    Parameters
    ----------
    time_s : (n,) sample times in seconds (any origin; e.g. ``time_mjd * 86400``).  Sorted here
        if needed.
    values : (k, n) or (n,) values; NaN marks a masked sample (dropped from that series only).
    fmin_hz : lowest frequency; default 1 / baseline.
    fmax_hz : highest frequency; default the Nyquist frequency of the median cadence
        (0.5 / median spacing; 7.8 Hz at 64 ms), not astropy's 5x the mean-rate "Nyquist".
    samples_per_peak : grid spacing is ``1 / (samples_per_peak * baseline)`` (the ``"fft"``
        path rounds it down to ``1 / (M * dt)``, M a fast FFT length; the result's ``f0_hz``,
        ``df_hz`` and ``nf`` give the grid used).
    detrend : ``"median"`` subtracts the median of each contiguous segment (segments split at
        gaps longer than 10 cadences), or with ``detrend_window_s`` a running median over that
        many seconds (a high-pass filter: removes periods longer than about the window);
        ``"linear"`` subtracts a straight line per segment; ``"none"`` leaves the data alone.
        The periodogram then fits and removes the mean (astropy's ``fit_mean=True``).
    backend : ``"fft"`` (default: the exact FFT periodogram ``fft_lombscargle`` when the times
        lie on one cadence grid -- runs separated by any gaps, each within
        ``FFT_TIME_TOLERANCE`` cadences of its grid, at most ``FFT_MAX_OFFSETS`` distinct
        sub-cadence run offsets -- else nifty-ls; the result's ``backend`` says which ran; the
        grid is ``m / (M * dt)``, from the first point >= ``fmin_hz`` to the last < Nyquist or
        <= ``fmax_hz``), ``"nifty"`` (nifty-ls, all k series in one batched call) or
        ``"astropy"`` (astropy ``LombScargle.power`` per series, method ``"auto"``; slow, for
        comparison).
    n_peaks : peaks listed per series.
    names : labels of the k series (default ``"0"``, ``"1"``, ...).
    significance : what ``fap`` is relative to: ``"continuum"`` the noise continuum of each
        series (``noise_continuum``: a model fitted to the whole spectrum, the local continuum
        where the model misfits), ``"local"`` the local continuum alone (``local_continuum``),
        ``"white"`` white noise (Baluev).

    Raises
    ------
    ValueError : unknown ``detrend`` / ``backend`` (the message lists the valid values), shape
        mismatch, a series with fewer than ``MIN_POINTS`` finite samples, or an empty grid.
    """
    check_option("backend", backend, BACKENDS)
    check_option("significance", significance, SIGNIFICANCES)
    check_option("detrend", detrend, DETREND_METHODS)
    if not samples_per_peak > 0:
        raise ValueError(f"samples_per_peak must be > 0, got {samples_per_peak}")
    if int(n_peaks) < 0:
        raise ValueError(f"n_peaks must be >= 0, got {n_peaks}")
    t = np.asarray(time_s, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ValueError(f"values must have shape (n,) or (k, n), got {y.shape}")
    y = np.atleast_2d(y)
    if t.ndim != 1 or t.shape[0] != y.shape[1]:
        raise ValueError(f"time_s has shape {t.shape} but values have {y.shape[1]} samples")
    k = y.shape[0]
    if names is None:
        names = [str(i) for i in range(k)]
    names = tuple(str(s) for s in names)
    if len(names) != k:
        raise ValueError(f"{len(names)} names given for {k} series")

    keep = np.isfinite(t) & np.isfinite(y).any(axis=0)
    t, y = t[keep], y[:, keep]
    if t.size > 1 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, y = t[order], y[:, order]
    finite = np.isfinite(y)
    counts = finite.sum(axis=1)
    for name, c in zip(names, counts, strict=True):
        if c < MIN_POINTS:
            raise ValueError(
                f"series {name!r} has {int(c)} finite samples; at least {MIN_POINTS} are needed"
            )
    t0 = float(t[0])
    t = t - t0
    baseline = float(t[-1])
    cadence = median_cadence_s(t)
    if not baseline > 0 or not cadence > 0:
        raise ValueError("time_s must span a positive baseline with distinct sample times")

    y = detrend_series(t, y, method=detrend, window_s=detrend_window_s)

    df = 1.0 / (samples_per_peak * baseline)
    f0 = 1.0 / baseline if fmin_hz is None else float(fmin_hz)
    f1 = 0.5 / cadence if fmax_hz is None else float(fmax_hz)
    if not (0 < f0 < f1):
        raise ValueError(f"need 0 < fmin_hz < fmax_hz, got fmin_hz={f0}, fmax_hz={f1}")
    nf = 1 + int(np.floor((f1 - f0) / df + 1e-9))
    if nf < 3:
        raise ValueError(
            f"frequency grid {f0:g}..{f1:g} Hz with spacing {df:g} Hz has {nf} points; "
            "at least 3 are needed (widen the range or raise samples_per_peak)"
        )
    f_last = f0 + df * (nf - 1)

    all_finite = bool(finite.all())
    spp = samples_per_peak
    grid = _regular_grid(t, cadence) if backend == "fft" else None
    if grid is not None and not _fft_pays(grid, finite):
        grid = None
    if grid is not None:
        m_fft, m0, nf = _fft_frequencies(
            grid.dt, baseline, samples_per_peak, f0, f1, fmax_hz, nearest_start=fmin_hz is None
        )
        df = 1.0 / (m_fft * grid.dt)
        f0, f_last = m0 * df, (m0 + nf - 1) * df
        spp = 1.0 / (df * baseline)  # the grid's points per resolution element
        power = fft_lombscargle(grid, y, finite, m_fft, m0, nf)
    elif backend in ("fft", "nifty"):
        backend = "nifty"
        import nifty_ls

        if all_finite:
            yy, dy = y, None
        else:
            # A masked sample gets infinite uncertainty, i.e. zero weight: same as dropping it.
            yy = np.where(finite, y, 0.0)
            dy = np.where(finite, 1.0, np.inf)
        res = nifty_ls.lombscargle(
            t, yy, dy=dy, fmin=f0, fmax=f_last, Nf=nf, normalization="standard"
        )
        power = np.atleast_2d(np.asarray(res.power, dtype=np.float64))
    else:
        from astropy.timeseries import LombScargle

        freq = f0 + df * np.arange(nf)
        power = np.empty((k, nf))
        for i in range(k):
            ok = finite[i]
            power[i] = LombScargle(t[ok], y[i, ok], normalization="standard").power(
                freq, method="auto", assume_regular_frequency=True
            )

    rows: dict[str, list] = {c: [] for c in _PEAK_COLUMNS}
    # float32 (a 4M-frequency group holds k of each); the FAPs are computed from these values
    continuum = np.empty((k, nf), dtype=np.float32) if significance != "white" else None
    continuum_var = np.empty((k, nf), dtype=np.float32) if significance != "white" else None
    for i, name in enumerate(names):
        ok = finite[i]
        if significance != "white":
            measure = noise_continuum if significance == "continuum" else local_continuum
            cont, var_log = measure(power[i], f0, df, spp)
            continuum[i] = cont
            continuum_var[i] = var_log
            # the stored (float32) values, at the local maxima only: the peaks are among them
            cand = local_maxima(power[i])
            cont = continuum[i, cand].astype(np.float64)
            var_log = continuum_var[i, cand].astype(np.float64)
            ratio = power[i, cand] / cont
            # rank by the single-frequency chance against the continuum (-log p; ~ ratio)
            score = np.log1p(ratio * var_log) / np.maximum(var_log, 1e-12)
            idx = find_peaks(
                power[i], int(n_peaks), spp, order=score, envelope=ratio, candidates=cand
            )
            at = np.searchsorted(cand, idx)
            fap = continuum_fap(ratio[at], var_log[at], t[ok], f_last)
            cont_pk = cont[at]
        else:
            idx = find_peaks(power[i], int(n_peaks), spp)
            fap = None
            cont_pk = np.full(idx.size, np.nan)
        pk = power[i, idx]
        fap_white = _baluev_fap(t[ok], pk, f_last)
        freq = f0 + df * idx
        rows["series"] += [name] * idx.size
        rows["rank"] += list(range(1, idx.size + 1))
        rows["frequency_hz"] += freq.tolist()
        rows["period_s"] += (1.0 / freq).tolist()
        rows["power"] += pk.tolist()
        rows["fap"] += (fap_white if fap is None else fap).tolist()
        rows["continuum"] += cont_pk.tolist()
        rows["fap_white"] += fap_white.tolist()
    peaks = pl.DataFrame(rows, schema=_PEAK_COLUMNS)
    return PeriodogramResult(
        f0_hz=f0,
        df_hz=df,
        nf=nf,
        power=power,
        peaks=peaks,
        names=names,
        n_points=tuple(int(c) for c in counts),
        baseline_s=baseline,
        cadence_s=cadence,
        detrend=detrend,
        backend=backend,
        t0_s=t0,
        significance=significance,
        continuum=continuum,
        continuum_var_log=continuum_var,
    )


_PEAK_COLUMNS = {
    "series": pl.String,
    "rank": pl.Int32,
    "frequency_hz": pl.Float64,
    "period_s": pl.Float64,
    "power": pl.Float64,
    "fap": pl.Float64,
    "continuum": pl.Float64,
    "fap_white": pl.Float64,
}


FFT_MAX_OFFSETS = 16
"""Most distinct sub-cadence run offsets the ``"fft"`` backend sums (one FFT per series each);
more and it falls back to nifty-ls."""
FFT_TIME_TOLERANCE = 1e-4
"""Largest distance of a sample time from its run's grid, in cadences, for the ``"fft"`` backend
(MJD x 86400 in float64 is good to ~1 us = 1.6e-5 of 64 ms); beyond it, nifty-ls."""


@dataclass(frozen=True)
class _RegularGrid:
    """Sample times as ``phase[c] + index * dt`` (index int64 >= 0, offset class c)."""

    dt: float
    index: np.ndarray
    offset_class: np.ndarray
    phase: np.ndarray


def _regular_grid(t: np.ndarray, cadence: float) -> _RegularGrid | None:
    """Write sorted times (s, from 0) as runs on one grid of step ``dt``, or None if they are not.

    A run is a stretch whose spacings are whole multiples of the cadence; a spacing that is not
    starts a new run.  ``dt`` is fitted over all runs; runs whose origins differ by a whole number
    of ``dt`` share an offset class.  None when some time is further than ``FFT_TIME_TOLERANCE``
    cadences from its grid point or there are more than ``FFT_MAX_OFFSETS`` classes.
    """
    if t.size < 2 or not cadence > 0:
        return None
    tol = FFT_TIME_TOLERANCE
    steps = np.diff(t) / cadence
    whole = np.rint(steps)
    breaks = (np.abs(steps - whole) > 100 * tol) | (whole < 1)
    run = np.concatenate(([0], np.cumsum(breaks)))
    starts = np.flatnonzero(np.concatenate(([True], breaks)))
    ends = np.concatenate((starts[1:], [t.size])) - 1
    spans = t[ends] - t[starts]
    n_steps = np.rint(spans / cadence)
    if n_steps.sum() < 1:
        return None
    dt = float(spans.sum() / n_steps.sum())  # total span over total steps of all runs
    local = np.rint((t - t[starts][run]) / dt)
    resid = t - t[starts][run] - local * dt
    origin = t[starts] + np.bincount(run, resid) / np.bincount(run)  # centre each run on its grid
    whole_origin = np.rint(origin / dt)
    frac = origin - whole_origin * dt  # in [-dt/2, dt/2]
    order = np.argsort(frac, kind="stable")
    new_class = np.concatenate(([False], np.diff(frac[order]) > tol * dt))
    cls_sorted = np.cumsum(new_class)
    n_class = int(cls_sorted[-1]) + 1
    if n_class > FFT_MAX_OFFSETS:
        return None
    run_class = np.empty_like(cls_sorted)
    run_class[order] = cls_sorted
    phase = np.bincount(run_class, frac) / np.bincount(run_class)
    index = (whole_origin[run] + local).astype(np.int64)
    offset_class = run_class[run]
    if np.max(np.abs(t - phase[offset_class] - index * dt)) > tol * dt:
        return None
    shift = int(index.min())  # indices from 0 (phase absorbs the rest)
    return _RegularGrid(dt, index - shift, offset_class, phase + shift * dt)


def _fold(index: np.ndarray, values: np.ndarray, m: int) -> np.ndarray:
    """Zero-filled length-``m`` grid holding ``values`` at ``index mod m`` (summed)."""
    return np.bincount(index % m, weights=values, minlength=m)


def _rfft_at(spectrum: np.ndarray, start: int, count: int, step: int, m: int) -> np.ndarray:
    """Length-m DFT at ``start + step * arange(count)`` from the rfft (last axis) of real grids.

    X[m - j] = conj(X[j]) for real input; plain slices where the indices allow.
    """
    half = m // 2
    stop = start + step * (count - 1)
    if 0 <= start and stop <= half:
        return spectrum[..., start : stop + 1 : step].copy()
    if half < start and stop < m:
        end = m - stop - 1 if m - stop > 0 else None
        return np.conjugate(spectrum[..., m - start : end : -step])
    j = (start + step * np.arange(count, dtype=np.int64)) % m
    flip = j > half
    out = spectrum[..., np.where(flip, m - j, j)]
    np.conjugate(out, out=out, where=flip)
    return out


FFT_COST_RATIO = 3.5
"""The ``"fft"`` backend runs when offset classes x (series + distinct masks) FFTs cost no more
than this many nifty-ls transforms per series (measured: one length-M FFT row costs ~1/3.8 of
nifty-ls per series at the same grid); else nifty-ls, which then is as fast or faster."""


FFT_DIRECT_MISSING = 64
"""A series missing at most this many of the unit's samples shares the all-samples window: its
own window is that one minus direct sums over its missing samples (``_missing_sums``, ~0.2 ms per
sample at 44k frequencies, against ~3 ms for a window row of its own). Spike masks leave a few
per series, so a unit needs one window row per offset class instead of one per mask."""


def _window_masks(finite: np.ndarray) -> tuple[np.ndarray, int]:
    """Which series use the shared all-samples window (few missing samples), and how many
    distinct masks the others need (one window row each)."""
    shared = (~finite).sum(axis=1) <= FFT_DIRECT_MISSING
    own = len({np.packbits(row).tobytes() for row in finite[~shared]})
    return shared, own


def _fft_pays(grid: _RegularGrid, finite: np.ndarray) -> bool:
    """Whether the FFT path is expected to beat nifty-ls (``FFT_COST_RATIO``)."""
    k = finite.shape[0]
    shared, own = _window_masks(finite)
    masks = own + int(shared.any())
    return grid.phase.size * (k + masks) <= FFT_COST_RATIO * k


@numba.njit(cache=True, nogil=True)
def _missing_sums(tau, df, m0, nf, out1, out2):  # pragma: no cover - compiled
    """out1[m] += sum_k e^{-i w_m tau_k}, out2[m] += sum_k e^{-2i w_m tau_k}, w_m = 2 pi (m0+m) df.

    By rotation within blocks of 256 frequencies, re-seeded exactly at each block start (the
    rounding of the recurrence stays ~1e-13)."""
    block = 256
    for k in range(tau.size):
        step = np.exp(-2j * np.pi * df * tau[k])
        step2 = step * step
        for b0 in range(0, nf, block):
            z = np.exp(-2j * np.pi * (m0 + b0) * df * tau[k])
            z2 = z * z
            for j in range(b0, min(b0 + block, nf)):
                out1[j] += z
                out2[j] += z2
                z *= step
                z2 *= step2


FFT_BATCH_BYTES = 64 * 2**20
"""Work memory of one batch of FFT rows in ``fft_lombscargle`` (rows share each transform call,
which pocketfft vectorises; a long unit falls to one row at a time)."""


def fft_lombscargle(
    grid: _RegularGrid, y: np.ndarray, finite: np.ndarray, m_fft: int, m0: int, nf: int
) -> np.ndarray:
    """Exact floating-mean Lomb-Scargle powers (standard normalisation) by FFT, shape (k, nf).

    Frequencies ``(m0 + arange(nf)) / (m_fft * dt)``; ``y`` (k, n) with masked samples (where
    ``finite`` is False) given zero weight.  Every sum the generalised periodogram needs
    (Zechmeister & Kuerster 2009) is a DFT of the zero-filled grid of weights or weighted values,
    times the phase of the offset class; the double-frequency window sums are the weights' DFT
    at 2m.  Series with the same mask share the window sums.  Rows (windows, then the series of
    that mask) are transformed in batches of ``FFT_BATCH_BYTES``.
    """
    from scipy import fft as sfft

    k = y.shape[0]
    if grid.phase.size == 1:
        classes: list = [None]  # all samples
    else:
        classes = [np.flatnonzero(grid.offset_class == c) for c in range(grid.phase.size)]
    # grid index of each sample, folded into the FFT length (exact: the DFT is m_fft-periodic)
    index_mod = [(grid.index if sel is None else grid.index[sel]) % m_fft for sel in classes]
    distinct = [bool(np.all(np.diff(index) > 0)) for index in index_mod]  # else summed
    # a shift of all times changes no power: the first class is the time origin
    rel_phase = grid.phase - grid.phase[0]
    freq = np.arange(m0, m0 + nf) / (m_fft * grid.dt) if len(classes) > 1 else None
    cache_phase = len(classes) * nf <= 4_000_000  # else recomputed per use (memory)
    phases: dict[tuple[int, int], np.ndarray] = {}

    def rotate(z: np.ndarray, c: int, mult: int) -> None:
        """z *= e^{-i mult w phase_c} (the run origins of class c), row by row."""
        if rel_phase[c] == 0.0:
            return
        p = phases.get((c, mult))
        if p is None:
            p = np.exp(-2j * np.pi * mult * rel_phase[c] * freq)
            if cache_phase:
                phases[(c, mult)] = p
        z *= p

    def dft(rows: np.ndarray, mult: int, double_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """sum_k rows_k e^{-i w t_k} (R, nf), and e^{-2i w t_k} for the first double_rows."""
        n_rows = rows.shape[0]
        total = total2 = None
        for c, (sel, index) in enumerate(zip(classes, index_mod, strict=True)):
            vals = rows if sel is None else rows[:, sel]
            if distinct[c]:
                folded = np.zeros((n_rows, m_fft))
                folded[:, index] = vals
            else:
                flat = (index[None, :] + m_fft * np.arange(n_rows)[:, None]).ravel()
                folded = np.bincount(flat, vals.ravel(), n_rows * m_fft).reshape(n_rows, -1)
            spec = sfft.rfft(folded, axis=-1, workers=1)
            del folded, vals
            z = _rfft_at(spec, mult * m0, nf, mult, m_fft)
            rotate(z, c, mult)
            if total is None:
                total = z
            else:
                total += z
            if double_rows:
                z = _rfft_at(spec[:double_rows], 2 * m0, nf, 2, m_fft)
                rotate(z, c, 2)
                if total2 is None:
                    total2 = z
                else:
                    total2 += z
        return total, total2

    # rows in mask order: the mask's window, then its series. Series missing few samples share
    # the all-samples window (key b"shared"), corrected below by direct sums over what they miss
    shared, _ = _window_masks(finite)
    groups: dict[bytes, list[int]] = {}
    for i in range(k):
        key = b"shared" if shared[i] else np.packbits(finite[i]).tobytes()
        groups.setdefault(key, []).append(i)
    tau = grid.index * grid.dt + rel_phase[grid.offset_class]  # s, the times the DFTs use
    df_grid = 1.0 / (m_fft * grid.dt)  # Hz, the grid's spacing
    # (series whose mask, -1) is that mask's window row; (i, i) is series i
    jobs = [job for g in groups.values() for job in [(g[0], -1)] + [(i, i) for i in g]]
    per_row = 8 * (2 * m_fft + 6 * nf) + 8 * y.shape[1]
    batch = max(1, int(FFT_BATCH_BYTES // per_row))
    power = np.empty((k, nf))
    window = None
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        rows = np.empty((len(chunk), y.shape[1]))
        yy = np.zeros(len(chunk))
        for r, (i, series) in enumerate(chunk):
            ok = finite[i]
            w = ok / ok.sum()
            if series < 0:
                rows[r] = 1.0 if shared[i] else w  # the shared window: all samples, unscaled
            else:
                yi = np.where(ok, y[i], 0.0)
                # centred, so the mean terms drop out (sums, not np.dot: BLAS threads stall)
                yi = np.where(ok, yi - (w * yi).sum(), 0.0)
                yy[r] = (w * yi * yi).sum()
                rows[r] = w * yi
        # windows first in each chunk for the double-frequency sums: reorder rows
        win = [r for r, (_, s) in enumerate(chunk) if s < 0]
        ser = [r for r, (_, s) in enumerate(chunk) if s >= 0]
        z1, z2 = dft(rows[win + ser], 1, len(win))
        del rows
        pos = {r: j for j, r in enumerate(win + ser)}
        for r, (i, series) in enumerate(chunk):
            z = z1[pos[r]]
            if series < 0:
                # this mask's window DFTs at w and 2w: unscaled for the shared window (a series
                # then subtracts what it misses and divides by its count), else scaled weights
                window = (z, z2[pos[r]], 1.0 if not shared[i] else None)
                continue
            s1, s2, count = window
            missing = _NO_SUMS
            if count is None:  # the shared all-samples window
                count = float(finite[series].sum())
                lost = np.flatnonzero(~finite[series])
                if lost.size:
                    missing = np.zeros((2, nf), dtype=np.complex128)
                    _missing_sums(tau[lost], df_grid, m0, nf, missing[0], missing[1])
            _fft_power(z, s1, s2, missing, count, yy[r], power[series])
        del z1, z2
    return power


_NO_SUMS = np.zeros((2, 0), dtype=np.complex128)
"""No direct sums to subtract (a series with the window of its own mask, or missing nothing)."""


@numba.njit(cache=True, nogil=True)
def _fft_power(z, s1, s2, missing, count, yy, out):  # pragma: no cover - compiled
    """Floating-mean Lomb-Scargle power of one series from its weighted-value DFT ``z`` and its
    window's DFTs at w (``s1``) and 2w (``s2``), in one pass (no temporaries per series).

    The window is ``(s - missing) / count``: the all-samples window minus the direct sums over the
    samples the series misses (``missing[0]``, ``missing[1]``; empty: none), over its count; a
    mask's own window is given scaled (count 1). Its mean-subtracted sums give the coefficients
    with power ``= (a YC^2 + b YS^2 - ab YC YS) / YY``: ``a = SS/D``, ``b = CC/D``,
    ``ab = 2 CS/D`` (the series' YS is taken as +Im z, so the cross term's sign flips).  Where one
    term vanishes on every sample (the sine at the Nyquist frequency of one regular run), the
    least-squares fit is of the other term alone."""
    has_missing = missing.shape[1] > 0
    for j in range(z.size):
        w1 = s1[j]
        w2 = s2[j]
        if has_missing:
            w1 = w1 - missing[0, j]
            w2 = w2 - missing[1, j]
        c = w1.real / count
        s = -(w1.imag / count)
        c2 = w2.real / count
        s2j = w2.imag / count
        cc = 0.5 * (1.0 + c2) - c * c
        ss = 0.5 * (1.0 - c2) - s * s
        cs = -0.5 * s2j - c * s
        det = cc * ss - cs * cs
        if det <= 1e-10 * (cc + ss) ** 2:
            a = 0.0
            b = 0.0
            ab = 0.0
            if cc >= ss and cc > 1e-12:
                a = 1.0 / cc
            elif cc < ss and ss > 1e-12:
                b = 1.0 / ss
        else:
            a = ss / det
            b = cc / det
            ab = -2.0 * cs / det
        if yy > 0:
            yc = z[j].real
            ys = z[j].imag
            out[j] = (a * yc * yc + b * ys * ys - ab * yc * ys) / yy
        else:
            out[j] = 0.0


def _fft_frequencies(
    dt: float,
    baseline: float,
    samples_per_peak: float,
    f0: float,
    f1: float,
    fmax_hz,
    *,
    nearest_start: bool = False,
) -> tuple[int, int, int]:
    """FFT length M and the grid ``(m0 + arange(nf)) / (M * dt)`` covering ``f0 .. f1`` (Hz).

    M is a fast FFT length >= ``samples_per_peak * baseline / dt`` (so the spacing is at most the
    one asked for); m0 the first point >= ``f0`` (``nearest_start``: the point nearest ``f0``,
    for the default 1 / baseline: the grid then starts where today's does, within a fraction
    of a percent, and the resolution elements of the continuum fall where they did); the last
    point <= ``f1``, and strictly below the Nyquist frequency ``1 / (2 dt)`` when ``fmax_hz`` is
    not given or is that frequency (the sine term vanishes there on one regular run).
    """
    from scipy.fft import next_fast_len

    # 11-smooth: within ~0.1 % of the spacing asked for, as fast as 5-smooth at these sizes
    m_fft = int(next_fast_len(max(4, int(round(samples_per_peak * baseline / dt)))))
    df = 1.0 / (m_fft * dt)
    m0 = max(1, int(np.rint(f0 / df)) if nearest_start else int(np.ceil(f0 / df - 1e-9)))
    m1 = int(np.floor(f1 / df + 1e-9))
    if fmax_hz is None or f1 * dt <= 0.5 * (1 + 1e-6):  # up to (not at) Nyquist
        m1 = min(m1, (m_fft - 1) // 2)
    nf = m1 - m0 + 1
    if nf < 3:
        raise ValueError(
            f"frequency grid {f0:g}..{f1:g} Hz with spacing {df:g} Hz has {nf} points; "
            "at least 3 are needed (widen the range or raise samples_per_peak)"
        )
    return m_fft, m0, nf


_LINE_SCHEMA = {
    "line_id": pl.Int32,
    "frequency_hz": pl.Float64,
    "period_s": pl.Float64,
    "n_stars": pl.Int32,
    "n_peaks": pl.Int32,
    "frequency_min_hz": pl.Float64,
    "frequency_max_hz": pl.Float64,
    "median_power": pl.Float64,
    "gs_ids": pl.List(pl.String),
}


def _require_columns(df: pl.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {df.columns}")


def instrumental_lines(
    peaks_by_star: pl.DataFrame,
    *,
    rel_tol: float = 0.01,
    min_stars: int = 3,
    max_fap: float | None = 0.01,
) -> pl.DataFrame:
    """Frequencies that recur in the periodogram peaks of at least ``min_stars`` distinct stars.

    ``peaks_by_star`` has columns gs_id, frequency_hz, power, fap (one row per peak, any number
    of visits and parameters per star).  Peaks with ``fap > max_fap`` are ignored (noise peaks of
    many stars would otherwise crowd every high frequency).

    Greedy clustering in log frequency: for every peak count the distinct stars with a peak
    within ``rel_tol * f`` of it; the peak with most stars (then highest power) seeds a line made
    of the peaks in its window; those peaks are removed and the counts recomputed; repeat while a
    window holds ``min_stars`` stars.  Returns one row per line: line_id, frequency_hz (median of
    its peaks), period_s, n_stars, n_peaks, frequency_min_hz, frequency_max_hz, median_power,
    gs_ids; sorted by n_stars, then frequency.
    """
    _require_columns(peaks_by_star, ["gs_id", "frequency_hz", "power", "fap"], "peaks_by_star")
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be > 0, got {rel_tol}")
    df = peaks_by_star.select(
        pl.col("gs_id").cast(pl.String),
        pl.col("frequency_hz").cast(pl.Float64),
        pl.col("power").cast(pl.Float64),
        pl.col("fap").cast(pl.Float64),
    ).filter(pl.col("frequency_hz").is_finite() & (pl.col("frequency_hz") > 0))
    if max_fap is not None:
        df = df.filter(pl.col("fap") <= max_fap)
    df = df.sort("frequency_hz")
    if df.height == 0:
        return pl.DataFrame(schema=_LINE_SCHEMA)
    logf = np.log(df["frequency_hz"].to_numpy())
    power = df["power"].to_numpy()
    gs_ids = df["gs_id"].to_numpy()
    star = np.unique(gs_ids, return_inverse=True)[1].astype(np.int64)
    half = np.log1p(rel_tol)
    alive = np.ones(logf.size, dtype=bool)
    # each peak's window over all peaks (fixed); its count is over the peaks still alive
    lo_all = np.searchsorted(logf, logf - half, side="left")
    hi_all = np.searchsorted(logf, logf + half, side="right")
    nstars = np.zeros(logf.size, dtype=np.int64)

    def count(js: np.ndarray) -> None:
        """Distinct stars among the alive peaks of the windows ``js`` (0 below min_stars
        peaks: such a window cannot seed a line)."""
        for j in js:
            if not alive[j]:
                nstars[j] = -1
                continue
            sel = np.flatnonzero(alive[lo_all[j] : hi_all[j]]) + lo_all[j]
            nstars[j] = np.unique(star[sel]).size if sel.size >= min_stars else 0

    count(np.arange(logf.size))
    lines = []
    while True:
        if int(alive.sum()) < min_stars:
            break
        # most stars, then most power, then the lowest frequency (a stable ordering)
        best = int(np.lexsort((-power, -nstars))[0])
        if not alive[best] or nstars[best] < min_stars:
            break
        members = np.flatnonzero(alive[lo_all[best] : hi_all[best]]) + lo_all[best]
        alive[members] = False
        # only windows reaching the removed peaks change their count
        first = int(np.searchsorted(hi_all, members[0], side="right"))
        last = int(np.searchsorted(lo_all, members[-1], side="right"))
        count(np.arange(first, last))
        f = np.exp(logf[members])
        sids = gs_ids[members]
        lines.append(
            {
                "frequency_hz": float(np.median(f)),
                "n_stars": int(np.unique(star[members]).size),
                "n_peaks": int(members.size),
                "frequency_min_hz": float(f.min()),
                "frequency_max_hz": float(f.max()),
                "median_power": float(np.median(power[members])),
                "gs_ids": sorted(set(sids.tolist())),
            }
        )
    if not lines:
        return pl.DataFrame(schema=_LINE_SCHEMA)
    out = pl.DataFrame(lines).with_columns((1.0 / pl.col("frequency_hz")).alias("period_s"))
    out = out.sort(["n_stars", "frequency_hz"], descending=[True, False])
    out = out.with_row_index("line_id").with_columns(pl.col("line_id").cast(pl.Int32))
    return out.select([pl.col(c).cast(t) for c, t in _LINE_SCHEMA.items()])


def label_instrumental(
    peaks: pl.DataFrame, lines: pl.DataFrame, *, rel_tol: float = 0.01
) -> pl.DataFrame:
    """``peaks`` (any frame with frequency_hz) plus ``line_id`` (nearest line within
    ``rel_tol * f_line``, else null) and ``instrumental`` (bool)."""
    _require_columns(peaks, ["frequency_hz"], "peaks")
    _require_columns(lines, ["frequency_hz"], "lines")
    f = peaks["frequency_hz"].cast(pl.Float64).to_numpy()
    lf = lines["frequency_hz"].cast(pl.Float64).to_numpy()
    ids = (
        lines["line_id"].to_numpy()
        if "line_id" in lines.columns
        else np.arange(lf.size, dtype=np.int64)
    )
    line_id = np.full(f.size, -1, dtype=np.int64)
    if lf.size and f.size:
        order = np.argsort(lf)
        ls, lid = lf[order], ids[order]
        pos = np.clip(np.searchsorted(ls, f), 1, ls.size) - 1
        best = np.full(f.size, np.inf)
        for cand in (pos, np.minimum(pos + 1, ls.size - 1)):
            rel = np.abs(f - ls[cand]) / ls[cand]
            better = (rel <= rel_tol) & (rel < best)
            best = np.where(better, rel, best)
            line_id = np.where(better, lid[cand], line_id)
    lid = pl.Series("line_id", line_id, dtype=pl.Int32)
    lid = pl.select(pl.when(lid >= 0).then(lid).alias("line_id")).to_series()
    return peaks.with_columns(lid, pl.Series("instrumental", line_id >= 0))


# --------------------------------------------------------------------------------------------------
# The archive's series: conditioning before the periodogram, peaks after it
# --------------------------------------------------------------------------------------------------
def refine_peak_offset(power: np.ndarray, idx: int) -> float:
    """Sub-bin offset of a peak (in frequency bins, -0.5..0.5): vertex of the parabola through the
    powers of bins idx-1, idx, idx+1."""
    if idx <= 0 or idx >= power.size - 1:
        return 0.0
    a, b, c = power[idx - 1], power[idx], power[idx + 1]
    den = a - 2.0 * b + c
    if not np.isfinite(den) or den >= 0:
        return 0.0
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


def spike_mask(v: np.ndarray) -> np.ndarray:
    """Samples further than ``SPIKE_SIGMA`` white-noise sigmas from the running median of five
    (cosmic rays: one hot pixel adds up to ~40 % to the summed flux of a frame; a handful of them
    outweighs a 0.1 % sinusoid and drags the periodogram's peak)."""
    if v.size < 5:
        return np.zeros(v.size, dtype=bool)
    finite = bool(np.isfinite(v).all())
    sigma = _diff_noise(v) if finite else diff_noise(v)  # the same number; compiled if finite
    if not np.isfinite(sigma) or sigma <= 0:
        return np.zeros(v.size, dtype=bool)
    if not finite:
        return np.abs(v - despike(v)) > SPIKE_SIGMA * sigma
    x = np.ascontiguousarray(v, dtype=np.float64)
    replaced = np.empty_like(x)
    _despike(x, SPIKE_SIGMA * sigma, replaced)  # the median of five where beyond the threshold
    return replaced != x


#: Fluxes of fixed pixel masks, decorrelated from the pointing and PSF widths before their
#: periodograms (the 64-pixel sum ``flux`` loses almost no light as the star moves: left as is).
DECORRELATED_FLUXES = ("flux_opt", "flux_r1", "flux_r2", "flux_r3")
#: Frames per bin of the pointing decorrelation before a periodogram: 1, frame by frame. The
#: pointing has lines at 0.4-2 s periods that a fit on 4-s bin means (the anomaly search's
#: ``DECORRELATION_BIN``) cannot see: with it, they leaked into ``flux_opt`` and were its
#: "significant" peaks in most quiet visits on red noise (docs/analyses.md).
PERIODOGRAM_DECORRELATION_BIN = 1
#: Anomaly intervals cover at most this fraction of a series for them to be left out of its
#: periodogram (beyond it the "anomalies" are more likely the signal itself: a strong pulsator).
MAX_MASKED_FRACTION = 0.2


def condition_for_periodogram(
    rows: pl.DataFrame, name: str, values: np.ndarray, anomalies: pl.DataFrame | None
) -> np.ndarray:
    """A parameter series cleaned of what is not periodic, before its periodogram.

    Aperture fluxes (``DECORRELATED_FLUXES``) are decorrelated from the pointing and the PSF
    widths (``decorrelate_pointing``, fitted frame by frame: ``PERIODOGRAM_DECORRELATION_BIN``).
    With the guide star's ``anomalies`` (rows of ``analysis/anomaly_intervals``): frames inside
    its transients (drops, excursions, jitter bursts, ...) are masked, and the series is cut at
    the steps seen in a parameter of its family (a centroid jump cuts x_mean and y_mean), each
    piece of a file shifted to the file's median level -- unless the transients would mask more
    than ``MAX_MASKED_FRACTION`` of the series. Steps and drops left in would spread red power
    over the low frequencies and pull the peaks of real signals off their periods.
    """
    v = values
    family = parameter_family(name)
    if name in DECORRELATED_FLUXES:
        v = decorrelate_pointing(rows, v, widths=True, bin_frames=PERIODOGRAM_DECORRELATION_BIN)
    if anomalies is None or anomalies.is_empty():
        return v
    v = np.array(v, dtype=np.float64, copy=True)
    t = rows["time_mjd"].to_numpy()
    half = 0.5 * float(np.nanmedian(np.diff(t))) if t.size > 1 else 0.0
    is_step = anomalies["kind"].str.ends_with(STEP_SUFFIXES[0])
    for suffix in STEP_SUFFIXES[1:]:
        is_step = is_step | anomalies["kind"].str.ends_with(suffix)
    transients = anomalies.filter(~is_step)
    inside = np.zeros(t.size, dtype=bool)
    for a, b in zip(
        transients["start_mjd"].to_list(), transients["end_mjd"].to_list(), strict=True
    ):
        inside[np.searchsorted(t, a - half) : np.searchsorted(t, b + half, side="right")] = True
    finite = np.isfinite(v)
    if (inside & finite).sum() <= MAX_MASKED_FRACTION * finite.sum():
        v[inside] = np.nan
    steps = anomalies.filter(is_step)
    cuts = [
        start
        for start, params in zip(
            steps["start_mjd"].to_list(), steps["parameters"].to_list(), strict=True
        )
        if family == "flux" or any(parameter_family(p) == family for p in (params or []))
    ]
    if not cuts:
        return v
    piece = np.searchsorted(np.sort(np.asarray(cuts)), t)
    for in_file in file_rows(rows):
        ok = in_file[np.isfinite(v[in_file])]
        if not ok.size:
            continue
        level = np.median(v[ok])
        for k in np.unique(piece[ok]):
            sel = ok[piece[ok] == k]
            v[sel] += level - np.median(v[sel])
    return v


#: A centroid line: power above this many times the median power on each side of it (2 to 6
#: resolution elements away, below and above its frequency).
POINTING_LINE_CONTRAST = 15.0


def pointing_lines(res: PeriodogramResult, peaks: pl.DataFrame) -> list[bool]:
    """Per peak: a flux peak whose frequency (+- one resolution element) carries a line of the
    same group's x_mean or y_mean spectrum -- the pointing moving light in and out of the
    pixels, not the star. A line, not red continuum: its power is ``POINTING_LINE_CONTRAST``
    times the median power on *both* sides of it (a slow pointing wander has power at every low
    frequency, rising towards the lowest; a star's oscillation there must not be blamed on it).
    """
    centroids = [res.names.index(c) for c in ("x_mean", "y_mean") if c in res.names]
    out = []
    spp = max(1, int(round(1.0 / (res.df_hz * res.baseline_s)))) if res.baseline_s else 1
    for series, f in zip(peaks["series"].to_list(), peaks["frequency_hz"].to_list(), strict=True):
        hit = False
        k = int(round((f - res.f0_hz) / res.df_hz))
        if parameter_family(series) == "flux" and centroids and k - 6 * spp >= 0:
            for ci in centroids:
                power = res.power[ci]
                if k + 6 * spp >= power.size:
                    continue
                line = float(power[k - spp : k + spp + 1].max())
                below = float(np.median(power[k - 6 * spp : k - 2 * spp]))
                above = float(np.median(power[k + 2 * spp + 1 : k + 6 * spp + 1]))
                if line > POINTING_LINE_CONTRAST * max(below, above, 1e-300):
                    hit = True
        out.append(hit)
    return out


def line_contrast(
    lines: pl.DataFrame,
    peaks: pl.DataFrame,
    *,
    rel_tol: float = 0.01,
    half_width_dex: float = 0.15,
) -> pl.DataFrame:
    """Add ``contrast_sigma``: how far a line's peak count stands above the density of peaks
    around it (within ``half_width_dex`` in log10 frequency (dex), its own ``rel_tol`` window (fractional
    frequency) left out).

    Red noise puts peaks of every star at low frequencies, and visits of similar length put them at
    similar frequencies; the clustering then finds "lines" that are just the local crowd. A real
    line has more peaks in its ``rel_tol`` window than the neighbourhood's density predicts:
    ``(n - expected) / sqrt(expected + 1)``.
    """
    if lines.is_empty():
        return lines.with_columns(pl.lit(None, pl.Float64).alias("contrast_sigma"))
    logf = np.sort(np.log10(peaks["frequency_hz"].to_numpy()))
    tol = np.log10(1 + rel_tol)
    out = []
    for f, n in zip(lines["frequency_hz"].to_list(), lines["n_peaks"].to_list(), strict=True):
        lf = np.log10(f)
        inside = np.searchsorted(logf, lf + tol, "right") - np.searchsorted(logf, lf - tol, "left")
        around = np.searchsorted(logf, lf + half_width_dex, "right") - np.searchsorted(
            logf, lf - half_width_dex, "left"
        )
        expected = (around - inside) * (2 * tol) / (2 * half_width_dex - 2 * tol)
        out.append((n - expected) / np.sqrt(expected + 1.0))
    return lines.with_columns(pl.Series("contrast_sigma", out, dtype=pl.Float64))
