"""``runner.load_series``: the series the analyses read, against a reference built the slow way.

The reference reads the archive's ``frames``, ``fits`` and ``photometry`` views over every part,
keeps each file's newest fit_version, joins in polars, casts, masks and calibrates with
``detrend.calibrate_flux_opt``. ``load_series`` must give the same frame (columns, order, dtypes,
values, NaN where NaN) by its fast path (parts lined up by position) and by its general path
(joins), including a newer fit version with non-converged frames and a file without photometry.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from fgsarchive import simulate as sim
from fgsarchive.analysis import runner as A
from fgsarchive.analysis.detrend import calibrate_flux_opt
from fgsarchive.db import Database
from fgsarchive.storage import part_name

COLUMNS = [
    "file_name",
    "frame",
    "time_mjd",
    "flux",
    "amplitude",
    "x_mean",
    "y_mean",
    "x_stddev",
    "y_stddev",
    "theta",
    "offset",
    "status",
    "background",
    "flux_r2",
    "flux_opt",
    "n_opt_pixels",
    "program",
    "observation",
    "visit",
    "gs_id",
    "guide_period",
    "frame_time_s",
    "flux_opt_gain",
    "flux_opt_raw",
]
VALUES = [*A.FIT_PARAMETERS, "flux", "background", "flux_r2", "flux_opt"]


def _build(root) -> Database:
    from fgsarchive.fit.runner import fit_archive
    from fgsarchive.ingest import ingest_directory

    prog = sim.simulate_program(
        root / "products",
        program=1534,
        n_observations=1,
        n_visits=2,
        files_per_visit=2,
        frames_per_file=1200,
        segment_frames=800,  # several parts per visit, a guide period in two segments
        n_guide_stars=2,
        seed=3,
        include_other_products=False,
    )
    db = Database(root / "archive.duckdb")
    ingest_directory(db, prog.out_dir, workers=1)
    fit_archive(db, workers=1)
    return db


@pytest.fixture()
def archive(tmp_path_factory) -> Database:
    # function scope: some tests rewrite parts
    return _build(tmp_path_factory.mktemp("load_series"))


def reference(db: Database, files: pl.DataFrame, *, mask: bool = True) -> pl.DataFrame:
    """load_series the slow way: the views over every part, polars joins, then the same rules."""
    names = files["file_name"].to_list()
    with db.reader() as con:

        def view(sql: str) -> pl.DataFrame:
            return pl.from_arrow(con.sql(sql, params={"names": names}).to_arrow_table())

        frames = view(
            "SELECT file_name, frame, time_mjd, flux FROM frames "
            "WHERE list_contains($names, file_name)"
        )
        fits = view(
            "SELECT file_name, frame, amplitude, x_mean, y_mean, x_stddev, y_stddev, theta, "
            '"offset", status, fit_version FROM fits WHERE list_contains($names, file_name)'
        )
        phot = view(
            "SELECT file_name, frame, background, flux_r2, flux_opt, n_opt_pixels, fit_version "
            "FROM photometry WHERE list_contains($names, file_name)"
        )

    def newest(df: pl.DataFrame) -> pl.DataFrame:
        top = pl.col("fit_version") == pl.col("fit_version").max().over("file_name")
        return df.filter(top).drop("fit_version")

    df = frames.join(newest(fits), on=["file_name", "frame"], how="left")
    df = df.join(newest(phot), on=["file_name", "frame"], how="left")
    meta = files.select(
        "file_name", "program", "observation", "visit", "gs_id", "guide_period", "frame_time_s"
    )
    df = df.join(meta, on="file_name", how="left").sort("time_mjd", "file_name", "frame")
    df = df.with_columns(pl.col(c).cast(pl.Float64).fill_null(np.nan) for c in VALUES)
    if mask:
        bad = pl.col("status").is_not_null() & (pl.col("status") != 0)
        df = df.with_columns(
            pl.when(bad).then(np.nan).otherwise(pl.col(c)).alias(c) for c in VALUES
        )
    return calibrate_flux_opt(df)


def _units(db: Database, by: str) -> list[pl.DataFrame]:
    with db.reader() as con:
        files = A._fg_files(db, con, None)
    return A._load_units(files, by)


def _load(db: Database, files: pl.DataFrame, **kw) -> pl.DataFrame:
    with db.reader() as con:
        return A.load_series(db, con, files, **kw)


def _general_path(monkeypatch) -> None:
    monkeypatch.setattr(A, "_load_series_aligned", lambda *a, **k: None)


def test_columns_dtypes_and_values_match_the_reference(archive, monkeypatch):
    units = _units(archive, "visit") + _units(archive, "guide_star")
    assert len(units) >= 3 and max(u.height for u in units) >= 2
    fast = [_load(archive, u) for u in units]
    for got, u in zip(fast, units, strict=True):
        assert got.columns == COLUMNS
        assert all(got[c].dtype == pl.Float64 for c in VALUES)
        assert got.height == int(u["n_frames"].sum())
        assert got["time_mjd"].is_sorted()
        assert_frame_equal(got, reference(archive, u), check_exact=True)
    _general_path(monkeypatch)
    for got, u in zip(fast, units, strict=True):
        assert_frame_equal(_load(archive, u), got, check_exact=True)


def _rewrite_fit_part(db: Database, file_name: str, bad_frames: list[int]) -> None:
    """A newer fit version of one file: amplitudes doubled, ``bad_frames`` not converged."""
    parts = db.parts.parts_of("fits", 1534, part_name(file_name))
    table = pq.read_table(parts[-1])
    version = int(pc.max(table["fit_version"]).as_py()) + 1
    status = table["status"].to_numpy().copy()
    status[bad_frames] = 3
    table = table.set_column(
        table.schema.get_field_index("status"), "status", pa.array(status, table["status"].type)
    )
    table = table.set_column(
        table.schema.get_field_index("amplitude"), "amplitude", pc.multiply(table["amplitude"], 2.0)
    )
    table = table.set_column(
        table.schema.get_field_index("fit_version"),
        "fit_version",
        pa.array([version] * table.num_rows, table["fit_version"].type),
    )
    pq.write_table(table, parts[-1].with_name(f"{part_name(file_name)}.v{version}.parquet"))


@pytest.mark.parametrize("path", ["fast", "general"])
def test_newest_fit_version_and_the_mask(archive, monkeypatch, path):
    if path == "general":
        _general_path(monkeypatch)
    unit = _units(archive, "visit")[0]
    name = unit["file_name"][0]
    before = _load(archive, unit)
    _rewrite_fit_part(archive, name, bad_frames=[5, 6, 7])
    after = _load(archive, unit)
    assert_frame_equal(after, reference(archive, unit), check_exact=True)
    rows = after.filter(pl.col("file_name") == name).sort("frame")
    old = before.filter(pl.col("file_name") == name).sort("frame")
    assert rows["status"][5:8].to_list() == [3, 3, 3]
    for c in VALUES:  # every value of a non-converged frame is NaN
        assert rows[c][5:8].is_nan().all(), c
    good = rows["status"] == 0
    np.testing.assert_array_equal(
        rows["amplitude"].filter(good).to_numpy(),
        2.0 * old["amplitude"].filter(good & (old["status"] == 0)).to_numpy(),
    )
    unmasked = _load(archive, unit, mask=False)
    assert_frame_equal(unmasked, reference(archive, unit, mask=False), check_exact=True)
    kept = unmasked.filter(pl.col("file_name") == name).sort("frame")
    assert kept["flux"][5:8].is_finite().all()


def test_a_file_without_photometry_falls_back_to_the_joins(archive):
    unit = _units(archive, "visit")[0]
    name = unit["file_name"][0]
    for path in archive.parts.parts_of("photometry", 1534, part_name(name)):
        path.unlink()
    got = _load(archive, unit)
    assert_frame_equal(got, reference(archive, unit), check_exact=True)
    rows = got.filter(pl.col("file_name") == name)
    assert rows.height > 0 and rows["flux_r2"].is_nan().all()
    assert rows["n_opt_pixels"].is_null().all()
    others = got.filter(pl.col("file_name") != name)
    assert others["flux_r2"].is_finite().any()


def test_no_frames_gives_the_empty_schema(archive):
    unit = _units(archive, "visit")[0].with_columns(
        pl.lit("jw09999001001_gs-fg_x_cal.fits").alias("file_name")
    )
    got = _load(archive, unit)
    assert got.height == 0 and got.columns == ["file_name", "frame", "time_mjd", "flux"]
