"""Anomaly search in guide-star time series: flux drops, centroid jumps, PSF changes, ...

``detect_anomalies`` looks, in every parameter series of one guide-star run (flux, x_mean,
y_mean, x_stddev, y_stddev, theta, background, ...), for

- transients: box-shaped departures lasting ~1 s to a few minutes that stand out from both
  neighbouring stretches of the same length (matched boxcar filter at widths 1, 2, 4, ... 256 s);
- steps: a change of level that persists (difference of the means of the windows before and
  after each sample, windows 0.5, 2, 8, 32, 128 s);

and merges the detections of all parameters that overlap in time into events.
``cross_match_events`` adds the observatory events (high-gain-antenna moves, filter-wheel
moves, ...) that coincide with each anomaly.  The method is written up in docs/analyses.md.

Everything is vectorised (one cumulative sum per parameter, then differences of it); the only
Python loops run over filter scales and detections.  Pure array maths, no I/O.
"""

from __future__ import annotations

import bisect
import functools
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import polars as pl

from .detrend import (
    MAD_TO_SIGMA,
    MAX_STAT_SAMPLES,
    despike,
    diff_noise,
    finite_copy,
    median_and_std,
    median_cadence_s,
    median_inplace,
    split_segments,
)
from .tails import chi2_ppf, norm_isf, norm_sf, student_t_isf

__all__ = [
    "BOX_WIDTHS_S",
    "STEP_WINDOWS_S",
    "local_threshold",
    "ANOMALY_SCHEMA",
    "parameter_family",
    "STEP_SUFFIXES",
    "detect_parameter",
    "ParameterDetections",
    "detect_anomalies",
    "cross_match_events",
    "theta_continuous",
    "JITTER_BLOCK_S",
]

SECONDS_PER_DAY = 86400.0
BOX_WIDTHS_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
"""Widths of the boxcar (matched) filter for transients, seconds."""
STEP_WINDOWS_S: tuple[float, ...] = (0.5, 2.0, 8.0, 32.0, 128.0)
"""Half-widths of the before/after windows of the step filter, seconds."""
SPIKE_SIGMA = 6.0
"""Samples further than this many noise sigmas from the running median of five are spikes."""
STEP_SUFFIXES = ("_jump", "_change", "_step")
"""Endings of the anomaly kinds that are steps (a level that changes and stays), not transients."""
MIN_SEGMENT_FRAMES = 32
"""Segments (runs without gaps) with fewer finite samples are skipped."""
JITTER_BLOCK_S = 1.0
"""Block length (s) of the jitter series (variance of the centroid about its block mean)."""
CANDIDATE_FRACTION = 0.85
"""Box candidates are taken from this fraction of the local threshold up: the widths step by 2,
so an event between two widths shows at up to ~0.8 of its significance in the nearer box; the
threshold itself is applied to the refined box (start/stop fitted to the event)."""
REFINE_ROUNDS = 4
"""Rounds of refinement of a transient's start/stop (each may grow the box by half)."""
MIN_NOISE_BOXES = 16
"""A flank factor above 1 is used only where the series holds this many boxes with full flanks."""
FLANK_FACTORS: tuple[int, ...] = (1, 2, 4)
"""The baseline flanks of a box of w samples are ``k * w`` samples long on each side (shorter
where the segment ends, never below w), with k the factor that gives the lowest measured noise of
the box statistic at that scale: on white noise (a faint star's flux) long flanks measure the
baseline better -- a drop stands out by 1.26x more sigma with k = 4 than with k = 1 -- while on
red noise (pointing jitter) short flanks follow the wander better."""

# kind names per parameter family: (transient below baseline, transient above, step)
_FAMILY_KINDS: dict[str, tuple[str, str, str]] = {
    "flux": ("flux_drop", "flux_brightening", "flux_step"),
    "centroid": ("centroid_excursion", "centroid_excursion", "centroid_jump"),
    "width": ("psf_transient", "psf_transient", "psf_change"),
    "theta": ("theta_transient", "theta_transient", "theta_change"),
    "background": ("background_transient", "background_transient", "background_jump"),
    "jitter": ("jitter_lull", "jitter_burst", "jitter_change"),
}
# families whose amplitude is a fraction of the baseline level (else: the parameter's own unit)
_FRACTIONAL = {"flux", "width", "amplitude"}
_SECONDARY = {"amplitude"}  # families that name an event only when no other parameter shows it

_DETECTION_STRUCT = pl.Struct(
    {
        "parameter": pl.String,
        "kind": pl.String,
        "start_mjd": pl.Float64,
        "end_mjd": pl.Float64,
        "amplitude": pl.Float64,
        "significance": pl.Float64,
    }
)

ANOMALY_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.Int64,
    "kind": pl.String,
    "start_mjd": pl.Float64,
    "end_mjd": pl.Float64,
    "duration_s": pl.Float64,
    "parameters": pl.List(pl.String),
    "kinds": pl.List(pl.String),
    "amplitude": pl.Float64,
    "significance": pl.Float64,
    "n_detections": pl.Int64,
    "start_index": pl.Int64,
    "end_index": pl.Int64,
    "detections": pl.List(_DETECTION_STRUCT),
}
"""Columns of ``detect_anomalies``' result."""


def parameter_family(name: str) -> str:
    """Family of a parameter name: flux, centroid, width, theta, background, or the name itself.

    ``flux*`` (flux, flux_opt, flux_r2, ...) -> flux; ``x_mean``/``y_mean`` -> centroid;
    ``x_stddev``/``y_stddev``/``*fwhm*`` -> width; ``theta`` -> theta; ``background``/``offset``
    -> background.  Any other name is its own family (kinds ``<name>_transient``, ``<name>_step``;
    ``amplitude``, the PSF peak, gets fractional amplitudes like flux).
    """
    n = name.lower()
    if n.startswith("flux"):
        return "flux"
    if n in ("x_mean", "y_mean", "x", "y", "centroid_x", "centroid_y"):
        return "centroid"
    if n.endswith("stddev") or "fwhm" in n or n in ("sigma_x", "sigma_y", "width"):
        return "width"
    if n.startswith("theta"):
        return "theta"
    if n in ("background", "offset", "bkg", "sky"):
        return "background"
    return n


def _kinds(family: str) -> tuple[str, str, str]:
    return _FAMILY_KINDS.get(
        family, (f"{family}_transient", f"{family}_transient", f"{family}_step")
    )


@dataclass(frozen=True)
class ParameterDetections:
    """What ``detect_parameter`` found in one series; indices into that series."""

    t_start: np.ndarray  # transients: first sample
    t_stop: np.ndarray  # transients: one past the last sample
    t_amp: np.ndarray  # mean departure from the flanking baseline (parameter units)
    t_level: np.ndarray  # baseline level there
    t_sig: np.ndarray
    s_index: np.ndarray  # steps: first sample after the step
    s_amp: np.ndarray  # level after minus level before
    s_level: np.ndarray  # level before
    s_sig: np.ndarray
    s_window: np.ndarray  # window (samples) of the step filter that found it
    noise: float  # per-sample white noise (1.4826 MAD of differences / sqrt 2)


BOX_CHUNK = 512
"""Starts per block of ``_box_peaks``: the statistic of a block is computed in one loop without
branches (vectorised by the compiler), then scanned for runs above the threshold."""


@numba.njit(cache=True, nogil=True, inline="always")
def _box_stat(cs, i, w, ll, lr, nl, nr, medl, medr):  # pragma: no cover - compiled
    """Signed two-sided box statistic at start ``i`` (flanks ``ll``/``lr``, noises ``nl``/``nr``):
    the smaller |z| of the two sides when both have the same sign, else 0."""
    box = (cs[i + w] - cs[i]) / w
    # (box - flank mean - median offset) / noise, the noise scaled to the flank's length
    zl = (box - (cs[i] - cs[i - ll]) / ll - medl) / nl
    zr = (box - (cs[i + w + lr] - cs[i + w]) / lr - medr) / nr
    st = min(abs(zl), abs(zr))
    st = -st if zl < 0 else st
    return st if zl * zr > 0 else 0.0


