"""Time helpers of the simulator: MJD (UTC, days) to ISO strings, file stamps, frame times."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np

_SECONDS_PER_DAY = 86400.0
_MJD_ZERO = datetime(1858, 11, 17)
_MJD_ZERO_NP = np.datetime64("1858-11-17T00:00:00", "us")


def _mjd_to_datetime(mjd: float) -> datetime:
    return _MJD_ZERO + timedelta(microseconds=round(mjd * _SECONDS_PER_DAY * 1e6))


def mjd_to_iso(mjd: float | np.ndarray, *, sep: str = "T", unit: str = "ms") -> Any:
    """MJD (UTC, days) -> ISO string(s) ``YYYY-MM-DD<sep>hh:mm:ss.fff`` (rounded to ``unit``).

    Works on scalars and arrays (vectorised through ``numpy.datetime64``); arrays give a
    numpy array of ``str``.
    """
    arr = np.asarray(mjd, dtype=np.float64)
    per_s = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    ticks = np.round(arr * (_SECONDS_PER_DAY * per_s)).astype(np.int64)
    dt = np.datetime64("1858-11-17T00:00:00", unit) + ticks.astype(f"timedelta64[{unit}]")
    out = np.datetime_as_string(dt, unit=unit)
    if sep != "T":
        out = np.char.replace(out, "T", sep)
    if np.ndim(mjd) == 0:
        return str(out)
    return out


def _mjd_to_bytes(mjd: np.ndarray, width: int = 23) -> np.ndarray:
    """Vectorised MJD -> ``b'YYYY-MM-DD hh:mm:ss.fff'`` (S23) without Python loops."""
    ms = np.round(np.asarray(mjd, np.float64) * (_SECONDS_PER_DAY * 1e3)).astype(np.int64)
    dt = np.datetime64("1858-11-17T00:00:00", "ms") + ms.astype("timedelta64[ms]")
    s = np.datetime_as_string(dt, unit="ms").astype(f"S{width}")
    view = s.view(np.uint8).reshape(len(s), width)
    view[:, 10] = ord(" ")
    return s


def file_stamp(mjd: float) -> str:
    """File-name stamp ``%Y%j%H%M%S`` (UTC, day of year) of an MJD, truncated to the second."""
    return _mjd_to_datetime(mjd).strftime("%Y%j%H%M%S")


def _utc_str(mjd: float) -> str:
    """UTC string in the header style ``'YYYY-MM-DD hh:mm:ss.fff'``."""
    return mjd_to_iso(mjd, sep=" ")


def _frame_times(data_start: float, data_end: float, n: int) -> np.ndarray:
    """Mid-times of the frames of one file by the CONVENTIONS.md time rule (MJD)."""
    dt = (data_end - data_start) / n
    return data_start + (np.arange(n, dtype=np.float64) + 0.5) * dt


def _safe_end_start(start: float, duration_s: float) -> float:
    """Nudge ``start`` so the end is >= 5 ms from a whole second (unambiguous stamps)."""
    for _ in range(100):
        end_s = (start + duration_s / _SECONDS_PER_DAY) * _SECONDS_PER_DAY
        frac = end_s - math.floor(end_s)
        if 0.005 < frac < 0.995:
            return start
        start += 0.0137 / _SECONDS_PER_DAY
    return start
