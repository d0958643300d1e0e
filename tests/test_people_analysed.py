"""Every people-facing path on ONE fitted and analysed archive (the ``analysed_archive`` fixture:
real ingest through the loopback MAST server, fit, events, ``analyse``): each plot kind through the
API and the CLI, the report (program page and ``--archive`` index), and every public ``Archive``
method. The report and ``Archive.variables`` once crashed on every analysed archive while the
suite, which only used hand-filled stage tables, passed."""

from __future__ import annotations

import inspect
import re

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import fgsarchive
from fgsarchive.archive import Archive
from fgsarchive.cli import app
from fgsarchive.errors import SelectionError, UsageError
from fgsarchive.plots import PLOT_KINDS, plot

runner = CliRunner()
SELECTION = {"program": 1534, "obs": 1, "visit": 1}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def arc(analysed_archive) -> Archive:
    return Archive(analysed_archive)


def _drawn_lines(fig):
    return [line for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata()) > 1]


# --- every plot kind, API and CLI, with the common selection flags -----------------------------------
@pytest.mark.parametrize("kind", sorted(PLOT_KINDS))
def test_every_plot_kind_on_the_analysed_archive(arc, kind, tmp_path):
    out = tmp_path / f"{kind}.png"
    fig = plot(kind, arc, **SELECTION, gs_id=None, bin_s=5.0, save=out)
    assert out.stat().st_size > 5000
    assert _drawn_lines(fig) or any(ax.collections for ax in fig.axes)


