"""scripts/bench_science.py scores what it says it scores (known inputs, known answers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
DAY = 86400.0


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_science", REPO / "scripts" / "bench_science.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fit_pulls_per_parameter_and_amplitude(bench) -> None:
    n = 400
    z = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)  # std exactly 1
    amp = np.where(np.arange(n) < n // 2, 5e4, 5e5)
    truth = pl.DataFrame(
        {
            "file_name": ["a.fits"] * n,
            "frame": np.arange(n),
            "amplitude": amp,
            "x_mean": np.full(n, 3.5),
            "y_mean": np.full(n, 3.4),
            "x_stddev": np.full(n, 0.65),
            "cr_pixel": np.full(n, -1),
            "n_nan": np.zeros(n, dtype=int),
        }
    )
    # x errors honest for the faint frames, 3x too small for the bright ones
    scale = np.where(amp < 1e5, 1.0, 3.0)
    fits = pl.DataFrame(
        {
            "file_name": ["a.fits"] * n,
            "frame": np.arange(n),
            "status": np.zeros(n, dtype=int),
            "x_mean": 3.5 + 0.01 * scale * z,
            "x_mean_err": np.full(n, 0.01),
            "y_mean": 3.4 + 0.02 * z,
            "y_mean_err": np.full(n, 0.01),
            "amplitude": amp * (1 + 0.001 * z),
            "amplitude_err": amp * 0.002,
            "x_stddev": np.full(n, 0.65),
            "x_stddev_err": np.full(n, 0.01),
        }
    )
    # frames that must not count: a cosmic ray, a failed fit, a zero error
    truth = truth.with_columns(
        pl.when(pl.col("frame") == 0).then(17).otherwise(pl.col("cr_pixel")).alias("cr_pixel")
    )
    fits = fits.with_columns(
        pl.when(pl.col("frame") == 0).then(99.0).otherwise(pl.col("x_mean")).alias("x_mean"),
        pl.when(pl.col("frame") == 2).then(1).otherwise(pl.col("status")).alias("status"),
        pl.when(pl.col("frame") == 4).then(0.0).otherwise(pl.col("y_mean_err")).alias("y_mean_err"),
    )
    fits = fits.with_columns(
        pl.when(pl.col("frame") == 2).then(50.0).otherwise(pl.col("y_mean")).alias("y_mean")
    )
    p = bench.fit_pulls(fits, truth)
    get = {(r["parameter"], r["bin"]): r for r in p.iter_rows(named=True)}
    assert get[("x_mean", "0e0-1e5")]["pull_std"] == pytest.approx(1.0, abs=0.02)
    assert get[("x_mean", "3e5-inf")]["pull_std"] == pytest.approx(3.0, abs=0.05)
    assert ("x_mean", "1e5-3e5") not in get  # no frames there
    assert get[("y_mean", "all")]["pull_std"] == pytest.approx(2.0, abs=0.03)
    assert get[("y_mean", "all")]["n"] == n - 3  # the cosmic ray, the failure, the zero error
    assert get[("amplitude", "all")]["pull_std"] == pytest.approx(0.5, abs=0.01)
    assert get[("x_stddev", "all")]["pull_std"] == 0.0
    assert get[("x_mean", "all")]["n"] == n - 2


def test_false_peak_rates_count_series_not_peaks(bench) -> None:
    series = pl.DataFrame(
        {
            "program": [1, 1, 1, 1],
            "visit": [3, 3, 6, 6],
            "parameter": ["flux", "x_stddev", "flux", "x_stddev"],
        }
    )
    peaks = pl.DataFrame(
        {
            "program": [1, 1, 1, 1, 1, 1, 1],
            "visit": [3, 3, 3, 6, 9, 3, 6],
            "parameter": ["flux", "flux", "x_stddev", "flux", "flux", "amplitude", "x_stddev"],
            "fap": [0.005, 0.2, 1e-4, 0.5, 1e-9, 1e-9, 0.005],
            "instrumental": [False, False, True, False, False, False, False],
            "pointing": [False, False, False, None, False, False, True],
        }
    )
    r = bench.false_peak_rates(peaks, series)
    assert r["series"] == 4  # visit 9 and the amplitude series are not in the sample
    assert r["fap<0.01"] == pytest.approx(3 / 4)
    assert r["fap<0.001"] == pytest.approx(1 / 4)
    # the instrumental and the pointing peaks are flagged: only visit 3's flux peak is left
    assert r["fap<0.01_unflagged"] == pytest.approx(1 / 4)
    assert r["fap<0.001_unflagged"] == 0.0
    assert r["by_parameter"] == {
        "flux": {"series": 2, "fap<0.01": 1, "fap<0.001": 0},
        "x_stddev": {"series": 2, "fap<0.01": 2, "fap<0.001": 1},
    }
    # a series without any peak counts as quiet
    r = bench.false_peak_rates(peaks.filter(pl.col("visit") != 6), series)
    assert r["series"] == 4 and r["fap<0.01"] == pytest.approx(2 / 4)


def _files() -> pl.DataFrame:
    # visit 1 has two guide periods with a 30-s gap between them
    t0 = 60000.0
    return pl.DataFrame(
        {
            "program": [1, 1],
            "visit": [1, 1],
            "mode": ["fg", "fg"],
            "data_start_mjd": [t0, t0 + 330 / DAY],
            "data_end_mjd": [t0 + 300 / DAY, t0 + 630 / DAY],
        }
    )


def _event(kind: str, start_s: float, end_s: float, **kw) -> dict:
    base = dict(
        event_id=0,
        program=1,
        visit=1,
        gs_id="S1",
        depth=None,
        dx=None,
        dy=None,
        frac_x=None,
        jitter_px=None,
        duration_s=None,
    )
    base.update(kw)
    return dict(base, kind=kind, start_mjd=60000.0 + start_s / DAY, end_mjd=60000.0 + end_s / DAY)


def test_events_in_gaps_are_not_scored_and_recall_and_false_alarms(bench) -> None:
    events = pl.DataFrame(
        [
            _event("flux_drop", 100, 120, depth=0.01, duration_s=20.0),  # in data
            _event("flux_drop", 295, 315, depth=0.01, duration_s=20.0),  # runs into the gap
            _event("centroid_jump", 310, 630, dx=0.03, dy=0.04),  # starts in the gap
            _event("psf_width_change", 400, 630, frac_x=0.05),  # in data
            _event("hga_move", 500, 560, jitter_px=0.03, duration_s=60.0),  # in data
            _event("periodic_signal", 0, 630),
        ]
    )
    obs = bench.observable(events, _files())
    # the sinusoid starts at the file's first frame: not 10 s inside (and never scored anyway)
    assert obs.to_list() == [True, False, False, True, True, False]
    anomalies = pl.DataFrame(
        {
            "program": [1, 1, 1, 1, 1],
            "visit": [1, 1, 1, 1, 1],
            "kinds": [["flux_drop"], ["centroid_jump"], ["psf_change"], ["flux_step"], ["x"]],
            "kind": ["flux_drop", "centroid_jump", "psf_change", "flux_step", "x"],
            # the drop found 0.5 s late; the PSF change 9 s late (outside 5 s); a stray at 200 s
            "start_mjd": [60000.0 + s / DAY for s in (100.5, 311.0, 409.0, 200.0, 570.0)],
            "end_mjd": [60000.0 + s / DAY for s in (119.0, 311.1, 409.1, 200.1, 570.1)],
        }
    )
    scorable = events.filter(obs & pl.col("kind").is_in(list(bench.EXPECTED)))
    scored = bench.score_events(scorable, anomalies)
    found = dict(zip(scored["kind"], scored["found"], strict=True))
    assert found == {"flux_drop": True, "psf_width_change": False, "hga_move": False}
    assert scored.filter(pl.col("kind") == "flux_drop")["timing_error_s"][0] == pytest.approx(
        0.5, abs=1e-3
    )
    assert scored.filter(pl.col("kind") == "flux_drop")["amplitude"][0] == 0.01
    # false alarms: only the stray at 200 s touches no event (570 s is within the HGA move + 5 s,
    # 409 s within the PSF change that lasts to the end, 311 s within the jump)
    fa = bench.false_alarms(anomalies, events)
    assert fa["kind"].to_list() == ["flux_step"]


def test_sinusoid_recall_and_the_report(bench) -> None:
    sins = [
        {"program": 1, "visit": 1, "period_s": 100.0, "amplitude": 1e-3, "z": 8.0},
        {"program": 1, "visit": 4, "period_s": 300.0, "amplitude": 1e-3, "z": 4.0},
        {"program": 1, "visit": 7, "period_s": 500.0, "amplitude": 1e-3, "z": 6.0},
    ]
    peaks = pl.DataFrame(
        {
            "program": [1, 1, 1, 1],
            "visit": [1, 4, 7, 7],
            "parameter": ["flux_opt", "flux", "flux", "x_mean"],
            "period_s": [102.0, 300.0, 500.0, 500.0],
            "fap": [1e-4, 0.05, 1e-6, 1e-9],
            "pointing": [False, False, True, False],
        }
    )
    s = bench.score_sinusoids(sins, peaks)
    # 2 % off: detected (within 3 %) not found (1 %); FAP 5 %: no; blamed on pointing: no
    assert s["detected"].to_list() == [True, False, False]
    assert s["found"].to_list() == [False, False, False]
    run = {
        "noise": "white",
        "seed": 1,
        "hours_guided": 2.0,
        "pulls": [{"parameter": "x_mean", "bin": "all", "n": 10, "pull_std": 1.5}],
        "false_peaks": {"series": 10, "fap<0.01": 0.1, "fap<0.001": 0.0, "fap<0.01_unflagged": 0},
        "false_alarms_per_10h": 5.0,
        "recall": {k: {"n": 2, "found": 1} for k in bench.EXPECTED},
        "sinusoids": {"n": 3, "found": 1},
    }
    text = bench.report([run, dict(run, seed=2, false_alarms_per_10h=1.0)])
    row = next(line for line in text.splitlines() if line.startswith("| white |"))
    assert "| 2 | 4.0 | 1.50 (1.50-1.50) |" in row
    assert "| 10.0% | 0.0% | 0.0% (of 20) | 3.00 (1.00-5.00) |" in row
    assert row.endswith("| 50% (2/4) | 33% (2/6) |")


def test_one_small_run_end_to_end(bench, tmp_path) -> None:
    """The whole bench on ~34 min of AR(1) noise: every figure is there and comes from the run."""
    import argparse

    args = argparse.Namespace(
        hours=0.55,
        programs=1,
        frames_per_file=4000,
        guide_period_frames=(2000, 5000),
        workers=2,
        min_sigma=5.0,
        debug_misses=False,
    )
    r = bench.run_one(args, "ar1", 7, tmp_path)
    assert r["visits"] == 4 and r["frames"] == 4 * 8000
    assert r["guide_periods"] >= 4 * 2  # 8000 frames in guide periods of <= 5000
    assert r["hours_guided"] == pytest.approx(4 * 8000 * 0.064 / 3600, rel=1e-3)
    pulls = {(p["parameter"], p["bin"]): p for p in r["pulls"]}
    for p in bench.PULL_PARAMETERS:
        assert pulls[(p, "all")]["n"] > 0.9 * r["frames"] and pulls[(p, "all")]["pull_std"] > 0
    # visit 3 is quiet: its five series are the false-peak sample
    assert r["false_peaks"]["series"] == len(bench.FALSE_PEAK_PARAMETERS)
    assert sum(v["n"] for v in r["recall"].values()) >= 3
    assert r["sinusoids"]["n"] == 2  # visits 1 and 4
    text = bench.report([r])
    assert text.splitlines()[2].startswith("| ar1 | 1 | 0.6 |")


def test_event_snr_against_the_noise_at_the_event_scale(bench) -> None:
    """A 1 % drop of 100 frames on 1 % white noise per frame: S/N = 0.01 / (0.01 sqrt(1/100 +
    1/200)) = 8.2 against a box minus its two flanks; a 0.05-px jump on 0.01-px noise stands out
    most at the widest window that fits; both from the visit's own series."""
    rng = np.random.default_rng(3)
    n = 20_000
    t = 60000.0 + np.arange(n) * 0.064 / 86400
    flux = 1.0 + rng.normal(0.0, 0.01, n)
    x = 3.5 + rng.normal(0.0, 0.01, n)
    series = pl.DataFrame(
        {
            "program": 1,
            "visit": 1,
            "time_mjd": t,
            "flux_opt": flux,
            "x_mean": x,
            "y_mean": x[::-1].copy(),
            "x_stddev": 0.6 + rng.normal(0.0, 0.006, n),
        }
    )
    scored = pl.DataFrame(
        {
            "kind": ["flux_drop", "centroid_jump", "hga_move"],
            "program": [1, 1, 1],
            "visit": [1, 1, 1],
            "start_mjd": [t[5000], t[12000], t[16000]],
            "amplitude": [0.01, 0.05, 0.03],
            "duration_s": [100 * 0.064, None, 60.0],
        }
    )
    snr = bench.event_snr(scored, series).to_list()
    assert snr[0] == pytest.approx(8.2, rel=0.15)
    # the widest window, 2000 frames: noise 0.01 sqrt(2 / 2000) from 32 outputs (+-13 %)
    assert snr[1] == pytest.approx(0.05 / (0.01 * np.sqrt(2 / 2000)), rel=0.3)  # 32 windows
    assert snr[2] == pytest.approx(3.0, rel=0.1)
