"""The notebook API (Archive): selections, time series (per frame and binned), stage tables."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers import people_archive

from fgsarchive.archive import Archive, NotComputedError, to_lightkurve, to_timeseries
from fgsarchive.errors import SelectionError, UsageError


@pytest.fixture(scope="module")
def arc(tmp_path_factory) -> Archive:
    path, _ = people_archive.cached(tmp_path_factory)
    return Archive(path)


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Archive:
    """Ingested only: no fits, no analyses."""
    path, _ = people_archive.cached(tmp_path_factory, fit=False, stages=False)
    return Archive(path)


def test_status_counts_every_table_and_names_the_programs(arc, bare):
    """Archive.status() (what `fgsarchive status` prints): each stage's table and its row count."""
    full, empty = arc.status(), bare.status()
    assert [p["program"] for p in full["programs"]] == arc.programs()["program"].to_list()
    assert full["tables"]["frames"] == arc.sql("SELECT count(*) AS n FROM frames")["n"][0] > 0
    assert full["tables"]["fits"] > 0 and "fits" not in empty["tables"]
    n_frames = sum(
        f["n_frames"] for f in full["files"] if (f["product"], f["status"]) == ("fg", "ingested")
    )
    assert n_frames == full["tables"]["frames"]


def test_programs_visits_files(arc):
    assert arc.programs()["program"].to_list() == [1534]
    visits = arc.visits(1534)
    assert visits.height == 4 and (visits["n_frames"] == people_archive.FRAMES_PER_FILE).all()
    assert arc.files(1534, obs=1, visit=1, product="fg").height == 2  # two segments
    assert set(arc.guide_stars(1534)["gs_id"]) == set(arc.fg_files(1534)["gs_id"])


def test_timeseries_per_frame_is_time_ordered_with_fit_columns(arc):
    lc = arc.timeseries(program=1534, obs=1, visit=1)
    assert lc.height == people_archive.FRAMES_PER_FILE
    assert lc["time_mjd"].is_sorted()
    assert {"flux", "x_mean", "y_mean", "x_stddev", "theta", "offset", "flux_opt"} <= set(
        lc.columns
    )
    assert lc["gs_id"].n_unique() == 1
    assert 2.0 < lc["x_mean"].median() < 5.0  # pixels, star near the centre


def test_binned_equals_mean_of_frames(arc):
    """The SQL binning gives the same means as binning the per-frame series in polars."""
    bin_s = 10.0
    frames = arc.timeseries(program=1534, obs=1, visit=1, columns=["x_mean"])
    binned = arc.timeseries(program=1534, obs=1, visit=1, columns=["x_mean"], bin_s=bin_s)
    files = arc.fg_files(1534, 1, 1)
    t0 = files["data_start_mjd"].min()
    start = dict(zip(files["file_name"], files["data_start_mjd"], strict=True))
    step = dict(zip(files["file_name"], files["frame_time_s"], strict=True))
    ref = (
        frames.with_columns(
            (
                (
                    (pl.col("file_name").replace_strict(start) - t0) * 86400.0
                    + (pl.col("frame") + 0.5) * pl.col("file_name").replace_strict(step)
                )
                / bin_s
            )
            .floor()
            .alias("bin")
        )
        .group_by("bin")
        .agg(
            pl.len().alias("n"),
            pl.col("flux").mean(),
            pl.col("x_mean").mean(),
            pl.col("time_mjd").mean(),
        )
        .sort("time_mjd")
    )
    assert (
        binned.height == ref.height == int(np.ceil(people_archive.FRAMES_PER_FILE * 0.064 / bin_s))
    )
    assert binned["n_frames"].to_list() == ref["n"].to_list()
    np.testing.assert_allclose(binned["flux"], ref["flux"], rtol=1e-12)
    np.testing.assert_allclose(binned["x_mean"], ref["x_mean"], rtol=1e-12)
    np.testing.assert_allclose(binned["time_mjd"], ref["time_mjd"], rtol=0, atol=1e-10)
    assert (binned["flux_err"] > 0).all()


