"""Shared robust helpers for the analyses: noise estimates, running medians, gaps, detrending.

Pure array maths, no I/O. Times are seconds (``*_s``) unless a name says otherwise.
"""

from __future__ import annotations

from typing import Literal, get_args

import numba
import numpy as np
from scipy import ndimage

__all__ = [
    "MAD_TO_SIGMA",
    "DetrendMethod",
    "median_cadence_s",
    "split_segments",
    "robust_std",
    "median_and_std",
    "diff_noise",
    "running_median",
    "despike",
    "moving_sum",
    "detrend_series",
]

MAD_TO_SIGMA = 1.482602218505602
"""Scale from the median absolute deviation to the standard deviation of a Gaussian."""

MAX_STAT_SAMPLES = 100_000
"""Robust statistics of long series use an evenly spaced subset of about this many samples."""

DetrendMethod = Literal["median", "linear", "none"]
DETREND_METHODS: tuple[str, ...] = get_args(DetrendMethod)


def check_option(name: str, value: str, valid: tuple[str, ...]) -> None:
    """Raise a ValueError listing the valid values when ``value`` is not one of them."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid values: {', '.join(map(repr, valid))}")


def median_cadence_s(time_s: np.ndarray) -> float:
    """Median spacing of a sorted time array (seconds); NaN when fewer than two samples."""
    time_s = np.asarray(time_s, dtype=np.float64)
    if time_s.size < 2:
        return float("nan")
    return float(np.median(np.diff(time_s)))


def split_segments(time_s: np.ndarray, gap_s: float) -> list[tuple[int, int]]:
    """Half-open index ranges ``[start, stop)`` of runs of samples with spacing <= ``gap_s``.

    ``time_s`` must be sorted.  A spacing larger than ``gap_s`` starts a new segment.
    """
    n = len(time_s)
    if n == 0:
        return []
    breaks = np.flatnonzero(np.diff(time_s) > gap_s) + 1
    edges = np.concatenate(([0], breaks, [n]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def robust_std(x: np.ndarray, *, stride: int = 1) -> float:
    """Standard deviation from the median absolute deviation (1.4826 MAD), NaNs ignored.

    ``stride`` > 1 estimates it from every ``stride``-th sample (enough for long, smooth series);
    the stride is raised so that at most about ``MAX_STAT_SAMPLES`` samples are used.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[:: max(1, int(stride), x.size // MAX_STAT_SAMPLES)]
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    med = np.median(x)
    return float(MAD_TO_SIGMA * np.median(np.abs(x - med)))


def median_and_std(x: np.ndarray, *, max_samples: int = MAX_STAT_SAMPLES) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 MAD) of the finite values of ``x``, from an
    evenly spaced subset of at most about ``max_samples`` of them."""
    x = np.asarray(x, dtype=np.float64)
    x = x[:: max(1, x.size // max_samples)]
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(x))
    return med, float(MAD_TO_SIGMA * np.median(np.abs(x - med)))


def diff_noise(x: np.ndarray, *, max_samples: int = MAX_STAT_SAMPLES) -> float:
    """Per-sample white-noise level: 1.4826 MAD of the first differences / sqrt(2).

    Insensitive to trends, steps and slow (red) variations; NaNs are dropped first.  Long series
    use an evenly spaced subset of at most ``max_samples`` differences.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 3:
        return float("nan")
    d = np.diff(x)[:: max(1, (x.size - 1) // max_samples)]
    return float(MAD_TO_SIGMA * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def running_median(x: np.ndarray, window_n: int) -> np.ndarray:
    """Centred running median over ``window_n`` samples.

    ``x`` must be finite.  The window is clipped to the series length and made odd.  A running
    median preserves steps (its output switches at the step), so its residual shows transients
    shorter than about half the window but not steps.  Within half a window of either end, where
    a centred window does not fit, the baseline is the straight line through the medians of the
    two halves of the first (last) window: it follows a slope there without leaning on the noisy
    end samples.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    w = int(min(max(1, window_n), n))
    if w % 2 == 0:
        w -= 1
    if w <= 2:
        return x.copy()
    out = ndimage.median_filter(x, size=w, mode="nearest")
    h = w // 2
    q = max(1, w // 2)
    for sl, idx in ((slice(0, w), np.arange(0, h)), (slice(n - w, n), np.arange(n - h, n))):
        seg = x[sl]
        m1, m2 = np.median(seg[:q]), np.median(seg[-q:])
        c1 = sl.start + 0.5 * (q - 1)
        c2 = sl.stop - 1 - 0.5 * (q - 1)
        out[idx] = m1 + (m2 - m1) * (idx - c1) / (c2 - c1)
    return out


@numba.njit(cache=True, nogil=True)
def _median5(x, out):  # pragma: no cover - compiled
    n = x.shape[0]
    buf = np.empty(5)
    for i in range(n):
        lo = max(0, i - 2)
        hi = min(n, i + 3)
        m = hi - lo
        for j in range(m):
            buf[j] = x[lo + j]
        # insertion sort of at most five values
        for j in range(1, m):
            v = buf[j]
            k = j - 1
            while k >= 0 and buf[k] > v:
                buf[k + 1] = buf[k]
                k -= 1
            buf[k + 1] = v
        if m % 2 == 1:
            out[i] = buf[m // 2]
        else:
            out[i] = 0.5 * (buf[m // 2 - 1] + buf[m // 2])


def despike(x: np.ndarray, *, threshold: float | None = None) -> np.ndarray:
    """Replace one- and two-sample spikes by the running median of five samples.

    With ``threshold`` only samples further than ``threshold`` from that median are replaced (the
    others keep their value, so white noise keeps its statistics); without, every sample is.
    Steps and boxes longer than two samples are preserved either way.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    med = np.empty_like(x)
    if x.size:
        _median5(x, med)
    if threshold is None:
        return med
    return np.where(np.abs(x - med) > threshold, med, x)


def moving_sum(cumsum0: np.ndarray, width: int) -> np.ndarray:
    """Sums over every window of ``width`` samples, from a cumulative sum that starts with 0.

    ``cumsum0 = np.concatenate(([0], np.cumsum(x)))``; element i is ``x[i:i+width].sum()``.
    """
    return cumsum0[width:] - cumsum0[:-width]


def detrend_series(
    time_s: np.ndarray,
    values: np.ndarray,
    *,
    method: DetrendMethod = "median",
    window_s: float | None = None,
    gap_s: float | None = None,
) -> np.ndarray:
    """Detrend each row of ``values`` (shape (k, n) or (n,)) segment by segment.

    Segments are runs of samples separated by less than ``gap_s`` (default: 10 median cadences).
    NaNs are ignored and kept as NaN.

    - ``"median"``: subtract the segment median; with ``window_s``, subtract instead a running
      median over ``window_s`` seconds (a high-pass filter: removes variations slower than about
      ``window_s``) computed over the finite samples of the segment.
    - ``"linear"``: subtract a least-squares straight line per segment.
    - ``"none"``: return a copy.
    """
    check_option("detrend", method, DETREND_METHODS)
    time_s = np.asarray(time_s, dtype=np.float64)
    vals = np.array(values, dtype=np.float64, copy=True)
    one_d = vals.ndim == 1
    vals = np.atleast_2d(vals)
    if method == "none" or time_s.size == 0:
        return vals[0] if one_d else vals
    cadence = median_cadence_s(time_s)
    if gap_s is None:
        gap_s = 10.0 * cadence if np.isfinite(cadence) and cadence > 0 else np.inf
    for a, b in split_segments(time_s, gap_s):
        t = time_s[a:b]
        for row in vals:
            seg = row[a:b]
            ok = np.isfinite(seg)
            if not ok.any():
                continue
            y = seg[ok]
            if method == "median":
                if window_s is None:
                    seg[ok] = y - np.median(y)
                else:
                    wn = int(round(window_s / cadence)) if cadence > 0 else len(y)
                    seg[ok] = y - running_median(y, wn)
            else:  # linear
                tt = t[ok]
                if y.size >= 2 and np.ptp(tt) > 0:
                    tc = tt - tt.mean()
                    slope = np.dot(tc, y - y.mean()) / np.dot(tc, tc)
                    seg[ok] = y - y.mean() - slope * tc
                else:
                    seg[ok] = y - y.mean()
    return vals[0] if one_d else vals
