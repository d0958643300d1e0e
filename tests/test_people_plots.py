"""Plots, the `fgsarchive plot` / `animate` commands and their errors."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from helpers import people_archive
from matplotlib.figure import Figure
from PIL import Image
from typer.testing import CliRunner

from fgsarchive.archive import Archive, NotComputedError
from fgsarchive.cli import app
from fgsarchive.plots import PLOT_KINDS, plot, plot_flux

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    return people_archive.cached(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory):
    return people_archive.cached(tmp_path_factory, fit=False, stages=False)[0]


def _not_blank(path) -> bool:
    img = np.asarray(Image.open(path).convert("RGB"))
    non_white = (img < 250).any(axis=2).mean()
    colours = len(np.unique(img.reshape(-1, 3)[::7], axis=0))
    return non_white > 0.02 and colours > 20


@pytest.mark.parametrize("kind", list(PLOT_KINDS))
def test_every_plot_kind(kind, db_path, tmp_path, request):
    # the periodogram plot reruns the analysis on the series (its cleaned spectrum): it needs
    # real analysis tables, not this module's hand-filled ones
    if kind == "periodogram":
        db_path = request.getfixturevalue("analysed_archive")
    arc = Archive(db_path)
    selection = (
        {"program": 1534} if kind == "guide-stars" else {"program": 1534, "obs": 1, "visit": 1}
    )
    out = tmp_path / f"{kind}.png"
    fig = plot(kind, arc, save=out, **selection)
    assert isinstance(fig, Figure)
    assert all(ax.has_data() for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert _not_blank(out)


def test_plot_flux_from_a_dataframe_and_pdf(db_path, tmp_path):
    lc = Archive(db_path).timeseries(program=1534, obs=1, visit=1, bin_s=5)
    fig = plot_flux(lc, save=tmp_path / "f.pdf")
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    assert "time since" in fig.axes[0].get_xlabel() and "[min]" in fig.axes[0].get_xlabel()
    assert fig.axes[0].get_ylabel() == "star flux (sky subtracted) [DN/s]"
    raw = plot_flux(lc, column="flux")
    assert raw.axes[0].get_ylabel() == "raw 64-pixel sum (sky included) [DN/s]"


def test_cli_plot(db_path, tmp_path):
    out = tmp_path / "flux.png"
    result = invoke(
        "plot",
        "flux",
        "--program",
        1534,
        "--obs",
        1,
        "--visit",
        1,
        "--bin-s",
        10,
        "--out",
        out,
        "--db",
        db_path,
    )
    assert result.exit_code == 0, result.output
    assert _not_blank(out)


def test_cli_plot_errors(db_path, bare_path, tmp_path):
    result = invoke("plot", "spectrum", "--out", tmp_path / "x.png", "--db", db_path)
    assert result.exit_code == 2
    assert (
        "unknown plot kind 'spectrum'; choose one of: flux, parameters, periodogram"
        in result.output
    )
    result = invoke(
        "plot", "flux", "--program", 1534, "--obs", 9, "--out", tmp_path / "x.png", "--db", db_path
    )
    assert result.exit_code == 2
    assert (
        result.output.strip().splitlines()[-1]
        == "error: no fine-guide files match program=1534 obs=9"
    )
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = invoke("plot", "flux", "--program", 1534, "--out", blocker / "x.png", "--db", db_path)
    assert (
        result.exit_code == 2
        and "cannot write" in result.output
        and "Traceback" not in result.output
    )
    assert len(result.output.strip().splitlines()) == 1
    result = invoke(
        "plot",
        "parameters",
        "--program",
        1534,
        "--obs",
        1,
        "--visit",
        1,
        "--out",
        tmp_path / "p.png",
        "--db",
        bare_path,
    )
    assert result.exit_code == 2 and "run `fgsarchive fit`" in result.output
    result = invoke(
        "plot",
        "guide-stars",
        "--program",
        1534,
        "--visit",
        1,
        "--out",
        tmp_path / "g.png",
        "--bin-s",
        10,
        "--db",
        db_path,
    )
    # the common flags are accepted; what does not apply is named
    assert result.exit_code == 0, result.output
    assert "note: plot guide-stars does not use --bin-s" in result.output


def test_parameters_need_fits(bare_path):
    with pytest.raises(NotComputedError, match="fgsarchive fit"):
        plot("parameters", Archive(bare_path), program=1534, obs=1, visit=1)


def test_animate_gif(db_path, tmp_path):
    out = tmp_path / "clip.gif"
    result = invoke(
        "animate",
        "--program",
        1534,
        "--obs",
        1,
        "--visit",
        1,
        "--start-s",
        10,
        "--duration-s",
        3.2,
        "--step",
        2,
        "--out",
        out,
        "--db",
        db_path,
    )
    assert result.exit_code == 0, result.output
    gif = Image.open(out)
    assert gif.n_frames == 25  # 3.2 s at 64 ms = 50 frames, every 2nd
    gif.seek(10)
    assert len(np.unique(np.asarray(gif.convert("RGB")).reshape(-1, 3), axis=0)) > 20
    gif.close()


def test_animate_errors(db_path, tmp_path):
    result = invoke(
        "animate",
        "--program",
        1534,
        "--obs",
        1,
        "--visit",
        1,
        "--start-s",
        9999,
        "--out",
        tmp_path / "c.gif",
        "--db",
        db_path,
    )
    assert (
        result.exit_code == 2
        and "no frames of program=1534 obs=1 visit=1 between 9999 s" in result.output
    )
    result = invoke("animate", "--program", 1534, "--out", tmp_path / "c.avi", "--db", db_path)
    assert result.exit_code == 2 and ".gif or .mp4" in result.output


def _texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_telemetry_plot_reads_the_events_table(db_path, bare_path):
    """Events come only from the events stage's table: drawn when derived, else a note naming
    `fgsarchive events` and nothing shaded (no second derivation in the plot)."""
    sel = {"program": 1534, "obs": 1, "visit": 1}
    derived = plot("telemetry", Archive(db_path), **sel)
    assert "fgsarchive events" not in _texts(derived)
    assert derived.axes[0].patches, "derived HGA/filter-wheel moves are shaded"
    bare = plot("telemetry", Archive(bare_path), **sel)
    assert "no events derived yet: run `fgsarchive events`" in _texts(bare)
    assert not bare.axes[0].patches


def test_periodogram_fap_curves_agree_with_the_stored_peaks(analysed_archive):
    """The drawn 1 % curve is the analysis' own significance: every stored peak with fap < 0.01
    lies above it at its frequency and every peak with fap > 0.01 below it, on red noise too."""
    from fgsarchive.plots import plot_periodogram

    arc = Archive(analysed_archive)
    peaks = arc.periodogram(1534).filter(pl.col("grouped_by") == "visit")
    params = sorted(set(peaks["parameter"].to_list()) & {"flux_opt", "x_mean", "y_mean"})
    checked = {"above": 0, "below": 0}
    for (obs, visit, gs_id), mine in peaks.group_by(["observation", "visit", "gs_id"]):
        fig = plot_periodogram(
            arc, program=1534, obs=obs, visit=visit, gs_id=gs_id, parameters=params
        )
        for ax, param in zip(fig.axes, params, strict=False):
            curve = next(line for line in ax.get_lines() if line.get_gid() == "fap_0.01")
            freq, level = curve.get_xdata(), curve.get_ydata()
            assert np.ptp(level) > 0, "a curve over frequency, not one white-noise level"
            for row in mine.filter(pl.col("parameter") == param).iter_rows(named=True):
                at = float(np.interp(row["frequency_hz"], freq, level))
                if row["fap"] < 0.01 * 0.98:
                    assert row["power"] > at * 0.999, row
                    checked["above"] += 1
                elif row["fap"] > 0.01 * 1.02:
                    assert row["power"] < at * 1.001, row
                    checked["below"] += 1
        plt.close(fig)
    assert checked["above"] > 0 and checked["below"] > 0, checked
