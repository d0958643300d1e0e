"""`fgsarchive fit` end to end: every frame fitted once, accurate against truth, resumable."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from fgsarchive.cli import app
from fgsarchive.db import Database
from fgsarchive.errors import SchedulerError, SelectionError, UsageError
from fgsarchive.fit.runner import FIT_VERSION, fit_archive
from fgsarchive.ingest import ingest_directory
from fgsarchive.maintenance import archive_checksums
from fgsarchive.simulate import read_frame_truth

runner = CliRunner()


@pytest.fixture()
def ingested(products, tmp_path) -> Database:
    db = Database(tmp_path / "fit.duckdb")
    ingest_directory(db, products)
    return db


def test_every_frame_fitted_once_and_accurate(ingested, small_program):
    report = fit_archive(ingested, workers=2)
    assert report.frames == small_program.n_frames and not report.failed
    with ingested.reader() as con:
        n_frames = con.execute("SELECT count(*) FROM frames").fetchall()[0][0]
        for table in ("fits", "quickfits", "photometry"):
            assert con.execute(
                f"SELECT count(*), count(DISTINCT (file_name, frame)) FROM {table}"
            ).fetchall()[0] == (n_frames, n_frames)
        fits = pl.from_arrow(
            con.sql(
                "SELECT file_name, frame, x_mean, y_mean, x_stddev, status FROM fits"
            ).to_arrow_table()
        )
        phot = pl.from_arrow(con.sql("SELECT flux_r3, flux_opt FROM photometry").to_arrow_table())
    truth = read_frame_truth(small_program.truth_dir).select(
        "file_name", "frame", pl.col("x_mean").alias("x_true"), pl.col("y_mean").alias("y_true")
    )
    joined = fits.join(truth, on=["file_name", "frame"]).filter(pl.col("status") == 0)
    assert len(joined) > 0.99 * n_frames
    dx = (joined["x_mean"] - joined["x_true"]).abs().median()
    dy = (joined["y_mean"] - joined["y_true"]).abs().median()
    assert dx < 0.01 and dy < 0.01, (dx, dy)
    assert phot["flux_r3"].drop_nans().median() > 0


def test_refit_is_resumable_and_fits_only_what_is_missing(ingested):
    fit_archive(ingested, workers=1)
    before = archive_checksums(ingested, ("fits",))
    victim = next((ingested.parts.root / "fits").glob("program=1534/*.parquet"))
    victim.unlink()
    again = fit_archive(ingested, workers=2)
    assert again.files == 1 and again.skipped_files > 0
    assert archive_checksums(ingested, ("fits",)) == before
    assert fit_archive(ingested).files == 0


def test_dask_local_cluster_gives_the_same_fits(ingested, tmp_path):
    pytest.importorskip("distributed")
    fit_archive(ingested, what=("gauss",), workers=2)
    reference = archive_checksums(ingested, ("fits",))
    for part in (ingested.parts.root / "fits").glob(f"*/*.v{FIT_VERSION}.parquet"):
        part.unlink()
    report = fit_archive(ingested, what=("gauss",), workers=2, scheduler="local")
    assert report.files > 0
    assert archive_checksums(ingested, ("fits",)) == reference


def test_bad_requests(ingested, tmp_path):
    with pytest.raises(SelectionError, match="program 999"):
        fit_archive(ingested, program=999)
    with pytest.raises(UsageError, match="workers"):
        fit_archive(ingested, workers=0)
    with pytest.raises(UsageError, match="choose from"):
        fit_archive(ingested, what=("banana",))
    with pytest.raises(SchedulerError, match="no Dask scheduler"):
        fit_archive(ingested, scheduler="tcp://127.0.0.1:9")
    assert archive_checksums(ingested, ("fits",)) == {"fits": (0, 0)}


def test_vanished_frames_are_reported_not_half_written(ingested):
    frames_part = next((ingested.parts.root / "frames").glob("program=1534/*.parquet"))
    frames_part.unlink()
    report = fit_archive(ingested, what=("gauss",), workers=1)
    assert list(report.failed) == [frames_part.stem + ".fits"]
    assert "re-ingest" in report.failed[frames_part.stem + ".fits"]
    assert not (
        ingested.parts.root / "fits" / "program=1534" / f"{frames_part.stem}.v{FIT_VERSION}.parquet"
    ).exists()


def test_cli_fit_and_bad_frames_get_a_status(tmp_path):
    from fgsarchive.simulate import simulate_program

    sim = simulate_program(
        tmp_path / "p",
        program=42,
        n_visits=1,
        frames_per_file=2000,
        nan_frame_rate=0.01,
        seed=3,
        include_other_products=False,
    )
    db_path = tmp_path / "c.duckdb"
    result = runner.invoke(app, ["ingest", "--from", str(sim.out_dir), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "fitted 2,000 frames" in result.output
    with Database(db_path).reader() as con:
        bad = con.execute("SELECT count(*) FROM fits WHERE status = 2").fetchall()[0][0]
        garbage = con.execute(
            "SELECT count(*) FROM fits WHERE status = 0 AND NOT isfinite(x_mean)"
        ).fetchall()[0][0]
    assert bad > 0 and garbage == 0
    result = runner.invoke(app, ["fit", "--program", "7", "--db", str(db_path)])
    assert result.exit_code == 2 and "fgsarchive ingest 7" in result.output