def test_bins_never_mix_guide_stars(arc):
    lc = arc.timeseries(program=1534, bin_s=30)
    assert lc["time_mjd"].is_sorted()
    assert lc["gs_id"].n_unique() == 2
    assert lc["n_frames"].sum() == 4 * people_archive.FRAMES_PER_FILE


def test_selection_errors_name_the_selection(arc):
    with pytest.raises(SelectionError, match="program=1534 obs=9"):
        arc.timeseries(program=1534, obs=9)
    with pytest.raises(SelectionError, match="program=42"):
        arc.frames(program=42)
    with pytest.raises(
        UsageError, match="unknown time-series column 'bogus'; valid columns: .*x_mean"
    ):
        arc.timeseries(program=1534, obs=1, visit=1, columns=["bogus"])
    with pytest.raises(UsageError, match="bin_s"):
        arc.timeseries(program=1534, bin_s=0)


def test_missing_stage_tables_name_their_command(bare):
    with pytest.raises(NotComputedError, match="fgsarchive fit"):
        bare.timeseries(program=1534, obs=1, visit=1, columns=["x_mean"])
    with pytest.raises(NotComputedError, match="periodogram_peaks"):
        bare.periodogram(program=1534)
    with pytest.raises(NotComputedError, match="variability"):
        bare.variables()
    lc = bare.timeseries(program=1534, obs=1, visit=1, bin_s=10)  # columns=None: what exists
    assert lc.columns == ["time_mjd", "gs_id", "n_frames", "flux", "flux_err"]


def test_stage_tables(arc):
    peaks = arc.periodogram(1534, obs=1, visit=1, max_fap=0.01, instrumental=False)
    assert set(peaks["parameter"]) == {"flux"} and peaks["period_s"].to_list()[0] == 20.0
    an = arc.anomalies(1534, obs=1, visit=1)
    assert set(an["kind"]) == {"flux_drop", "jitter_burst"} and an["start_mjd"].is_sorted()
    assert arc.anomalies(1534, obs=2, visit=2).is_empty()  # none: empty, not an error
    var = arc.variables(top=1)
    assert var.height == 1 and var["rank"][0] == 1 and "fgs_mag" in var.columns
    ev = arc.events(1534, obs=1, visit=1)
    assert {"hga_move", "filter_wheel_move", "file_boundary"} <= set(ev["kind"])
    assert arc.events(1534, obs=1, visit=1, kind="hga_move").height == 1
    tm = arc.telemetry("INIS_FWMTRCURR")
    assert tm.height > 10 and tm["time_mjd"].is_sorted()


def test_fits_kinds(arc):
    fits = arc.fits(1534, obs=1, visit=1, limit=10)
    assert fits.height == 10 and {"x_mean", "status", "observation", "visit", "gs_id"} <= set(
        fits.columns
    )
    phot = arc.fits(1534, obs=1, visit=1, kind="photometry", limit=5)
    assert "flux_opt" in phot.columns
    with pytest.raises(UsageError, match="fits, photometry, quickfits"):
        arc.fits(1534, kind="nope")


def test_conversions(arc):
    lc = arc.timeseries(program=1534, obs=1, visit=1, bin_s=10)
    ts = lc.pipe(to_timeseries)
    assert len(ts) == lc.height
    assert str(ts["flux"].unit) == "DN / s" and str(ts["x_mean"].unit) == "pix"
    assert abs(ts.time[0].mjd - lc["time_mjd"][0]) < 1e-9
    try:
        import lightkurve  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match=r"pip install \"fgsarchive\[lightkurve\]\""):
            to_lightkurve(lc)
    else:  # pragma: no cover - lightkurve is an optional extra
        assert len(to_lightkurve(lc)) == lc.height


def test_sql_and_read_only(arc):
    n = arc.sql("SELECT count(*) AS n FROM frames WHERE program = $p", p=1534)["n"][0]
    assert n == 4 * people_archive.FRAMES_PER_FILE
    with pytest.raises(SelectionError, match="writable=True"):
        arc.ingest("nowhere")
    with pytest.raises(SelectionError, match="writable=True"):
        arc.fit()
