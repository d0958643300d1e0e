"""Speed of ``runner.load_series`` before and after the one-statement read, side by side.

Usage: python scripts/bench_load_series.py DB [--repeats 3] [--grouping visit]

Reads every unit (a visit, or ``--grouping guide_star``: one star's files in one program) of the
archive ``DB`` (fitted) with the previous implementation (kept below verbatim, polars joins per
dataset and per program) and with the current one (``analysis/series``: one DuckDB statement per
unit), alternating, ``--repeats`` times; checks that both give the same frame (columns, dtypes,
values, NaN where NaN) and prints the best and median seconds of each, frames/s and the speed-up.
The machine may be shared: the ratio, measured side by side, is the figure to trust.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from fgsarchive.analysis.detrend import calibrate_flux_opt
from fgsarchive.analysis.runner import (
    _FIT_DATASET,
    _FRAME_DATASET,
    _PHOT_DATASET,
    _SERIES_SCHEMA,
    FIT_PARAMETERS,
    _fg_files,
    _load_units,
    _table,
    load_series,
)
from fgsarchive.db import Database
from fgsarchive.storage import part_name


def load_series_before(
    db: Database,
    con,
    files: pl.DataFrame,
    *,
    fits: bool = True,
    photometry: bool = True,
    mask: bool = True,
) -> pl.DataFrame:
    """runner.load_series as it was before the one-statement read (commit f8465bd), verbatim.

    Columns: file_name, frame, time_mjd, flux (frames), the Gaussian parameters and ``status``
    (``fits``, newest fit_version of each file), background, flux_r2, flux_opt, n_opt_pixels
    (``photometry``), plus each file's program, observation, visit, gs_id, guide_period and
    frame_time_s. With ``mask``, every value of a frame whose fit did not converge
    (``status != 0``) is NaN. Missing values are NaN too (a file without photometry, ...).
    """
    parts = []
    datasets = {"analysis/frames": _FRAME_DATASET}
    if fits:
        datasets["analysis/fits"] = _FIT_DATASET
    if photometry:
        datasets["analysis/photometry"] = _PHOT_DATASET
    for (prog,), sel in files.group_by("program", maintain_order=True):
        df = None
        for statement, dataset in datasets.items():
            # each file's own parts: a unit's read costs the same in a 20M-frame archive as in a
            # small one (a view over every part lists and filters them all, per query)
            paths = [
                str(path)
                for name in sel["file_name"].to_list()
                for path in db.parts.parts_of(dataset, int(prog), part_name(name))
            ]
            if not paths:
                if df is None:
                    break  # no frames: nothing to join to
                continue
            table = _table(db, con, statement, {"paths": paths})
            df = table if df is None else df.join(table, on=["file_name", "frame"], how="left")
        if df is not None:
            parts.append(df)
    if not parts:
        return pl.DataFrame(schema=_SERIES_SCHEMA)
    df = pl.concat(parts, how="diagonal_relaxed")
    meta = files.select(
        "file_name", "program", "observation", "visit", "gs_id", "guide_period", "frame_time_s"
    )
    df = df.join(meta, on="file_name", how="left").sort("time_mjd", "file_name", "frame")
    value_cols = [
        c for c in (*FIT_PARAMETERS, "flux", "background", "flux_r2", "flux_opt") if c in df.columns
    ]
    df = df.with_columns(pl.col(c).cast(pl.Float64).fill_null(np.nan) for c in value_cols)
    if mask and "status" in df.columns:
        bad = pl.col("status").is_not_null() & (pl.col("status") != 0)
        df = df.with_columns(
            pl.when(bad).then(np.nan).otherwise(pl.col(c)).alias(c) for c in value_cols
        )
    if "flux_opt" in df.columns:
        df = calibrate_flux_opt(df)
    return df


def read_all(fn, db: Database, con, units: list[pl.DataFrame]) -> tuple[float, int, list]:
    """Seconds to read every unit with ``fn``, frames read, the frames."""
    t = time.perf_counter()
    out = [fn(db, con, u) for u in units]
    return time.perf_counter() - t, sum(df.height for df in out), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grouping", choices=("visit", "guide_star"), default="visit")
    opts = parser.parse_args()
    db = Database(opts.db)
    times: dict[str, list[float]] = {"before": [], "after": []}
    with db.reader() as con:
        files = _fg_files(db, con, None)
        units = _load_units(files, opts.grouping)
        # once each to warm the page cache and check the answers agree
        _, frames, before = read_all(load_series_before, db, con, units)
        _, _, after = read_all(load_series, db, con, units)
        for a, b in zip(before, after, strict=True):
            assert_frame_equal(a, b, check_exact=True)
        print(
            f"{len(units)} units ({opts.grouping}), {files.height} files, {frames:,} frames: "
            "identical frames (columns, dtypes, values)"
        )
        del before, after
        for _ in range(opts.repeats):
            for name, fn in (("before", load_series_before), ("after", load_series)):
                seconds, _, _ = read_all(fn, db, con, units)
                times[name].append(seconds)
    print(f"{'':<8}{'best s':>9}{'median s':>10}{'frames/s (best)':>17}")
    for name, ts in times.items():
        print(f"{name:<8}{min(ts):>9.2f}{statistics.median(ts):>10.2f}{frames / min(ts):>17,.0f}")
    print(
        f"speed-up {min(times['before']) / min(times['after']):.2f}x (best), "
        f"{statistics.median(times['before']) / statistics.median(times['after']):.2f}x (median)"
    )


if __name__ == "__main__":
    main()
