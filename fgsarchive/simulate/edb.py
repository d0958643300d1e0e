"""EDB-style telemetry (``SA_ZHGAUPST``, ``INIS_FWMTRCURR``) from the telemetry truth."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import polars as pl

from .times import _MJD_ZERO_NP, _SECONDS_PER_DAY, mjd_to_iso


def _hash_noise(k: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-noise in [-1, 1) from integer sample indices."""
    x = np.sin(k.astype(np.float64) * 12.9898 + 78.233) * 43758.5453
    return 2.0 * (x - np.floor(x)) - 1.0


def edb_timeseries(
    telemetry: pl.DataFrame | str | os.PathLike[str],
    mnemonic: str,
    start_mjd: float,
    end_mjd: float,
    *,
    cadence_s: float = 1.0,
    include_bracket: bool = True,
) -> pl.DataFrame:
    """EDB-style rows ``theTime, MJD, euvalue, sqldataType`` for a mnemonic and time range.

    ``telemetry`` is the telemetry truth (a frame, a truth dir, or its ``telemetry.parquet``).
    ``SA_ZHGAUPST``: change-only text points (``MOVING`` at each HGA move start,
    ``FINISHED`` at its end, plus a ``FINISHED`` baseline point before the first move).
    ``INIS_FWMTRCURR``: real current [A] sampled every ``cadence_s`` seconds on a grid of
    whole multiples of ``cadence_s`` since MJD 0: ~0 (|noise| <= 2 mA, deterministic) and the
    move's ``current`` while a filter-wheel move is on. Like MAST, one bracketing point
    before and after the range is included when ``include_bracket``. ``euvalue`` is text
    (as in the CSV); ``theTime`` is ``'YYYY-MM-DD hh:mm:ss.ffffff'`` UTC.
    """
    if not isinstance(telemetry, pl.DataFrame):
        p = Path(telemetry)
        telemetry = pl.read_parquet(p / "telemetry.parquet" if p.is_dir() else p)
    mn = mnemonic.strip().upper()
    tel = telemetry.filter(pl.col("mnemonic") == mn).sort("start_mjd")
    if mn == "SA_ZHGAUPST":
        starts = tel["start_mjd"].to_numpy()
        ends = tel["end_mjd"].to_numpy()
        base = (starts.min() if starts.size else start_mjd) - 0.5
        times = np.concatenate([[base], starts, ends])
        vals = np.array(["FINISHED"] + ["MOVING"] * starts.size + ["FINISHED"] * ends.size)
        order = np.argsort(times, kind="stable")
        times, vals = times[order], vals[order]
        inside = (times >= start_mjd) & (times <= end_mjd)
        keep = inside.copy()
        if include_bracket:
            before = np.nonzero(times < start_mjd)[0]
            after = np.nonzero(times > end_mjd)[0]
            if before.size:
                keep[before[-1]] = True
            if after.size:
                keep[after[0]] = True
        times, vals = times[keep], vals[keep]
        sqltype = "varchar"
        euvalue = vals.astype(str)
        the_time = mjd_to_iso(times, sep=" ", unit="us") if times.size else np.array([], str)
    elif mn == "INIS_FWMTRCURR":
        step = cadence_s / _SECONDS_PER_DAY
        step_us = int(round(cadence_s * 1e6))
        k0 = math.ceil(start_mjd / step - 1e-9) - (1 if include_bracket else 0)
        k1 = math.floor(end_mjd / step + 1e-9) + (1 if include_bracket else 0)
        k = np.arange(k0, k1 + 1, dtype=np.int64)
        times = k * step
        the_time = np.char.replace(
            np.datetime_as_string(
                _MJD_ZERO_NP + (k * step_us).astype("timedelta64[us]"), unit="us"
            ),
            "T",
            " ",
        )
        cur = 0.002 * _hash_noise(k)
        for s, e, c in zip(
            tel["start_mjd"].to_numpy(),
            tel["end_mjd"].to_numpy(),
            tel["value"].to_numpy(),
            strict=True,
        ):
            m = (times >= s) & (times < e)
            cur[m] += c * (1.0 + 0.05 * _hash_noise(k[m] + 7))
        sqltype = "real"
        euvalue = np.char.mod("%.10f", cur)
    else:
        raise ValueError(f"no simulated telemetry for mnemonic {mnemonic!r}")
    return pl.DataFrame(
        {
            "theTime": the_time,
            "MJD": times.astype(np.float64),
            "euvalue": euvalue,
            "sqldataType": np.full(times.size, sqltype),
        },
        schema={"theTime": pl.Utf8, "MJD": pl.Float64, "euvalue": pl.Utf8, "sqldataType": pl.Utf8},
    )


def edb_csv(rows: pl.DataFrame) -> str:
    """MAST EDB CSV text (header ``theTime,MJD,euvalue,sqldataType``, CRLF line ends)."""
    lines = ["theTime,MJD,euvalue,sqldataType"]
    for r in rows.iter_rows():
        lines.append(f"{r[0]},{r[1]:.10f},{r[2]},{r[3]}")
    return "\r\n".join(lines) + "\r\n"