@numba.njit(cache=True, nogil=True)
def _box_peaks(cs, w, flank, medl, sl, medr, sr, thr):  # pragma: no cover - compiled
    """Two-sided box statistic for every start i in [w, n - 2w] from the cumulative sum ``cs``
    (flanks of ``flank`` samples, cut to what the series has left, never below w); for each run
    of |stat| >= thr, the start with the largest |stat| and that (signed) stat."""
    n = cs.shape[0] - 1
    pos = [0]
    val = [0.0]
    in_run = False
    best = 0.0
    best_i = 0
    best_s = 0.0
    ref = 1.0 / w + 1.0 / flank
    # the noise with full flanks, out of the loop (the same expression as where flanks are cut)
    nl_full = sl * np.sqrt((1.0 / w + 1.0 / flank) / ref)
    nr_full = sr * np.sqrt((1.0 / w + 1.0 / flank) / ref)
    # starts with both flanks full: [full_lo, full_hi); the others have a flank cut
    full_lo = max(w, flank)
    full_hi = max(full_lo, n - w - flank + 1)
    buf = np.empty(BOX_CHUNK)
    i0 = w
    while i0 < n - 2 * w + 1:
        i1 = min(i0 + BOX_CHUNK, n - 2 * w + 1)
        if full_lo <= i0 and i1 <= full_hi:  # no branch per start: vectorised
            for k in range(i1 - i0):
                buf[k] = _box_stat(cs, i0 + k, w, flank, flank, nl_full, nr_full, medl, medr)
        else:
            for k in range(i1 - i0):
                i = i0 + k
                ll = min(flank, i)
                lr = min(flank, n - i - w)
                nl = nl_full if ll == flank else sl * np.sqrt((1.0 / w + 1.0 / ll) / ref)
                nr = nr_full if lr == flank else sr * np.sqrt((1.0 / w + 1.0 / lr) / ref)
                buf[k] = _box_stat(cs, i, w, ll, lr, nl, nr, medl, medr)
        for k in range(i1 - i0):
            st = buf[k]
            a = abs(st)
            if a >= thr:
                if not in_run or a > best:
                    best, best_i, best_s = a, i0 + k, st
                in_run = True
            elif in_run:
                pos.append(best_i)
                val.append(best_s)
                in_run = False
        i0 = i1
    if in_run:
        pos.append(best_i)
        val.append(best_s)
    return np.array(pos[1:], dtype=np.int64), np.array(val[1:], dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def _step_peaks(cs, w, med, s, thr):  # pragma: no cover - compiled
    """Step statistic (mean of the w samples from j on minus the w before, scaled) for every j in
    [w, n - w]; for each run of |z| >= thr, the j with the largest |z| and that (signed) z."""
    n = cs.shape[0] - 1
    pos = [0]
    val = [0.0]
    in_run = False
    best = 0.0
    best_j = 0
    best_z = 0.0
    k = 1.0 / (w * s)
    o = med * w
    for j in range(w, n - w + 1):
        z = (cs[j + w] - 2.0 * cs[j] + cs[j - w] - o) * k
        a = abs(z)
        if a >= thr:
            if not in_run or a > best:
                best, best_j, best_z = a, j, z
            in_run = True
        elif in_run:
            pos.append(best_j)
            val.append(best_z)
            in_run = False
    if in_run:
        pos.append(best_j)
        val.append(best_z)
    return np.array(pos[1:], dtype=np.int64), np.array(val[1:], dtype=np.float64)


def _refine_box(cs: np.ndarray, n: int, i: int, w: int, sign: float) -> tuple[int, int]:
    """Start/stop of the box near ``[i, i+w)`` that maximises sign * sum / sqrt(length) of the
    series whose cumulative sum (starting with 0) is ``cs``."""

    def best(a_vals: np.ndarray, b_vals: np.ndarray) -> tuple[int, int]:
        length = b_vals[None, :] - a_vals[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            score = sign * (cs[b_vals][None, :] - cs[a_vals][:, None]) / np.sqrt(length)
        score[length < 1] = -np.inf
        k = int(np.argmax(score))
        return int(a_vals[k // b_vals.size]), int(b_vals[k % b_vals.size])

    step = max(1, w // 32)
    a_vals = np.arange(max(0, i - w // 2), min(n - 1, i + w) + 1, step)
    b_vals = np.arange(max(1, i), min(n, i + w + w // 2) + 1, step)
    a0, b0 = best(a_vals, b_vals)
    if step > 1:
        a_vals = np.arange(max(0, a0 - step), min(n - 1, a0 + step) + 1)
        b_vals = np.arange(max(1, b0 - step), min(n, b0 + step) + 1)
        a0, b0 = best(a_vals, b_vals)
    return a0, b0


def _refine_step(cs: np.ndarray, lo: int, hi: int, j: int, w: int) -> int:
    """Change point in ``[j - w/2, j + w/2]`` maximising the two-sample statistic over
    ``[lo, hi)`` (CUSUM)."""
    ks = np.arange(max(lo + 1, j - w // 2), min(hi - 1, j + w // 2) + 1)
    if ks.size == 0:
        return j
    nl = ks - lo
    nr = hi - ks
    ml = (cs[ks] - cs[lo]) / nl
    mr = (cs[hi] - cs[ks]) / nr
    stat = np.abs(mr - ml) * np.sqrt(nl * nr / (nl + nr))
    return int(ks[int(np.argmax(stat))])


def _window(x: np.ndarray, exclude: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Samples ``x[lo:hi]`` that are not excluded."""
    seg = x[lo:hi]
    return seg[~exclude[lo:hi]]


@functools.lru_cache(maxsize=4096)
def local_threshold(min_sigma: float, width: int, frames_per_hour: float) -> float:
    """Local threshold (sigma) at a filter scale of ``width`` frames for a false-alarm level.

    A noise series gives about ``frames_per_hour / width`` independent filter outputs per hour at
    that scale.  The threshold ``u`` makes the chance of a noise excursion beyond it, per hour of
    data, equal to the two-sided Gaussian tail of ``min_sigma`` for a single trial:
    ``2 sf(u) * frames_per_hour / width = 2 sf(min_sigma)`` (never below ``min_sigma``).
    At 64 ms and min_sigma = 5: 6.5 sigma for 8-frame windows, 5.6 sigma for 2000 frames.
    """
    n_trials = max(1.0, frames_per_hour / max(1, width))
    return float(max(min_sigma, norm_isf(norm_sf(min_sigma) / n_trials)))


def _empty_detections(noise: float) -> ParameterDetections:
    e = np.empty(0)
    ei = np.empty(0, dtype=np.int64)
    return ParameterDetections(ei, ei, e, e, e, ei, e, e, e, ei, noise)


def _flank(x: np.ndarray, exclude: np.ndarray, edge: int, length: int, direction: int, reach: int):
    """Up to ``length`` samples of ``x`` next to ``edge`` (before it: direction -1, from it on:
    +1), skipping excluded samples, looking at most ``reach`` samples away."""
    if direction < 0:
        lo = max(0, edge - reach)
        seg, ex = x[lo:edge], exclude[lo:edge]
        return seg[~ex][-length:]
    hi = min(x.size, edge + reach)
    seg, ex = x[edge:hi], exclude[edge:hi]
    return seg[~ex][:length]


def _flank_length(width: int, n: int, factor: int) -> int:
    """Length of each baseline flank of a box of ``width`` samples in a series of ``n``."""
    return max(width, min(factor * width, (n - width) // 2))


def _scaled(table: dict[int, tuple[float, float, float, float, int]], length: int, n: int):
    """Noise (and offsets) of the box-minus-flank differences at the computed width nearest
    ``length``, scaled to a box of ``length`` samples with flanks of that width's factor; and
    those flanks' length (samples)."""
    widths = np.array(sorted(table))
    wn = int(widths[np.argmin(np.abs(np.log(widths / max(1, length))))])
    medl, sl, medr, sr, factor = table[wn]
    length = max(1, length)
    flank, flank_n = _flank_length(length, n, factor), _flank_length(wn, n, factor)
    f = np.sqrt((1.0 / length + 1.0 / flank) / (1.0 / wn + 1.0 / flank_n))
    # a box longer than the widest measured scale keeps that scale's noise: the white-noise
    # scaling would shrink it, but red noise does not average down (an AR(1) wander of 20 s
    # gave 15-sigma "excursions" of 2 minutes)
    if length > widths[-1]:
        f = max(f, 1.0)
    return medl, sl * f, medr, sr * f, flank


SMALL_SELECT_SIZE = 400
"""Up to this many values ``_median_and_std`` selects by compiled quickselect (1-3 us faster
per call than ``detrend.median_and_std``'s compiled np.median on the search's filter outputs);
above, numpy's vectorised partition is as fast or faster."""


@numba.njit(cache=True, nogil=True, inline="always")
def _select(x, lo, hi, k):  # pragma: no cover - compiled
    """Reorder ``x[lo:hi + 1]`` so that ``x[k]`` is its (k - lo)-th smallest value, everything
    before it no larger and everything after no smaller (quickselect: median-of-three pivot,
    Hoare partition, which stays fast on ties). No NaNs."""
    while hi > lo:
        if hi - lo == 1:
            if x[lo] > x[hi]:
                x[lo], x[hi] = x[hi], x[lo]
            return
        mid = (lo + hi) >> 1
        a, b, c = x[lo], x[mid], x[hi]
        if a > b:
            a, b = b, a
        if b > c:
            b, c = c, b
        if a > b:
            a, b = b, a
        x[lo], x[mid], x[hi] = a, b, c
        if hi - lo == 2:
            return
        x[mid], x[hi - 1] = x[hi - 1], x[mid]  # the pivot b next to the end; x[lo] <= b <= x[hi]
        i = lo
        j = hi - 1
        while True:
            i += 1
            while x[i] < b:
                i += 1
            j -= 1
            while x[j] > b:
                j -= 1
            if i >= j:
                break
            x[i], x[j] = x[j], x[i]
        x[i], x[hi - 1] = x[hi - 1], x[i]
        if i == k:
            return
        if i < k:
            lo = i + 1
        else:
            hi = i - 1


@numba.njit(cache=True, nogil=True)
def _median_select(buf, m):  # pragma: no cover - compiled
    """``np.median`` of ``buf[:m]`` (no NaNs; reordered in place): the middle value, or the mean
    of the two middle values for an even count."""
    h = m // 2
    _select(buf, 0, m - 1, h)
    if m % 2:
        return buf[h]
    below = buf[0]
    for i in range(1, h):
        below = max(below, buf[i])
    return (below + buf[h]) / 2


@numba.njit(cache=True, nogil=True)
def _median_std_strided(x, stride):  # pragma: no cover - compiled
    """Median and 1.4826 MAD of the finite values of ``x[::stride]`` (NaN, NaN if none), by two
    quickselects."""
    buf = np.empty((x.size + stride - 1) // stride)
    m = 0
    for i in range(0, x.size, stride):
        if np.isfinite(x[i]):
            buf[m] = x[i]
            m += 1
    if m == 0:
        return np.nan, np.nan
    med = _median_select(buf, m)
    for i in range(m):
        buf[i] = abs(buf[i] - med)
    return med, MAD_TO_SIGMA * _median_select(buf, m)


@numba.njit(cache=True, nogil=True)
def _abs_deviations(buf, med):  # pragma: no cover - compiled
    """``buf`` replaced by ``|buf - med|``, in place."""
    for i in range(buf.size):
        buf[i] = abs(buf[i] - med)


def _median_and_std(x: np.ndarray) -> tuple[float, float]:
    """``detrend.median_and_std(x)`` (the same numbers): compiled for up to
    ``SMALL_SELECT_SIZE`` values, else numpy's partitions of one compiled copy."""
    if x.size <= SMALL_SELECT_SIZE:
        return _median_std_strided(x, 1)
    stride = max(1, x.size // MAX_STAT_SAMPLES)
    if -(-x.size // stride) <= SMALL_SELECT_SIZE:
        return _median_std_strided(x, stride)
    if stride > 1:
        return median_and_std(x)
    buf = finite_copy(x)
    if buf.size == 0:
        return float("nan"), float("nan")
    med = median_inplace(buf)
    _abs_deviations(buf, med)
    return med, float(MAD_TO_SIGMA * median_inplace(buf))


def _median(x: np.ndarray) -> float:
    """``np.median`` of ``x`` (which it may reorder), by one in-place partition."""
    if x.size == 0 or np.isnan(x).any():
        return float(np.median(x))
    return median_inplace(x)


def _diff_noise(v: np.ndarray) -> float:
    """``detrend.diff_noise`` of finite ``v`` (the same number), by in-place partitions."""
    if v.size < 3:
        return float("nan")
    d = np.diff(v)
    stride = max(1, (v.size - 1) // MAX_STAT_SAMPLES)
    if stride > 1:
        d = d[::stride].copy()
    med = median_inplace(d)
    return float(MAD_TO_SIGMA * median_inplace(np.abs(d - med)) / np.sqrt(2.0))


@numba.njit(cache=True, nogil=True)
def _despike(x, threshold, out):  # pragma: no cover - compiled
    """``detrend.despike(x, threshold=threshold)`` of finite ``x`` into ``out``: samples further
    than ``threshold`` from the running median of five replaced by it (the median of five by
    min/max, no sort; the ends as ``detrend._median5``)."""
    n = x.shape[0]
    for i in range(n):
        if 2 <= i < n - 2:
            a, b, c, d, e = x[i - 2], x[i - 1], x[i], x[i + 1], x[i + 2]
            f = max(min(a, b), min(c, d))  # the lowest of a..d is not the median: out
            g = min(max(a, b), max(c, d))  # nor the highest
            med = max(min(f, g), min(max(f, g), e))  # median of f, g, e
        else:
            lo = max(0, i - 2)
            hi = min(n, i + 3)
            m = hi - lo
            buf = np.sort(x[lo:hi])
            if m % 2 == 1:
                med = buf[m // 2]
            else:
                med = 0.5 * (buf[m // 2 - 1] + buf[m // 2])
        out[i] = med if abs(x[i] - med) > threshold else x[i]


@numba.njit(cache=True, nogil=True)
def _offset_cumsum(x, off):  # pragma: no cover - compiled
    """``np.concatenate(([0.0], np.cumsum(x - off)))`` in one loop (the same sequential sums)."""
    cs = np.empty(x.size + 1)
    cs[0] = 0.0
    total = 0.0
    for i in range(x.size):
        total += x[i] - off
        cs[i + 1] = total
    return cs


def _prepare(v: np.ndarray):
    """(sigma, sigma_f, despiked series, offset, cumulative sum of despiked - offset) of one
    segment's finite values; sigma is NaN or <= 0 when the series has no usable noise."""
    n = v.size
    finite = bool(np.isfinite(v).all())
    sigma = _diff_noise(v) if finite else diff_noise(v)
    if np.isfinite(sigma) and sigma <= 0 and n > 2:
        # quantised or mostly constant series: fall back on the plain scatter of differences
        sigma = float(np.std(np.diff(v)) / np.sqrt(2.0))
    if not np.isfinite(sigma) or sigma <= 0:
        return sigma, sigma, None, 0.0, None
    stride = max(1, n // MAX_STAT_SAMPLES)
    # a floor for sigma far below the values' scale (the median of |v|): only where it can
    # matter, since that median is at most max |v| (the floor is then sigma itself)
    sigma_f = sigma
    if n and not 1e-12 * max(1.0, float(np.abs(v).max())) <= sigma:
        sigma_f = max(sigma, 1e-12 * max(1.0, _median(np.abs(v[::stride]))))
    if finite:
        vd = np.empty_like(v)
        _despike(np.ascontiguousarray(v), SPIKE_SIGMA * sigma_f, vd)
    else:
        vd = despike(v, threshold=SPIKE_SIGMA * sigma_f)
    off = _median(vd[::stride].copy())
    cs = _offset_cumsum(vd, off)
    return sigma, sigma_f, vd, off, cs


def _box_widths(box_n: Sequence[int], n: int) -> list[int]:
    return sorted({int(x) for x in box_n if 2 <= int(x) <= n // 3})


def _step_widths(step_n: Sequence[int], n: int) -> list[int]:
    return sorted({int(x) for x in step_n if 1 <= int(x) <= n // 3})


@numba.njit(cache=True, nogil=True)
def _box_differences(cs, w, flank, a, b, stride):  # pragma: no cover - compiled
    """Box-minus-left-flank and box-minus-right-flank differences at starts ``range(a, b,
    stride)`` from the cumulative sum ``cs`` (numpy's operations on strided views, in one loop)."""
    m = max(0, (b - a + stride - 1) // stride)
    left = np.empty(m)
    right = np.empty(m)
    for k in range(m):
        i = a + k * stride
        box = (cs[i + w] - cs[i]) / w
        left[k] = box - (cs[i] - cs[i - flank]) / flank
        right[k] = box - (cs[i + w + flank] - cs[i + w]) / flank
    return left, right


@numba.njit(cache=True, nogil=True)
def _step_differences(cs, w, a, b, stride):  # pragma: no cover - compiled
    """Step differences (mean of the w samples from j on minus the w before) at ``j`` in
    ``range(a, b, stride)`` from the cumulative sum ``cs``."""
    m = max(0, (b - a + stride - 1) // stride)
    d = np.empty(m)
    for k in range(m):
        j = a + k * stride
        d[k] = (cs[j + w] - 2 * cs[j] + cs[j - w]) / w
    return d


def _box_samples(cs: np.ndarray, n: int, w: int, flank: int):
    """Box-minus-left-flank and box-minus-right-flank differences for starts with full flanks
    (every ``stride``-th), and the number of independent boxes they hold."""
    stride = max(1, w // 4, n // MAX_STAT_SAMPLES)
    a, b = flank, max(flank, n - w - flank + 1)  # starts i in range(a, b, stride)
    left, right = _box_differences(cs, w, flank, a, b, stride)
    return left, right, max(0.0, (n - w - 2 * flank + 1) / (w + 2 * flank))


def _step_samples(cs: np.ndarray, n: int, w: int):
    """Step differences (mean after minus mean before) and the number of independent ones."""
    stride = max(1, w // 4, n // MAX_STAT_SAMPLES)
    a, b = w, max(w, n - w + 1)  # positions j in range(a, b, stride)
    return _step_differences(cs, w, a, b, stride), max(0.0, (n - 2 * w + 1) / (2 * w))


def _segment_scales(v: np.ndarray, box_n: Sequence[int], step_n: Sequence[int]):
    """What ``scale_noise_samples`` and ``detect_parameter`` both need of one segment's values,
    computed once: (``_prepare``'s tuple, {(w, factor): (flank, left, right, n_independent,
    (median, std) of left, of right)}, {w: (d, n_independent, (median, std) of d)}), the
    box-minus-flank differences and step differences at every scale with their
    ``median_and_std``; the dicts are empty when the series has no usable noise."""
    v = np.asarray(v, dtype=np.float64)
    n = v.size
    prep = _prepare(v)
    cs = prep[4]
    box: dict = {}
    step: dict = {}
    if cs is None:
        return prep, box, step
    for w in _box_widths(box_n, n):
        for factor in FLANK_FACTORS:
            flank = _flank_length(w, n, factor)
            if factor > 1 and n - w - 2 * flank < MIN_NOISE_BOXES * w:
                continue  # too few boxes with full flanks to measure their noise
            left, right, nind = _box_samples(cs, n, w, flank)
            box[(w, factor)] = (
                flank,
                left,
                right,
                nind,
                _median_and_std(left),
                _median_and_std(right),
            )
    for w in _step_widths(step_n, n):
        d, nind = _step_samples(cs, n, w)
        step[w] = (d, nind, _median_and_std(d))
    return prep, box, step


def _median_of(x: np.ndarray, stats: tuple[float, float]) -> float:
    """``np.median(x)`` of finite ``x``, taken from its ``median_and_std`` when that used every
    sample (fewer than 2 ``MAX_STAT_SAMPLES``)."""
    return stats[0] if x.size < 2 * MAX_STAT_SAMPLES else float(np.median(x))


def scale_noise_samples(
    values: np.ndarray, *, box_n: Sequence[int], step_n: Sequence[int], prepared=None
):
    """The filter outputs of one segment at every scale, in units of its white noise, for
    pooling the noise estimate over the segments of a guide star's run (``pool_scale_noise``).

    Returns {("box", w, factor): [(left, right, n_independent, reach)], ("step", w): [(d,
    n_ind, reach)]} (each sample array less its own median; ``reach``: how many samples either
    side overlap one filter output), or {} when the series has no usable noise.
    ``prepared``: ``_segment_scales`` of these values (computed when None).
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    prep, box, step = prepared if prepared is not None else _segment_scales(v, box_n, step_n)
    _, sigma_f, _, _, cs = prep
    if cs is None:
        return {}
    out: dict = {}
    for (w, factor), (flank, left, right, nind, stats_l, stats_r) in box.items():
        if n - w - 2 * flank < (MIN_NOISE_BOXES * w if factor > 1 else 0):
            continue
        if left.size:
            reach = -(-(w + 2 * flank) // max(1, w // 4, n // MAX_STAT_SAMPLES))
            out[("box", w, factor)] = [
                (
                    _centred(left, _median_of(left, stats_l), sigma_f),
                    _centred(right, _median_of(right, stats_r), sigma_f),
                    nind,
                    reach,
                )
            ]
    for w, (d, nind, stats) in step.items():
        if d.size:
            reach = -(-2 * w // max(1, w // 4, n // MAX_STAT_SAMPLES))
            out[("step", w)] = [(_centred(d, _median_of(d, stats), sigma_f), nind, reach)]
    return out


@numba.njit(cache=True, nogil=True)
def _centred(x, med, scale):  # pragma: no cover - compiled
    """``(x - med) / scale`` in one compiled loop (numpy's two operations, the same values)."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = (x[i] - med) / scale
    return out


@numba.njit(cache=True, nogil=True)
def _strongest_left_out(a0, a1, sizes, reaches):  # pragma: no cover - compiled
    """The concatenated sample arrays ``a0``/``a1`` (items of ``sizes`` samples) without the
    samples within ``reaches[k]`` of the strongest output (largest |value| of both arrays) of
    the strongest item k (first of the largest); (False, a0, a1) when they hold a NaN."""
    for t in range(a0.size):
        if np.isnan(a0[t]) or np.isnan(a1[t]):
            return False, a0, a1
    n_items = sizes.size
    k = 0
    peak = -1.0
    start = 0
    k_start = 0
    for j in range(n_items):
        p = abs(a0[start])
        for t in range(start, start + sizes[j]):
            p = max(p, abs(a0[t]), abs(a1[t]))
        if j == 0 or p > peak:
            peak, k, k_start = p, j, start
        start += sizes[j]
    i = 0
    best = -1.0
    for t in range(sizes[k]):
        s = max(abs(a0[k_start + t]), abs(a1[k_start + t]))
        if t == 0 or s > best:
            best, i = s, t
    lo = k_start + max(0, i - reaches[k])  # left out: [lo, hi)
    hi = k_start + min(sizes[k], i + reaches[k] + 1)
    m = a0.size - (hi - lo)
    out0 = np.empty(m)
    out1 = np.empty(m)
    out0[:lo] = a0[:lo]
    out0[lo:] = a0[hi:]
    out1[:lo] = a1[:lo]
    out1[lo:] = a1[hi:]
    return True, out0, out1


def _without_strongest(items: list, n_values: int) -> tuple[list[np.ndarray], float]:
    """The sample arrays of ``items``, concatenated per value, with the filter outputs that
    overlap the strongest one (largest |value| over all items; ``reach`` samples either side)
    left out, and the number of independent samples left: the event a wide scale is searched
    for must not set its own noise (a 55-s, 0.3 % drop in a 15-min visit of white noise read as
    2x the white scale of 32-s boxes, where the visit holds 4 independent ones)."""
    if len(items) == 1:
        values = list(items[0][:n_values])
    else:
        values = [np.concatenate([it[v] for it in items]) for v in range(n_values)]
    sizes = np.array([it[0].size for it in items], dtype=np.int64)
    reaches = np.array([it[-1] for it in items], dtype=np.int64)
    ok, kept0, kept1 = _strongest_left_out(values[0], values[-1], sizes, reaches)
    if not ok:  # NaN: the numpy rule (np.argmax stops at the first NaN)
        return _without_strongest_plain(items, n_values)
    left = max(0.0, float(sum(it[-2] for it in items)) - 1.0)
    return [kept0, kept1][:n_values], left


def _without_strongest_plain(items: list, n_values: int) -> tuple[list[np.ndarray], float]:
    """``_without_strongest`` by numpy operations per item (for samples with NaNs)."""
    peak = [max(float(np.abs(a).max()) for a in it[:n_values]) for it in items]
    k = int(np.argmax(peak))
    out = []
    for j, it in enumerate(items):
        arrays = list(it[:n_values])
        if j == k:
            strength = np.abs(arrays[0])
            for a in arrays[1:]:
                strength = np.maximum(strength, np.abs(a))
            i = int(np.argmax(strength))
            keep = np.abs(np.arange(strength.size) - i) > it[-1]
            arrays = [a[keep] for a in arrays]
        out.append(arrays)
    values = [np.concatenate([a[v] for a in out]) for v in range(n_values)]
    return values, max(0.0, float(sum(it[-2] for it in items)) - 1.0)


def pool_scale_noise(samples: Sequence[dict]) -> dict:
    """Pooled noise per scale from the ``scale_noise_samples`` of several segments:
    {key: (robust std in white-noise units, independent samples)}; a box key gives the larger
    of its left and right values. A scale with fewer than ``MIN_NOISE_DOF`` degrees of freedom
    leaves out the outputs overlapping its strongest one (``_without_strongest``)."""
    merged: dict = {}
    for s in samples:
        for key, items in s.items():
            merged.setdefault(key, []).extend(items)
    out = {}
    for key, items in merged.items():
        n_values = 2 if key[0] == "box" else 1
        nind = float(sum(it[-2] for it in items))
        if MAD_EFFICIENCY * nind < MIN_NOISE_DOF:  # few samples: leave the strongest out
            values, nind = _without_strongest(items, n_values)
        elif len(items) == 1:  # read, not changed
            values = list(items[0][:n_values])
        else:
            values = [np.concatenate([it[v] for it in items]) for v in range(n_values)]
        scales = [_centred_std(x) for x in values if x.size]
        out[key] = (max(scales) if scales else float("nan"), nind)
    return out


@numba.njit(cache=True, nogil=True)
def _deviations_if_central(y):  # pragma: no cover - compiled
    """|y - median(y)| when one pass over ``y`` (finite, non-empty) tells its median: the middle
    value(s) are 0, the largest value below 0 or the smallest above 0 -- so whenever ``y`` is
    less the median of one segment; else an empty array."""
    m = y.size
    below = 0
    above = 0
    top_below = -np.inf
    low_above = np.inf
    not_finite = 0.0  # v - v is NaN for NaN and inf
    for i in range(m):  # no branches (the signs of noise are unpredictable)
        v = y[i]
        not_finite += v - v
        below += np.int64(v < 0)
        above += np.int64(v > 0)
        a = v if v < 0 else -np.inf
        top_below = a if a > top_below else top_below
        b = v if v > 0 else np.inf
        low_above = b if b < low_above else low_above
    if not_finite != 0.0:
        return np.empty(0)
    zero_end = m - above  # sorted: [0, below) negative, [below, zero_end) zero, then positive
    h = m // 2
    middle = np.empty(2)
    for j, k in enumerate((h - 1 + m % 2, h)):  # the middle index twice when m is odd
        if below <= k < zero_end:
            middle[j] = 0.0
        elif k == below - 1:
            middle[j] = top_below
        elif k == zero_end:
            middle[j] = low_above
        else:
            return np.empty(0)
    med = middle[1] if m % 2 else (middle[0] + middle[1]) / 2
    out = np.empty(m)
    for i in range(m):
        out[i] = abs(y[i] - med)
    return out


def _centred_std(y: np.ndarray) -> float:
    """``_median_and_std(y)[1]`` of samples that are each less their own segment's median
    (``scale_noise_samples``): where one pass tells their median (``_deviations_if_central``;
    always for one segment), one selection instead of two."""
    if y.size < 2 * MAX_STAT_SAMPLES:  # every sample used (no subset)
        dev = _deviations_if_central(y)
        if dev.size:
            if dev.size <= SMALL_SELECT_SIZE:
                return float(MAD_TO_SIGMA * _median_select(dev, dev.size))
            return float(MAD_TO_SIGMA * median_inplace(dev))
    return _median_and_std(y)[1]


MAD_EFFICIENCY = 0.37
"""Efficiency of the MAD scale estimate for Gaussian noise: a scale from N independent samples
is as uncertain as a standard deviation from 0.37 N (t-distribution degrees of freedom)."""


@functools.lru_cache(maxsize=4096)
def small_sample_factor(min_sigma: float, width: int, frames_per_hour: float, n_ind: float):
    """How much to widen a noise scale measured from ``n_ind`` independent samples so that the
    local threshold keeps its false-alarm rate: ``t.isf(q, nu) / norm.isf(q)``, ``nu =
    MAD_EFFICIENCY * n_ind``, q the per-trial tail of the local threshold (``local_threshold``).
    Infinite below 2 degrees of freedom (nothing is detected at that scale)."""
    nu = MAD_EFFICIENCY * float(n_ind)
    if nu < 2.0:
        return float("inf")
    u = local_threshold(min_sigma, width, frames_per_hour)
    q = float(norm_sf(u))
    return float(student_t_isf(q, nu) / u)


MIN_NOISE_DOF = 30.0
"""A pooled scale resting on fewer degrees of freedom (``MAD_EFFICIENCY`` x independent
samples) is not used as measured: ``pooled_scale`` takes a floor from the well-measured scales,
lowered or raised by what the scale itself shows (from 2 degrees of freedom up)."""


MEASURED_QUANTILE = 0.9
"""A poorly measured wide scale counts at this upper confidence (``upper_scale_factor``)."""


@functools.lru_cache(maxsize=4096)
def upper_scale_factor(n_ind: float, quantile: float = MEASURED_QUANTILE) -> float:
    """Upper confidence of a noise scale measured from ``n_ind`` independent samples, as a
    factor of the measured scale: ``sqrt(nu / chi2.ppf(1 - quantile, nu))``, ``nu =
    MAD_EFFICIENCY * n_ind``; NaN below 2 degrees of freedom (too few to say anything)."""
    nu = MAD_EFFICIENCY * float(n_ind)
    if nu < 2.0:
        return float("nan")
    return float(np.sqrt(nu / chi2_ppf(1.0 - quantile, nu)))


def _white_of(key: tuple) -> float:
    """White-noise scale (per-sample sigma 1) of a factor-1 box or a step of width ``key[1]``."""
    return float(np.sqrt(2.0 / key[1]))


def _well_measured(pooled: Mapping) -> list:
    """The scales of ``pooled`` measured well enough (``MIN_NOISE_DOF``) to floor wider ones
    (factor-1 boxes and steps), sorted: (key, (scale, independent samples)) pairs."""
    return sorted(
        (k, v)
        for k, v in pooled.items()
        if (k[0] == "step" or k[2] == 1) and MAD_EFFICIENCY * v[1] >= MIN_NOISE_DOF and v[0] > 0
    )


def pooled_scale(
    pooled: Mapping,
    key: tuple,
    min_sigma: float,
    frames_per_hour: float,
    white: float = 0.0,
    well_measured: list | None = None,
) -> float:
    """Noise of the filter ``key`` (("box", w, factor) or ("step", w)) in white-noise units.

    Measured well enough (``MIN_NOISE_DOF``): the pooled scale with its excess over ``white``
    (the filter's white-noise scale, known from the per-frame noise of many samples) widened for
    its sample size (``small_sample_factor``). Otherwise a floor from the scales below it that
    are measured well: the widest one's widened scale, grown to w as the last two grow
    (exponent clipped to 0..0.5: flat for white noise, sqrt(w) for a random walk). That floor
    ignores what w itself shows. When w rests on >= 2 degrees of freedom the noise is instead
    the larger of

    * the scale measured at w at its ``MEASURED_QUANTILE`` upper confidence
      (``upper_scale_factor``): red noise that shows only at wide scales is kept;
    * the widest well-measured scale's widened ratio to its white-noise scale, grown as that
      ratio grows (exponent 0..1), times w's white scale: white noise averages down;

    but no more than the larger of that floor and the scale measured at w.

    When no scale below is measured well, the scale as measured, widened (infinite -- not
    searched -- below 2 degrees of freedom). ``well_measured``: ``_well_measured(pooled)``, when
    the caller asks for many keys of one ``pooled``.
    """
    width = key[1]
    s_rel, nind = pooled.get(key, (float("nan"), 0.0))
    if MAD_EFFICIENCY * nind >= MIN_NOISE_DOF and np.isfinite(s_rel):
        excess = np.sqrt(max(0.0, s_rel * s_rel - white * white))
        widened = excess * small_sample_factor(min_sigma, width, frames_per_hour, nind)
        return float(np.hypot(white, widened))
    if well_measured is None:
        well_measured = _well_measured(pooled)
    good = [(k, v) for k, v in well_measured if k[0] == key[0] and k[1] < width]
    if not good:  # nothing measured well: the scale as measured, widened (inf below 2 dof)
        if not np.isfinite(s_rel) or s_rel <= 0:
            return float("inf")
        return s_rel * small_sample_factor(min_sigma, width, frames_per_hour, nind)
    # the round-2 floor: the widest well-measured scale, widened, grown to w as the last two
    # grow (exponent clipped to 0..0.5): flat for white noise (whose scale falls as 1/sqrt(w))
    k1, (s1, n1) = good[-1]
    beta, gamma = 0.0, 0.0
    if len(good) >= 2:
        k0, (s0, _) = good[-2]
        growth = np.log(s1 / s0) / np.log(k1[1] / k0[1])
        beta = float(min(max(growth, 0.0), 0.5))  # np.clip without its per-call overhead
        # the same growth as a ratio to the white scale (+0.5): 0 for white, 1 for a random walk
        gamma = float(min(max(growth + 0.5, 0.0), 1.0))
    widen = small_sample_factor(min_sigma, k1[1], frames_per_hour, n1)
    flat = s1 * widen * (width / k1[1]) ** beta
    upper = s_rel * upper_scale_factor(nind)
    if not np.isfinite(upper):  # < 2 degrees of freedom at w: nothing to go below it on
        return float(flat)
    w_here = white if white > 0 else float(np.sqrt(2.0 / width))
    ratio = w_here * max(1.0, s1 / _white_of(k1) * widen) * (width / k1[1]) ** gamma
    return float(min(max(flat, s_rel), max(ratio, upper)))


def detect_parameter(
    values: np.ndarray,
    *,
    box_n: Sequence[int],
    step_n: Sequence[int],
    min_sigma: float = 5.0,
    frames_per_hour: float = 3600.0 / 0.064,
    pooled: Mapping | None = None,
    prepared=None,
    scale_memo: dict | None = None,
) -> ParameterDetections:
    """Transients and steps in one evenly sampled series of finite values (widths in samples).

    1. Noise: ``sigma = 1.4826 MAD(diff(values)) / sqrt(2)``.  Spikes (further than
       ``SPIKE_SIGMA * sigma`` from the running median of five) are replaced by that median.
    2. Transients: for each width w and every start i, the mean of the box ``[i, i+w)`` minus
       the mean of the L samples before it (left) and minus the mean of the L samples after it
       (right), ``L = k * w`` (less where the series ends, never below w).  Each difference is
       scaled by its noise, the larger of its 1.4826 MAD over the series (covers red noise and
       periodic lines at that scale) and ``sigma * sqrt(1 / w + 1 / L)``; k is the one of
       ``FLANK_FACTORS`` that gives the lowest noise at that width.
       The transient statistic is the smaller of the two scaled differences when both have the
       same sign (else 0): the box must stand out from both sides, so a step is not a transient.
       Runs above the local threshold (``local_threshold``) give candidates; the strongest
       non-overlapping candidates over all widths are kept and their start/stop refined to the
       box maximising |sum| / sqrt(length) of the series minus its flanking baseline.
    3. Steps: for each window w, the mean of the w samples after each sample minus the mean of
       the w before, scaled like above (``sigma * sqrt(2 / w)`` floor); candidates as above, kept
       when not within min(w, w') of a stronger one, position refined by the two-sample (CUSUM)
       statistic.

    ``prepared``: ``_segment_scales`` of these values (computed when None). ``scale_memo``: a
    dict kept for the calls that share one ``pooled`` (the segments of a parameter), which then
    compute each of its ``pooled_scale`` values once.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if prepared is None:
        prepared = _segment_scales(v, box_n, step_n)
    (sigma, sigma_f, vd, off, cs), box_stats, step_stats = prepared
    if cs is None:
        return _empty_detections(sigma)
    if pooled is None:  # this segment alone
        pooled = pool_scale_noise(
            [scale_noise_samples(v, box_n=box_n, step_n=step_n, prepared=prepared)]
        )

    def pooled_noise(key: tuple, width: int, white: float) -> float:
        """The pooled scale of ``key`` (parameter units), widened for its sample size; 0 when
        not pooled (``pooled={}``: each segment's own scale alone, the round-1 rule)."""
        if not pooled:
            return 0.0
        if scale_memo is None:
            return sigma_f * pooled_scale(pooled, key, min_sigma, frames_per_hour, white, well)
        memo_key = (key, white, min_sigma, frames_per_hour)
        scale = scale_memo.get(memo_key)
        if scale is None:
            scale = pooled_scale(pooled, key, min_sigma, frames_per_hour, white, well)
            scale_memo[memo_key] = scale
        return sigma_f * scale

    well = _well_measured(pooled) if pooled else []

    # --- transients: box against both flanks
    side: dict[int, tuple[float, float, float, float, int]] = {}
    cands = []  # (|z|, start, width, sign)
    for w in _box_widths(box_n, n):
        best = None
        for factor in FLANK_FACTORS:
            if (w, factor) not in box_stats:
                continue  # too few boxes with full flanks to measure their noise
            # the noise from boxes with full flanks on each side: start i = L .. n - w - L,
            # this segment's own and the pooled one over the run's segments, the larger
            flank, _, _, _, (medl, sl), (medr, sr) = box_stats[(w, factor)]
            white = math.sqrt(1.0 / w + 1.0 / flank)  # (math: no numpy call per scalar)
            floor = max(sigma_f * white, pooled_noise(("box", w, factor), w, white))
            sl, sr = max(sl, floor), max(sr, floor)
            if not math.isfinite(floor):
                continue
            if best is None or max(sl, sr) < best[0]:
                best = (max(sl, sr), flank, (medl, sl, medr, sr, factor))
        if best is None:
            continue
        _, flank, side[w] = best
        medl, sl, medr, sr, _ = side[w]
        thr = CANDIDATE_FRACTION * local_threshold(min_sigma, w, frames_per_hour)
        starts, stats = _box_peaks(cs, w, flank, medl, sl, medr, sr, thr)
        for i0, st in zip(starts.tolist(), stats.tolist(), strict=True):
            cands.append((abs(st), i0, w, 1.0 if st > 0 else -1.0))
    cands.sort(key=lambda c: -c[0])
    kept: list[tuple[int, int, float]] = []
    for _, i, w, sign in cands[:5000]:
        if all(i + w <= a or b <= i for a, b, _ in kept):
            kept.append((i, i + w, sign))
    # Refine the strongest first; samples of accepted transients are left out of the flanks of
    # the later ones (two drops must not make the stretch between them a "brightening").
    in_event = np.zeros(n, dtype=bool)
    t_start, t_stop, t_amp, t_level, t_sig = [], [], [], [], []
    for i, stop, sign in kept:
        w = stop - i
        fw = _flank_length(w, n, side[w][4])
        fl = np.concatenate((vd[max(0, i - fw) : i], vd[i + w : min(n, i + w + fw)]))
        fm = np.concatenate((in_event[max(0, i - fw) : i], in_event[i + w : min(n, i + w + fw)]))
        base = float(np.median(fl[~fm])) if (~fm).any() else float(np.median(fl))
        # the strongest box may be narrower than the event (red noise weighs on the wide
        # boxes): refine again from the refined box until it stops growing
        a, b = i, i + w
        for _ in range(REFINE_ROUNDS):
            lo, hi = max(0, a - 2 * (b - a)), min(n, a + 3 * (b - a))
            lcs = np.concatenate(([0.0], np.cumsum(vd[lo:hi] - base)))
            a2, b2 = _refine_box(lcs, hi - lo, a - lo, b - a, sign)
            a2, b2 = a2 + lo, b2 + lo
            if (a2, b2) == (a, b):
                break
            a, b = a2, b2
        length = b - a
        mbox = float(np.mean(vd[a:b]) - off)
        medl, sl, medr, sr, fw = _scaled(side, length, n)
        left = _flank(vd, in_event, a, fw, -1, fw + 2 * length) - off
        right = _flank(vd, in_event, b, fw, +1, fw + 2 * length) - off
        zs, levels = [], []
        for flank, med, s in ((left, medl, sl), (right, medr, sr)):
            if flank.size >= max(1, length // 4):
                scale_n = np.sqrt((1.0 / length + 1.0 / flank.size) / (1.0 / length + 1.0 / fw))
                zs.append((mbox - flank.mean() - med) / (s * scale_n))
                levels.append(float(flank.mean()))
        if not zs or (len(zs) == 2 and zs[0] * zs[1] <= 0):
            continue
        sig = float(min(abs(z) for z in zs))
        if sig < local_threshold(min_sigma, length, frames_per_hour):
            continue
        level = float(np.mean(levels))
        in_event[a:b] = True
        t_start.append(a)
        t_stop.append(b)
        t_amp.append(mbox - level)
        t_level.append(level + off)
        t_sig.append(sig)

    # --- steps: difference of the means after / before each sample
    scands = []  # (|z|, j, w)
    step_sig: dict[int, tuple[float, float]] = {}
    for w in _step_widths(step_n, n):
        med, s = step_stats[w][2]  # of the mean after j - mean before j
        white = math.sqrt(2.0 / w)
        s = max(s, sigma_f * white, pooled_noise(("step", w), w, white))
        if not math.isfinite(s):
            continue
        step_sig[w] = (med, s)
        thr = local_threshold(min_sigma, w, frames_per_hour)
        pos, zs = _step_peaks(cs, w, med, s, thr)
        for j0, z in zip(pos.tolist(), zs.tolist(), strict=True):
            scands.append((abs(z), j0, w))
    # Strongest first.  A candidate within min(w, w') of an accepted step is the same step; the
    # windows of a candidate stop at the accepted steps around it (a step seen by a wider
    # window 20 s away must not count twice), and leave out the samples of transients (a drop
    # next to the window is not a step; the edges of a drop are not steps either).
    scands.sort(key=lambda c: -c[0])
    accepted: list[int] = []  # sorted positions
    windows: dict[int, int] = {}
    s_index, s_amp, s_level, s_sig, s_window = [], [], [], [], []
    for _, j, w in scands[:5000]:
        if any(abs(j - jj) < min(w, windows[jj]) for jj in accepted):
            continue
        pos = bisect.bisect_left(accepted, j)
        lo = max(0, j - w, accepted[pos - 1] if pos > 0 else 0)
        hi = min(n, j + w, accepted[pos] if pos < len(accepted) else n)
        if j - lo < max(1, w // 4) or hi - j < max(1, w // 4):
            continue
        j = _refine_step(cs, lo, hi, j, w)
        before = _window(vd, in_event, lo, j)
        after = _window(vd, in_event, j, hi)
        if before.size < max(1, w // 4) or after.size < max(1, w // 4):
            continue
        med, s = step_sig[w]
        s_eff = s * np.sqrt(w * (1.0 / before.size + 1.0 / after.size) / 2.0)
        size = float(after.mean() - before.mean())
        sig = abs(size - med) / s_eff
        if sig < local_threshold(min_sigma, w, frames_per_hour):
            continue
        bisect.insort(accepted, j)
        windows[j] = w
        s_index.append(j)
        s_amp.append(size)
        s_level.append(float(before.mean()))
        s_sig.append(sig)
        s_window.append(w)

    return ParameterDetections(
        np.asarray(t_start, dtype=np.int64),
        np.asarray(t_stop, dtype=np.int64),
        np.asarray(t_amp, dtype=np.float64),
        np.asarray(t_level, dtype=np.float64),
        np.asarray(t_sig, dtype=np.float64),
        np.asarray(s_index, dtype=np.int64),
        np.asarray(s_amp, dtype=np.float64),
        np.asarray(s_level, dtype=np.float64),
        np.asarray(s_sig, dtype=np.float64),
        np.asarray(s_window, dtype=np.int64),
        sigma,
    )


def _classify(det: ParameterDetections) -> list[tuple[str, int, int, float, float, float]]:
    """Per-parameter events: (mode, start, stop, amplitude, level, significance).

    A step inside a transient, or within max(4 samples, a quarter of its length, half the step
    window) of one of its edges, is that edge and is dropped; the other steps are events.
    """
    out = []
    for a, b, amp, lev, sig in zip(
        det.t_start, det.t_stop, det.t_amp, det.t_level, det.t_sig, strict=True
    ):
        out.append(("transient", int(a), int(b), float(amp), float(lev), float(sig)))
    for j, amp, lev, sig, w in zip(
        det.s_index, det.s_amp, det.s_level, det.s_sig, det.s_window, strict=True
    ):
        absorbed = False
        for a, b in zip(det.t_start, det.t_stop, strict=True):
            tol = max(4, (b - a) // 4, w // 2)
            if a - tol <= j <= b + tol:
                absorbed = True
                break
        if not absorbed:
            out.append(("step", int(j), int(j), float(amp), float(lev), float(sig)))
    return out


def theta_continuous(theta: np.ndarray) -> np.ndarray:
    """Angles with period pi mapped to within pi/2 of their circular mean (no wrap jumps)."""
    c = np.nanmean(np.cos(2 * theta))
    s = np.nanmean(np.sin(2 * theta))
    centre = 0.5 * np.arctan2(s, c)
    return centre + (theta - centre + np.pi / 2) % np.pi - np.pi / 2


_theta_continuous = theta_continuous


def _pair_steps(found: list[tuple[str, int, int, float, float, float]]):
    """A rise of the jitter followed by a fall (next step, opposite sign) is one burst.

    The box filter misses jitter bursts that fill much of a short segment (its noise scale comes
    from the segment itself); their two edges are found as steps. Pairs become a transient from
    the first step to the second (amplitude of the first, significance the smaller).
    """
    steps = sorted((f for f in found if f[0] == "step"), key=lambda f: f[1])
    out = [f for f in found if f[0] != "step"]
    i = 0
    while i < len(steps):
        _, j, _, amp, lev, sig = steps[i]
        if i + 1 < len(steps) and steps[i + 1][3] * amp < 0:
            _, j2, _, _, _, sig2 = steps[i + 1]
            if not any(f[0] == "transient" and f[1] < j2 and j < f[2] for f in out):
                out.append(("transient", j, j2, amp, lev, min(sig, sig2)))
                i += 2
                continue
        out.append(steps[i])
        i += 1
    return out


def _pair_flux_steps(found: list[tuple[str, int, int, float, float, float]], max_len: int):
    """A fall of the flux followed by a rise of about the same size is one drop.

    A drop that fills a good part of its segment (or sits in one with red noise) raises the noise
    the box filter measures at its own scale, so only its two edges may pass, as steps. Two
    consecutive steps, the first down and the second up, within ``max_len`` samples (the widest
    box), sizes within a factor 2 of each other and no transient between them, become a transient
    from the first to the second (amplitude the mean of the two sizes, level before the first,
    significance the smaller).
    """
    steps = sorted((f for f in found if f[0] == "step"), key=lambda f: f[1])
    out = [f for f in found if f[0] != "step"]
    i = 0
    while i < len(steps):
        _, j, _, amp, lev, sig = steps[i]
        if i + 1 < len(steps):
            _, j2, _, amp2, _, sig2 = steps[i + 1]
            if (
                amp < 0 < amp2
                and j2 - j <= max_len
                and 0.5 <= amp2 / -amp <= 2.0
                and not any(f[0] == "transient" and f[1] < j2 and j < f[2] for f in out)
            ):
                out.append(("transient", j, j2, 0.5 * (amp - amp2), lev, min(sig, sig2)))
                i += 2
                continue
        out.append(steps[i])
        i += 1
    return out


def _jitter_job(arrays, names, a0, b0, block, cad, box_widths_s, step_windows_s):
    """The jitter series of one segment: log of the variance of the centroid series ``names``
    about their mean in blocks of ``block`` frames (frames where all are finite), averaged over
    the names.

    The variance about the block mean sees every motion faster than the block (a
    high-gain-antenna move's ~0.5-s wander shows at ~5x the white centroid noise in 1-s blocks)
    while slow pointing drifts stay out; frame-to-frame differences saw such a wander at only
    ~2x, under the thresholds.

    Returns a job tuple (name, values, first frame, last frame, blocks/hour, box_n, step_n) or None
    when the segment has fewer than ``MIN_SEGMENT_FRAMES`` blocks.
    """
    ok = np.ones(b0 - a0, dtype=bool)
    for nm in names:
        ok &= np.isfinite(arrays[nm][a0:b0])
    gidx = np.flatnonzero(ok) + a0
    nb = gidx.size // block
    if nb < MIN_SEGMENT_FRAMES:
        return None
    var = np.zeros(nb)
    for nm in names:
        x = arrays[nm][gidx[: nb * block]].reshape(nb, block)
        var += x.var(axis=1, ddof=1)
    var = np.maximum(var / len(names), np.finfo(float).tiny)
    first = gidx[np.arange(nb) * block]
    last = gidx[(np.arange(nb) + 1) * block - 1]
    block_s = block * cad
    bn = [max(2, int(round(w / block_s))) for w in box_widths_s]
    sn = [max(1, int(round(w / block_s))) for w in step_windows_s]
    return ("jitter", np.log(var), first, last, 3600.0 / block_s, bn, sn)


def detect_anomalies(
    time_mjd: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    min_sigma: float = 5.0,
    cadence_s: float | None = None,
    box_widths_s: Sequence[float] = BOX_WIDTHS_S,
    step_windows_s: Sequence[float] = STEP_WINDOWS_S,
    gap_s: float | None = None,
    merge_gap_s: float = 2.0,
    workers: int | None = None,
    jitter_block_s: float | None = JITTER_BLOCK_S,
    noise_pooling: bool = True,
) -> pl.DataFrame:
    """Flux drops, centroid jumps, PSF changes, ... in the parameter series of one guide star.

    Parameters
    ----------
    time_mjd : (n,) frame mid-times, MJD, sorted.
    series : parameter name -> (n,) values (NaN = masked frame), e.g. flux, x_mean, y_mean,
        x_stddev, y_stddev, theta, background.  The name sets the family (``parameter_family``),
        hence the event kinds and the amplitude unit.
    min_sigma : false-alarm level in Gaussian sigmas: at each filter scale the local threshold
        is raised for the number of independent trials per hour at that scale
        (``local_threshold``; 6.5 sigma for 0.5 s windows at 64 ms, 5.6 sigma for 2 min), so a
        noise series gives about 2 sf(min_sigma) false alarms per hour per scale.  Noise is
        measured at each filter scale (``detect_parameter``).
    cadence_s : frame spacing; default the median spacing of ``time_mjd``.
    box_widths_s, step_windows_s : filter scales (seconds), converted to frames.
    gap_s : a spacing above this splits the series into segments analysed separately
        (default 10 cadences).
    merge_gap_s : detections (of any parameters) closer than this are merged into one event.
    workers : threads over (segment, parameter) jobs; default the number of CPUs (1 is best
        where processes already fill the CPUs: threads cost ~10 % on a busy CPU).
    jitter_block_s : when centroid series (x_mean, y_mean) are given, also search the pointing
        jitter: the log of the centroid's variance about its mean in blocks of this many
        seconds is a series of its own (parameter ``jitter``, kinds ``jitter_burst`` /
        ``jitter_lull`` / ``jitter_change``, amplitude = fractional change of the RMS), searched
        with the same filters. ``None`` turns it off.
    noise_pooling : the noise at each filter scale is the larger of the segment's own and the
        robust scale pooled over all segments of the call (per parameter), widened for the
        number of independent samples it rests on (``small_sample_factor``). ``False``: each
        segment's own scale alone (the round-1 rule, for comparison in benches).

    Returns
    -------
    polars.DataFrame with columns ``ANOMALY_SCHEMA``: event_id, kind (of the most significant
    detection: flux_drop, flux_brightening, flux_step, centroid_jump, centroid_excursion,
    psf_change, psf_transient, theta_change, theta_transient, background_jump,
    background_transient, ...), start_mjd, end_mjd, duration_s (0 for a step), parameters and
    kinds (most significant first), amplitude (of the most significant detection: signed fraction
    of the baseline for flux, widths and the PSF amplitude, -0.01 = a 1% drop; px for centroids; rad for theta;
    parameter units otherwise), significance (max), n_detections, start_index / end_index
    (inclusive, into the input arrays), detections (list of structs per parameter).
    """
    t_mjd = np.asarray(time_mjd, dtype=np.float64)
    n = t_mjd.size
    if t_mjd.ndim != 1:
        raise ValueError(f"time_mjd must be 1-D, got shape {t_mjd.shape}")
    if not series:
        raise ValueError("series is empty; give at least one parameter, e.g. {'flux': flux}")
    if not min_sigma > 0:
        raise ValueError(f"min_sigma must be > 0, got {min_sigma}")
    arrays = {}
    for name, arr in series.items():
        a = np.asarray(arr, dtype=np.float64)
        if a.shape != (n,):
            raise ValueError(f"series {name!r} has shape {a.shape}; time_mjd has ({n},)")
        arrays[str(name)] = a
    if n > 1 and np.any(np.diff(t_mjd) < 0):
        raise ValueError("time_mjd must be sorted in increasing order")
    t_s = (t_mjd - (t_mjd[0] if n else 0.0)) * SECONDS_PER_DAY
    cad = float(cadence_s) if cadence_s is not None else median_cadence_s(t_s)
    if n < MIN_SEGMENT_FRAMES or not np.isfinite(cad) or cad <= 0:
        return pl.DataFrame(schema=ANOMALY_SCHEMA)
    gap = 10.0 * cad if gap_s is None else float(gap_s)
    box_n = [max(2, int(round(w / cad))) for w in box_widths_s]
    step_n = [max(1, int(round(w / cad))) for w in step_windows_s]

    rows: dict[str, list] = {
        k: []
        for k in ("parameter", "kind", "start_mjd", "end_mjd", "start_index", "end_index")
        + ("amplitude", "significance")
    }
    half = 0.5 * cad / SECONDS_PER_DAY
    fph = 3600.0 / cad
    jobs = []  # (name, values, first frame index, last frame index, frames/hour, box_n, step_n)
    centroid_names = [nm for nm in arrays if parameter_family(nm) == "centroid"]
    block = max(4, int(round(jitter_block_s / cad))) if jitter_block_s else 0
    for a0, b0 in split_segments(t_s, gap):
        if b0 - a0 < MIN_SEGMENT_FRAMES:
            continue
        for name, arr in arrays.items():
            ok = np.isfinite(arr[a0:b0])
            if ok.sum() >= MIN_SEGMENT_FRAMES:
                gidx = np.flatnonzero(ok) + a0
                v = arr[gidx]
                if parameter_family(name) == "theta":
                    v = _theta_continuous(v)
                jobs.append((name, v, gidx, gidx, fph, box_n, step_n))
        if block and centroid_names:
            job = _jitter_job(
                arrays, centroid_names, a0, b0, block, cad, box_widths_s, step_windows_s
            )
            if job is not None:
                jobs.append(job)

    # each job's despiked series and filter outputs, shared by its noise samples and its search
    prepared: list = []
    index = {id(j): k for k, j in enumerate(jobs)}

    def prepare(job):
        return _segment_scales(job[1], job[5], job[6])

    def samples(job):
        _, v, _, _, _, bn, sn = job
        if not noise_pooling:
            return {}
        return scale_noise_samples(v, box_n=bn, step_n=sn, prepared=prepared[index[id(job)]])

    memos: dict[str, dict] = {job[0]: {} for job in jobs}  # pooled_scale values per parameter

    def run(job, pooled):
        _, v, _, _, per_hour, bn, sn = job
        if not noise_pooling:
            pooled = {}
        return detect_parameter(
            v,
            box_n=bn,
            step_n=sn,
            min_sigma=min_sigma,
            frames_per_hour=per_hour,
            pooled=pooled,
            prepared=prepared[index[id(job)]],
            scale_memo=memos[job[0]],
        )

    n_workers = min(len(jobs), workers if workers is not None else (os.cpu_count() or 1))
    # The noise at each scale is pooled over the segments of the run (per parameter): a
    # segment of a few thousand frames holds only a handful of independent wide boxes.
    if n_workers > 1:
        # the filters are compiled with nogil and numpy releases the GIL on large arrays
        with ThreadPoolExecutor(n_workers) as pool:
            prepared[:] = pool.map(prepare, jobs)
            per_job = list(pool.map(samples, jobs))
            by_name = _pool_by_name(jobs, per_job)
            results = list(pool.map(run, jobs, [by_name[j[0]] for j in jobs]))
    else:
        prepared[:] = [prepare(job) for job in jobs]
        per_job = [samples(job) for job in jobs]
        by_name = _pool_by_name(jobs, per_job)
        results = [run(job, by_name[job[0]]) for job in jobs]

    for (name, _, first, last, _, job_box_n, _), det in zip(jobs, results, strict=True):
        family = parameter_family(name)
        below, above, step_kind = _kinds(family)
        found = _classify(det)
        if family == "jitter":
            found = _pair_steps(found)
        elif family == "flux":
            found = _pair_flux_steps(found, max(job_box_n))
        for mode, a, b, amp, level, sig in found:
            if family == "jitter":
                amp = float(np.expm1(0.5 * amp))  # log variance -> fractional change of the RMS
            elif family in _FRACTIONAL:
                amp = amp / level if level != 0 else np.nan
            if mode == "transient":
                kind = below if amp < 0 else above
                i0, i1 = int(first[a]), int(last[b - 1])
                start, end = t_mjd[i0] - half, t_mjd[i1] + half
            else:
                kind = step_kind
                i0, i1 = int(last[a - 1]), int(first[a])
                start = end = t_mjd[i1] - half
            rows["parameter"].append(name)
            rows["kind"].append(kind)
            rows["start_mjd"].append(float(start))
            rows["end_mjd"].append(float(end))
            rows["start_index"].append(i0)
            rows["end_index"].append(i1)
            rows["amplitude"].append(float(amp))
            rows["significance"].append(float(sig))
    det_df = pl.DataFrame(
        rows,
        schema={
            "parameter": pl.String,
            "kind": pl.String,
            "start_mjd": pl.Float64,
            "end_mjd": pl.Float64,
            "start_index": pl.Int64,
            "end_index": pl.Int64,
            "amplitude": pl.Float64,
            "significance": pl.Float64,
        },
    )
    return _merge(det_df, merge_gap_s)


def _pool_by_name(jobs: list, per_job: list[dict]) -> dict[str, dict]:
    """Pooled scale noise per parameter name over all its segments (``pool_scale_noise``)."""
    grouped: dict[str, list[dict]] = {}
    for job, smp in zip(jobs, per_job, strict=True):
        grouped.setdefault(job[0], []).append(smp)
    return {name: pool_scale_noise(items) for name, items in grouped.items()}


def _merge(det: pl.DataFrame, merge_gap_s: float) -> pl.DataFrame:
    if det.height == 0:
        return pl.DataFrame(schema=ANOMALY_SCHEMA)
    det = det.sort("start_mjd")
    start = det["start_mjd"].to_numpy()
    end = det["end_mjd"].to_numpy()
    reach = np.maximum.accumulate(end)
    new = np.concatenate(([True], start[1:] > reach[:-1] + merge_gap_s / SECONDS_PER_DAY))
    family = pl.Series([parameter_family(p) for p in det["parameter"].to_list()], dtype=pl.String)
    det = det.with_columns(
        pl.Series("event_id", np.cumsum(new) - 1, dtype=pl.Int64), family.alias("__family")
    )
    # Secondary detections name an event only when nothing else shows it: the PSF amplitude
    # (it follows both the flux and the widths), and centroid excursions and flux changes inside
    # a jitter burst (the burst explains them: the star wanders across the aperture).
    burst = (pl.col("kind") == "jitter_burst").any().over("event_id")
    det = det.with_columns(
        (
            pl.col("__family").is_in(list(_SECONDARY))
            | (pl.col("__family").is_in(["centroid", "flux"]) & burst)
        ).alias("__secondary")
    )
    by_sig = {"by": "significance", "descending": True}
    # the event's kind and amplitude: its most significant detection, secondary ones last
    by_primary = {"by": ["__secondary", "significance"], "descending": [False, True]}
    out = (
        det.group_by("event_id", maintain_order=True)
        .agg(
            pl.col("kind").sort_by(**by_primary).first().alias("kind"),
            pl.col("start_mjd").min(),
            pl.col("end_mjd").max(),
            pl.col("parameter").sort_by(**by_sig).unique(maintain_order=True).alias("parameters"),
            pl.col("kind").sort_by(**by_sig).unique(maintain_order=True).alias("kinds"),
            pl.col("amplitude").sort_by(**by_primary).first(),
            pl.col("significance").max(),
            pl.len().cast(pl.Int64).alias("n_detections"),
            pl.col("start_index").min(),
            pl.col("end_index").max(),
            pl.struct("parameter", "kind", "start_mjd", "end_mjd", "amplitude", "significance")
            .sort_by(**by_sig)
            .alias("detections"),
        )
        .with_columns(
            ((pl.col("end_mjd") - pl.col("start_mjd")) * SECONDS_PER_DAY).alias("duration_s")
        )
    )
    return out.select([pl.col(c).cast(t) for c, t in ANOMALY_SCHEMA.items()])


def cross_match_events(
    anomalies: pl.DataFrame, events: pl.DataFrame, *, window_s: float = 30.0
) -> pl.DataFrame:
    """Add to each anomaly the observatory events that overlap it within ``window_s``.

    ``events`` has kind, start_mjd, end_mjd and any other columns (details: mechanism, state,
    ...).  An event coincides with an anomaly when ``[start, end]`` intervals overlap once the
    anomaly's is widened by ``window_s`` on each side.  Adds ``coincident_events`` (list of
    structs: every column of ``events`` plus ``offset_s`` = event start - anomaly start) and
    ``coincident_kinds`` (distinct event kinds, in time order).
    """
    for col in ("start_mjd", "end_mjd"):
        if col not in anomalies.columns:
            raise ValueError(f"anomalies lacks column {col!r}; it has {anomalies.columns}")
    for col in ("kind", "start_mjd", "end_mjd"):
        if col not in events.columns:
            raise ValueError(f"events lacks column {col!r}; it has {events.columns}")
    w = window_s / SECONDS_PER_DAY
    ev_cols = events.columns
    ev = events.rename({c: f"__ev_{c}" for c in ev_cols})
    an = anomalies.with_row_index("__row")
    pairs = an.select("__row", "start_mjd", "end_mjd").join_where(
        ev,
        pl.col("__ev_start_mjd") <= pl.col("end_mjd") + w,
        pl.col("__ev_end_mjd") >= pl.col("start_mjd") - w,
    )
    pairs = pairs.with_columns(
        ((pl.col("__ev_start_mjd") - pl.col("start_mjd")) * SECONDS_PER_DAY).alias("__ev_offset_s")
    ).sort("__row", "__ev_start_mjd")
    struct_fields = [pl.col(f"__ev_{c}").alias(c) for c in ev_cols] + [
        pl.col("__ev_offset_s").alias("offset_s")
    ]
    agg = pairs.group_by("__row").agg(
        pl.struct(struct_fields).alias("coincident_events"),
        pl.col("__ev_kind").unique(maintain_order=True).alias("coincident_kinds"),
    )
    out = an.join(agg, on="__row", how="left").sort("__row")
    struct_dtype = agg.schema["coincident_events"]
    kinds_dtype = agg.schema["coincident_kinds"]
    out = out.with_columns(
        pl.col("coincident_events").fill_null(pl.lit([], dtype=struct_dtype)),
        pl.col("coincident_kinds").fill_null(pl.lit([], dtype=kinds_dtype)),
    )
    return out.drop("__row")
