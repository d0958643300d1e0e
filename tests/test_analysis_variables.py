"""variability_stats on seeded synthetic guide-star light curves (tests/helpers/analysis_synth.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers.analysis_synth import make_star_frames

from fgsarchive.analysis.variables import VARIABILITY_SCHEMA, variability_stats

LINES = pl.DataFrame({"line_id": [0], "frequency_hz": [1 / 300.0]})  # the telescope's 5-min line


@pytest.fixture(scope="module")
def frames():
    return make_star_frames(20, seed=1)


@pytest.fixture(scope="module")
def stats(frames):
    return variability_stats(frames, lines=LINES)


def test_sinusoidal_variable_ranked_first(stats):
    assert stats.schema == pl.Schema(VARIABILITY_SCHEMA)
    assert stats.height == 22
    top = stats.row(0, named=True)
    assert top["gs_id"] == "VAR_SIN" and top["rank"] == 1
    assert top["best_period_s"] == pytest.approx(1200.0, rel=0.02)
    assert top["best_fap"] < 1e-10
    assert top["rms_ppm"] == pytest.approx(1e4 * 1.05, rel=0.15)  # MAD scale of a sinusoid
    assert top["eta"] < 0.1
    assert stats["rank"].to_list() == list(range(1, 23))


def test_dip_star_scores_high_on_skew(stats):
    dip = stats.filter(pl.col("gs_id") == "VAR_DIP").row(0, named=True)
    assert dip["rank"] <= 2
    assert dip["skew"] == stats["skew"].min()
    assert dip["skew"] < -1.0
    assert dip["z_skew"] > 5 * stats.filter(pl.col("gs_id").str.starts_with("S"))["z_skew"].max()


def test_constant_stars_look_constant(stats):
    const = stats.filter(pl.col("gs_id").str.starts_with("S"))
    assert const["n_visits"].to_list() == [2] * 20
    # photon noise (40-70 ppm per 10-s bin) plus 50 ppm of red noise; the 5-minute line and the
    # +-5% visit offsets are removed
    assert const["expected_rms_ppm"].is_between(25, 80).all()
    assert const["excess"].is_between(0.8, 2.5).all()
    assert (const["rms_ppm"] < 120).all()
    assert (const["skew"].abs() < 0.6).all()
    # the 300-s line is not anyone's best period
    periods = stats["best_period_s"].to_numpy()
    assert not np.any(np.abs(periods / 300.0 - 1) < 0.01)
    assert (const["score"] < stats.filter(pl.col("gs_id") == "VAR_DIP")["score"][0]).all()


def test_without_lines_the_telescope_line_shows_up():
    frames = make_star_frames(4, seed=2, sinusoid=None, dip=None)
    raw = variability_stats(frames)
    clean = variability_stats(frames, lines=LINES)
    assert (raw["rms_ppm"].mean()) > 2 * clean["rms_ppm"].mean()
    assert (raw["best_period_s"] / 300.0 - 1).abs().min() < 0.02


def test_masked_frames_and_anomaly_intervals_are_left_out():
    frames = make_star_frames(3, seed=3, sinusoid=None, dip=(0.02, 300.0))
    base = variability_stats(frames, lines=LINES)
    dip_rows = frames.filter(pl.col("gs_id") == "VAR_DIP")
    v0 = dip_rows.filter(pl.col("visit_key") == "VAR_DIP-v0")["time_mjd"]
    mid = v0.min() + (v0.max() - v0.min()) * 0.4
    anomalies = pl.DataFrame(
        {"start_mjd": [mid - 200 / 86400], "end_mjd": [mid + 200 / 86400], "gs_id": ["VAR_DIP"]}
    )
    masked = variability_stats(frames, lines=LINES, anomalies=anomalies)
    skew = dict(zip(masked["gs_id"], masked["skew"], strict=True))
    assert base.filter(pl.col("gs_id") == "VAR_DIP")["skew"][0] < -1
    assert abs(skew["VAR_DIP"]) < 0.5
    n_before = base.filter(pl.col("gs_id") == "VAR_DIP")["n_frames"][0]
    n_after = masked.filter(pl.col("gs_id") == "VAR_DIP")["n_frames"][0]
    assert n_before - n_after == pytest.approx(400 / 0.064, rel=0.01)
    # without gs_id the interval applies to every star at that time (none of the others here)
    everyone = variability_stats(frames, lines=LINES, anomalies=anomalies.drop("gs_id"))
    assert everyone["n_frames"].sum() == masked["n_frames"].sum()
    # masked garbage frames (0, NaN, 1e9) never reach the statistics
    assert base["n_frames"].sum() == frames.filter(~pl.col("masked")).height


def test_photon_noise_from_counts_per_flux():
    frames = make_star_frames(3, seed=4, sinusoid=None, dip=None)
    with_err = variability_stats(frames, lines=LINES)
    from_counts = variability_stats(frames.drop("flux_err"), lines=LINES, counts_per_flux=1.0)
    a = with_err.sort("gs_id")["expected_rms_ppm"].to_numpy()
    b = from_counts.sort("gs_id")["expected_rms_ppm"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=0.01)


def test_validation():
    frames = make_star_frames(1, seed=5, sinusoid=None, dip=None, visit_minutes=5)
    with pytest.raises(ValueError, match="counts_per_flux"):
        variability_stats(frames.drop("flux_err"))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['visit_key'\]"):
        variability_stats(frames.drop("visit_key"))
    with pytest.raises(ValueError, match="bin_s"):
        variability_stats(frames, bin_s=0)
    empty = variability_stats(frames.filter(pl.col("flux") < 0))
    assert empty.height == 0 and empty.schema == pl.Schema(VARIABILITY_SCHEMA)


def test_hours_long_sinusoid_also_ranked_first():
    # a 2-hour period seen in 40-minute visits: a third of a cycle each, still the most variable
    frames = make_star_frames(20, seed=6, sinusoid=(0.01, 7200.0), dip=None)
    stats = variability_stats(frames, lines=LINES)
    assert stats["gs_id"][0] == "VAR_SIN"
    assert stats["score"][0] > 1.5 * stats["score"][1]