@pytest.mark.parametrize("kind", sorted(PLOT_KINDS))
def test_cli_plot_takes_the_common_flags(analysed_archive, arc, kind, tmp_path):
    gs_id = arc.fg_files(1534, 1, 1)["gs_id"][0]
    out = tmp_path / f"{kind}.png"
    result = invoke(
        "plot", kind, "--program", 1534, "--obs", 1, "--visit", 1, "--gs-id", gs_id,
        "--bin-s", 5, "--out", out, "--db", analysed_archive,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.exists() and f"wrote {out}" in result.output


def test_guide_star_plot_uses_the_visit_selection(arc):
    one = plot("guide-stars", arc, program=1534, obs=1, visit=1)
    every = plot("guide-stars", arc, program=1534)
    assert "obs 1" in one._suptitle.get_text()
    n_points = lambda fig: sum(len(line.get_xdata()) for line in fig.axes[0].get_lines())  # noqa: E731
    assert n_points(one) < n_points(every)


def test_flux_plot_is_the_sky_subtracted_star_flux_by_default(arc):
    fig = plot("flux", arc, **SELECTION, bin_s=5.0)
    assert "sky subtracted" in fig.axes[0].get_ylabel()
    star = np.nanmedian(fig.axes[0].get_lines()[0].get_ydata())
    raw = plot("flux", arc, **SELECTION, bin_s=5.0, column="flux")
    assert "64-pixel sum" in raw.axes[0].get_ylabel()
    raw_level = np.nanmedian(raw.axes[0].get_lines()[0].get_ydata())
    background = arc.timeseries(**SELECTION, columns=["background"])["background"].median()
    np.testing.assert_allclose(raw_level - star, 64 * background, rtol=0.05)


def test_periodogram_plot_draws_the_spectrum_its_peaks_came_from(arc):
    """Each marked peak (from periodogram_peaks) sits at a local maximum of the curve drawn, and
    its power there is the power the analysis stored."""
    fig = plot("periodogram", arc, **SELECTION)
    assert "sky subtr" in fig.axes[0].get_ylabel()  # the star's flux: flux_opt
    peaks = arc.periodogram(**SELECTION).filter(pl.col("parameter") == "flux_opt")
    gs_id = arc.fg_files(**SELECTION)["gs_id"][0]
    peaks = peaks.filter((pl.col("gs_id") == gs_id) & (pl.col("grouped_by") == "visit"))
    assert peaks.height
    curve = fig.axes[0].get_lines()[0]
    freq, power = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    for f, p in zip(peaks["frequency_hz"], peaks["power"], strict=True):
        drawn = float(np.interp(f, freq, power))
        assert drawn == pytest.approx(p, rel=0.15), (f, p, drawn)
    # labels are numbers stacked apart, with a listing (no overlapping period texts)
    texts = [t for t in fig.axes[0].texts if "FAP" in t.get_text()]
    assert texts
    faps = re.findall(r"FAP (\S+)", texts[0].get_text())
    assert len(faps) == peaks.height  # one listed line per marked peak
    # scientific notation below 1 %, never a bare 0 (the "FAP prints as 0")
    assert all(re.fullmatch(r"\d\.\de-\d+|<1e-300|[01]\.\d\d", f) for f in faps), faps


# --- the report ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report_dir(analysed_archive, tmp_path_factory):
    """``report --archive`` once: the index and the program page (the same page ``report 1534``
    writes, through the same function)."""
    out = tmp_path_factory.mktemp("report")
    result = invoke("report", "--archive", "--out", out, "--db", analysed_archive)
    assert result.exit_code == 0, result.output
    assert "error" not in result.output.lower()
    return out


def test_report_program_page(report_dir):
    page = (report_dir / "program-1534.html").read_text()
    for section in ("Periodogram peaks", "Anomalies", "Variability ranks"):
        assert section in page
    assert "DuplicateError" not in page
    images = re.findall(r'<img alt="([^"]+)"', page)
    assert "periodogram" in images and len(images) >= 8
    # FAP in scientific notation, never a bare 0
    table = page[page.index('id="periodogram"') : page.index('id="anomalies"')]
    cells = re.findall(r"<td>([^<]*)</td>", table)
    assert "0" not in cells and any(re.fullmatch(r"\d\.\de-\d+", c) for c in cells)


def test_report_command_for_one_program(analysed_archive, tmp_path):
    result = invoke("report", 1534, "--out", tmp_path, "--db", analysed_archive, "--max-visits", 1)
    assert result.exit_code == 0, result.output
    assert "Variability ranks" in (tmp_path / "program-1534.html").read_text()


def test_report_peak_table_ranks_real_peaks_first(report_dir, arc):
    page = (report_dir / "program-1534.html").read_text()
    table = page[page.index('id="periodogram"') : page.index('id="anomalies"')]
    flags = [f.lower() for f in re.findall(r'<td class="text">(true|false)</td></tr>', table, re.I)]
    n_real = min(arc.periodogram(1534, instrumental=False).height, 25)
    assert n_real and flags[:n_real] == ["false"] * n_real


def test_report_archive_index(report_dir):
    index = (report_dir / "index.html").read_text()
    assert "Most variable guide stars" in index and 'href="program-1534.html"' in index
    assert "<td>1</td>" in index  # rank 1 row of the variability table


# --- every public Archive method -------------------------------------------------------------------
def _calls(arc: Archive, tmp_path):
    ts = arc.timeseries(**SELECTION, bin_s=5.0)
    return {
        "sql": lambda: arc.sql("SELECT count(*) AS n FROM frames"),
        "tables": lambda: pl.DataFrame({"t": sorted(arc.tables())}),
        "has": lambda: pl.DataFrame({"ok": [arc.has("variability")]}),
        "programs": arc.programs,
        "visits": lambda: arc.visits(1534),
        "files": lambda: arc.files(1534),
        "guide_stars": lambda: arc.guide_stars(1534),
        "guide_star_visits": lambda: arc.guide_star_visits(1534),
        "frames": lambda: arc.frames(**SELECTION),
        "fg_files": lambda: arc.fg_files(1534),
        "fits": lambda: arc.fits(**SELECTION),
        "timeseries": lambda: arc.timeseries(**SELECTION),
        "to_timeseries": lambda: pl.DataFrame({"n": [len(arc.to_timeseries(ts))]}),
        "to_lightkurve": lambda: pl.DataFrame({"n": [len(arc.to_lightkurve(ts))]}),
        "periodogram": lambda: arc.periodogram(1534),
        "anomalies": lambda: arc.anomalies(1534),
        "variables": lambda: arc.variables(1534),
        "events": lambda: arc.events(**SELECTION),
        "telemetry": arc.telemetry,
        "status": lambda: pl.DataFrame(arc.status()["programs"]),
        "visit_summary": lambda: arc.visit_summary(1534),
        "anomalies_with_telemetry": lambda: arc.anomalies_with_telemetry(1534),
        "lightcurve_binned": lambda: arc.lightcurve_binned(arc.guide_stars(1534)["gs_id"][0]),
        "plot_flux": lambda: pl.DataFrame({"n": [len(arc.plot_flux(**SELECTION).axes)]}),
        "plot": lambda: pl.DataFrame({"n": [len(arc.plot("telemetry", **SELECTION).axes)]}),
        "ingest": None,  # writers: tested in test_core_ingest / test_fit_runner
        "fit": None,
    }


def test_every_public_archive_method_works_on_the_analysed_archive(arc, tmp_path):
    public = {n for n, _ in inspect.getmembers(Archive) if not n.startswith("_")} - {
        "db",
        "path",
        "writable",
    }
    calls = _calls(arc, tmp_path)
    assert public <= set(calls), f"add a call for {sorted(public - set(calls))}"
    for name, call in calls.items():
        if call is None:
            continue
        if name == "to_lightkurve" and not _has("lightkurve"):
            continue
        df = call()
        assert isinstance(df, pl.DataFrame) and df.height > 0, name


def test_visit_summary_has_one_row_per_visit_and_guide_star(arc):
    vs = arc.visit_summary(1534)
    visits = arc.guide_star_visits(1534)
    assert vs.height == visits.height == 4  # 2 observations x 2 visits, one guide star each
    assert (vs["n_frames"] == 1500).all()
    assert ((vs["fraction_converged"] > 0.9) & (vs["fraction_converged"] <= 1.0)).all()
    assert ((vs["median_x_stddev_px"] > 0.3) & (vs["median_x_stddev_px"] < 1.5)).all()
    with pytest.raises(SelectionError, match="program 99"):
        arc.visit_summary(99)


def test_anomalies_with_telemetry_pairs_each_anomaly_with_its_events(arc):
    awt = arc.anomalies_with_telemetry(1534)
    anomalies = arc.anomalies(1534)
    # every anomaly appears (a row with null event columns when nothing overlaps it)
    assert awt.select("gs_id", "kind", "start_mjd").unique().height == anomalies.height
    paired = awt.filter(pl.col("event_kind").is_not_null())
    assert paired.height >= 1
    assert {"hga_move", "hga_motion_pointing"} & set(paired["event_kind"].to_list())
    window_d = 30.0 / 86400.0  # each pair overlaps within 30 s
    assert (paired["event_start_mjd"] <= paired["end_mjd"] + window_d).all()
    event_end = paired["event_end_mjd"].fill_null(paired["event_start_mjd"])
    assert (event_end >= paired["start_mjd"] - window_d).all()


def test_lightcurve_binned_covers_every_visit_of_the_star(arc):
    gs_id = arc.guide_stars(1534)["gs_id"][0]
    lc = arc.lightcurve_binned(gs_id, bin_s=10.0)
    n_visits = arc.guide_star_visits(1534).filter(pl.col("gs_id") == gs_id).height
    assert lc.select("observation", "visit").unique().height == n_visits
    assert lc["n_frames"].max() <= 10.0 / 0.064 + 1
    assert lc["n_frames"].sum() == 1500 * n_visits
    with pytest.raises(UsageError):
        arc.lightcurve_binned(gs_id, bin_s=0)
    with pytest.raises(SelectionError, match="NOSUCHSTAR"):
        arc.lightcurve_binned("NOSUCHSTAR")


def test_variables_keep_one_programs_column(arc):
    var = arc.variables()
    assert var.columns.count("programs") == 1
    assert var["rank"].to_list() == sorted(var["rank"].to_list())


def test_periodogram_is_ordered_by_significance(arc):
    fap = arc.periodogram(1534)["fap"].to_numpy()
    assert np.all(np.diff(fap) >= 0)


def test_star_flux_is_raw_flux_minus_sky(arc):
    ts = arc.timeseries(**SELECTION, columns=["star_flux", "background"])
    np.testing.assert_allclose(ts["star_flux"], ts["flux"] - 64 * ts["background"], rtol=1e-9)
    binned = arc.timeseries(**SELECTION, columns=["star_flux", "background"], bin_s=5.0)
    np.testing.assert_allclose(
        binned["star_flux"], binned["flux"] - 64 * binned["background"], rtol=1e-9
    )
    assert "star_flux" in arc.timeseries(**SELECTION).columns  # a default column


def test_top_level_conversions_and_per_frame_errors(arc):
    from fgsarchive import to_lightkurve, to_timeseries

    ts = to_timeseries(arc.timeseries(**SELECTION, columns=["star_flux"]))
    assert str(ts["star_flux"].unit) == "DN / s"
    assert callable(to_lightkurve) and fgsarchive.to_lightkurve is to_lightkurve
    from fgsarchive.archive import _scatter_errors

    df = arc.timeseries(**SELECTION, columns=["star_flux"])
    err = _scatter_errors(df, "star_flux")
    assert np.isfinite(err).all() and (err > 0).all()
    # on a known series: white noise of sigma 3 on a slow trend, a second star with sigma 10
    rng = np.random.default_rng(5)
    n = 4000
    trend = np.linspace(0, 500, n)
    synth = pl.DataFrame(
        {
            "time_mjd": np.arange(2 * n, dtype=float),
            "gs_id": ["a"] * n + ["b"] * n,
            "star_flux": np.r_[trend + rng.normal(0, 3, n), 1e4 + rng.normal(0, 10, n)],
        }
    )
    sigma = _scatter_errors(synth, "star_flux")
    assert sigma[:n] == pytest.approx(3.0, rel=0.1) and sigma[n:] == pytest.approx(10.0, rel=0.1)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
