"""periodogram_series / instrumental_lines against astropy's exact direct-sum LombScargle
(method "cython": the same sum as "slow", compiled) on seeded, read-only data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from astropy.timeseries import LombScargle

from fgsarchive.analysis.periodogram import (
    MIN_POINTS,
    find_peaks,
    instrumental_lines,
    label_instrumental,
    periodogram_series,
)

CADENCE = 0.064


def gen_data(n=1500, k=3, seed=5, gaps=True):
    """Seeded, read-only series at 64 ms with two gaps, a sinusoid per row, white noise."""
    rng = np.random.default_rng(seed)
    t = 1000.0 + np.arange(n) * CADENCE + rng.normal(0, 0.002, n)
    if gaps:
        t[n // 3 :] += 7.3  # a 7-s gap
        t[2 * n // 3 :] += 31.0  # a 31-s gap
    periods = np.array([3.7, 11.0, 0.53])[:k]
    y = np.sin(2 * np.pi * t[None, :] / periods[:, None] + rng.uniform(0, 6, (k, 1)))
    y = 3.0 + 0.5 * y + rng.normal(0, 1.0, (k, n))
    t.setflags(write=False)
    y.setflags(write=False)
    return t, y, periods


def test_matches_astropy_slow_reference():
    t, y, _ = gen_data()
    res = periodogram_series(t, y, detrend="none", n_peaks=3)
    freq = res.frequency_hz()
    assert res.power.shape == (3, res.nf) == (3, freq.size)
    for i in range(3):
        ref = LombScargle(t, y[i]).power(freq, method="cython")
        np.testing.assert_allclose(res.power[i], ref, atol=1e-5, rtol=0)
        # the listed peaks are local maxima of the reference too, with the same power
        pk = res.peaks.filter(pl.col("series") == str(i))
        idx = np.round((pk["frequency_hz"].to_numpy() - res.f0_hz) / res.df_hz).astype(int)
        np.testing.assert_allclose(pk["power"].to_numpy(), ref[idx], atol=1e-5)
        assert int(np.argmax(ref)) == idx[0]


@pytest.mark.parametrize("significance", ["white", "continuum"])
def test_fap_white_is_astropy_baluev_for_the_peaks(significance):
    # ``fap_white`` is Baluev's white-noise FAP; with significance="white" it is also ``fap``
    t, y, _ = gen_data(k=1)
    res = periodogram_series(t, y[0], detrend="none", n_peaks=4, significance=significance)
    ls = LombScargle(t, y[0])
    ref = ls.false_alarm_probability(
        res.peaks["power"].to_numpy(),
        method="baluev",
        minimum_frequency=res.f0_hz,
        maximum_frequency=res.fmax_hz,
    )
    np.testing.assert_allclose(res.peaks["fap_white"].to_numpy(), ref, rtol=1e-9, atol=1e-300)
    if significance == "white":
        np.testing.assert_allclose(res.peaks["fap"].to_numpy(), ref, rtol=1e-9, atol=1e-300)
    assert res.peaks["fap"][0] < 1e-8  # the injected sinusoid


def test_recovers_injected_period_within_one_percent():
    rng = np.random.default_rng(11)
    n = 40_000
    t = np.arange(n) * CADENCE
    for period in (0.43, 9.7, 300.0):
        y = 2e-4 * np.sin(2 * np.pi * t / period) + rng.normal(0, 1e-3, n)
        res = periodogram_series(t, y, n_peaks=1)
        assert res.peaks["period_s"][0] == pytest.approx(period, rel=0.01)


def test_default_grid_stops_at_real_nyquist():
    t, y, _ = gen_data(gaps=False)
    res = periodogram_series(t, y)
    baseline = t[-1] - t[0]
    assert res.f0_hz == pytest.approx(1 / baseline)
    assert res.df_hz == pytest.approx(1 / (5 * baseline))
    nyq = 0.5 / np.median(np.diff(t))
    assert nyq - res.df_hz <= res.fmax_hz <= nyq
    assert res.frequency_hz()[-1] == pytest.approx(res.fmax_hz)
    np.testing.assert_allclose(res.period_s(), 1 / res.frequency_hz())


def test_batched_equals_one_at_a_time_and_names():
    t, y, _ = gen_data()
    batched = periodogram_series(t, y, names=["flux", "x_mean", "y_mean"])
    for i, name in enumerate(["flux", "x_mean", "y_mean"]):
        single = periodogram_series(t, y[i], names=[name])
        np.testing.assert_allclose(batched.power_of(name), single.power[0], atol=1e-8)
    assert batched.peaks["series"].unique().sort().to_list() == ["flux", "x_mean", "y_mean"]
    with pytest.raises(ValueError, match="valid values: flux, x_mean, y_mean"):
        batched.power_of("theta")


def test_astropy_backend_agrees():
    t, y, _ = gen_data(n=2000, k=2)
    a = periodogram_series(t, y, backend="astropy")
    b = periodogram_series(t, y, backend="nifty")
    np.testing.assert_allclose(a.power, b.power, atol=2e-4)
    assert a.peaks["frequency_hz"].to_list()[:1] == b.peaks["frequency_hz"].to_list()[:1]


def test_masked_samples_are_dropped_per_series():
    t, y, _ = gen_data(k=2)
    y = y.copy()
    y[1, ::7] = np.nan
    res = periodogram_series(t, y, detrend="none")
    ok = np.isfinite(y[1])
    ref = LombScargle(t[ok], y[1, ok]).power(res.frequency_hz(), method="cython")
    np.testing.assert_allclose(res.power[1], ref, atol=1e-5)
    ref0 = LombScargle(t, y[0]).power(res.frequency_hz(), method="cython")
    np.testing.assert_allclose(res.power[0], ref0, atol=1e-5)
    assert res.n_points == (t.size, int(ok.sum()))


def test_detrend_median_removes_segment_offsets():
    t, y, periods = gen_data(k=1)
    y = y.copy()
    y[0, t.size // 3 :] += 5.0  # a 5-sigma offset between files
    # ranked by power: the offset dominates without detrending (ranked by significance against
    # the local continuum, the offset is continuum and the sinusoid already comes first)
    raw = periodogram_series(t, y, detrend="none", n_peaks=1, significance="white")
    med = periodogram_series(t, y, detrend="median", n_peaks=1)
    lin = periodogram_series(t, y, detrend="linear", n_peaks=1)
    assert raw.peaks["period_s"][0] > 20  # the offset dominates without detrending
    assert med.peaks["period_s"][0] == pytest.approx(periods[0], rel=0.01)
    assert lin.peaks["period_s"][0] == pytest.approx(periods[0], rel=0.01)
    # a running median over 2 s removes the 11 s... but keeps 0.53 s
    t2, y2, p2 = gen_data(k=3, gaps=False)
    hp = periodogram_series(t2, y2, detrend="median", detrend_window_s=2.0, n_peaks=1)
    assert hp.peaks.filter(pl.col("series") == "2")["period_s"][0] == pytest.approx(p2[2], 0.01)
    assert hp.peaks.filter(pl.col("series") == "1")["period_s"][0] != pytest.approx(p2[1], 0.05)


def test_sidelobes_are_not_listed_as_peaks():
    rng = np.random.default_rng(3)
    t = np.arange(20_000) * CADENCE
    y = np.sin(2 * np.pi * t / 37.0) + 0.3 * np.sin(2 * np.pi * t / 3.1)
    y = y + rng.normal(0, 0.3, t.size)
    res = periodogram_series(t, y, n_peaks=2, significance="white")  # ranked by power
    assert res.peaks["period_s"].to_list() == pytest.approx([37.0, 3.1], rel=0.01)
    # ranked by significance against the local continuum: the 37-s line's own side lobes raise
    # its continuum, so the 3.1-s line may come first; no side lobe is listed either way
    res = periodogram_series(t, y, n_peaks=2)
    assert sorted(res.peaks["period_s"].to_list()) == pytest.approx([3.1, 37.0], rel=0.01)
    assert find_peaks(np.array([0.0, 1.0, 0.0]), 0, 5).size == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "scipy"}, "valid values: 'fft', 'nifty', 'astropy'"),
        ({"detrend": "spline"}, "valid values: 'median', 'linear', 'none'"),
        ({"fmin_hz": 5.0, "fmax_hz": 1.0}, "fmin_hz < fmax_hz"),
        ({"samples_per_peak": 0}, "samples_per_peak"),
    ],
)
def test_bad_options_raise(kwargs, message):
    t, y, _ = gen_data(n=200, k=1)
    with pytest.raises(ValueError, match=message):
        periodogram_series(t, y, **kwargs)


def test_too_short_and_bad_shapes_raise():
    t = np.arange(MIN_POINTS - 1) * CADENCE
    with pytest.raises(ValueError, match=f"at least {MIN_POINTS}"):
        periodogram_series(t, np.ones_like(t))
    t = np.arange(100) * CADENCE
    y = np.ones((2, 100))
    y[1, :90] = np.nan
    with pytest.raises(ValueError, match="series '1' has 10 finite samples"):
        periodogram_series(t, y)
    with pytest.raises(ValueError, match="time_s has shape"):
        periodogram_series(t[:-1], y)
    with pytest.raises(ValueError, match="names"):
        periodogram_series(t, y, names=["a"])


def _peaks_table(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    # a 0.2 Hz line in 6 stars, a 3.3 mHz (5-minute) line in 4, a line in 2 stars only
    for i in range(6):
        rows.append((f"G{i}", 0.2 * (1 + rng.normal(0, 0.002)), 0.01, 1e-8))
    for i in range(3, 7):
        rows.append((f"G{i}", 1 / 300 * (1 + rng.normal(0, 0.002)), 0.02, 1e-6))
    rows += [("G7", 1.7, 0.05, 1e-9), ("G8", 1.705, 0.05, 1e-9)]
    # significant but unrelated peaks, and noise peaks (high FAP) everywhere
    for i in range(10):
        rows.append((f"G{i}", float(rng.uniform(0.3, 1.5)), 0.01, 1e-4))
        rows += [(f"G{i}", float(f), 0.001, 0.5) for f in rng.uniform(2, 7.8, 20)]
    return pl.DataFrame(rows, schema=["gs_id", "frequency_hz", "power", "fap"], orient="row")


def test_instrumental_lines_found_across_stars():
    peaks = _peaks_table()
    lines = instrumental_lines(peaks, rel_tol=0.01, min_stars=3)
    assert lines.height == 2
    assert lines["n_stars"].to_list() == [6, 4]
    assert lines["frequency_hz"].to_list() == pytest.approx([0.2, 1 / 300], rel=0.005)
    assert lines["gs_ids"][0].to_list() == [f"G{i}" for i in range(6)]
    assert lines["period_s"][1] == pytest.approx(300, rel=0.005)
    # noise peaks are ignored by default; with every peak counted they make lines
    assert instrumental_lines(peaks, max_fap=None, min_stars=3).height > 2
    assert instrumental_lines(peaks, min_stars=7).height == 0


def test_label_instrumental():
    peaks = _peaks_table()
    lines = instrumental_lines(peaks)
    labelled = label_instrumental(peaks, lines)
    assert labelled.columns == [*peaks.columns, "line_id", "instrumental"]
    on_line = labelled.filter(pl.col("instrumental"))
    assert on_line.height == 10
    assert set(on_line["line_id"].to_list()) == {0, 1}
    assert labelled.filter(~pl.col("instrumental"))["line_id"].null_count() == peaks.height - 10
    empty = label_instrumental(peaks, lines.head(0))
    assert not empty["instrumental"].any()


def test_instrumental_lines_validates_columns():
    with pytest.raises(ValueError, match="lacks column"):
        instrumental_lines(pl.DataFrame({"gs_id": ["a"], "frequency_hz": [1.0]}))


def test_flux_opt_fast_pointing_line_is_decorrelated_before_the_periodogram():
    """The pointing has lines at 0.4-2 s; a fixed aperture turns them into flux_opt lines. The
    periodogram's decorrelation fits frame by frame, so such a line leaves no significant
    flux_opt peak (a fit on 4-s bin means averaged the line away and left it in the flux)."""
    from fgsarchive.analysis.periodogram import condition_for_periodogram

    rng = np.random.default_rng(11)
    n, cadence = 12_000, 0.064
    t = np.arange(n) * cadence
    x = 0.02 * np.sin(2 * np.pi * t / 0.7) + 0.01 * rng.standard_normal(n)
    y = 0.02 * np.cos(2 * np.pi * t / 1.9) + 0.01 * rng.standard_normal(n)
    flux = 1e5 * (1 - 0.05 * x - 0.04 * y - 1.5 * x**2 - 1.5 * y**2)
    flux += 1e5 * 0.003 * rng.standard_normal(n)
    rows = pl.DataFrame(
        {
            "time_mjd": 60000.0 + t / 86400.0,
            "file_name": ["a"] * n,
            "x_mean": 3.5 + x,
            "y_mean": 3.5 + y,
            "x_stddev": 0.64 + 0.001 * rng.standard_normal(n),
            "y_stddev": 0.64 + 0.001 * rng.standard_normal(n),
        }
    )
    raw = periodogram_series(t, flux, n_peaks=1).peaks
    assert raw["fap"][0] < 1e-6  # the leaked line is there before the decorrelation
    v = condition_for_periodogram(rows, "flux_opt", flux, None)
    best = periodogram_series(t, v, n_peaks=1).peaks
    assert best["fap"][0] > 0.01, best


def test_fitted_continuum_recovers_a_known_red_spectrum():
    """Exponential ordinates around S = W + A / (1 + (f / f_k)^2) (an AR(1) plus white noise):
    the Whittle fit (compiled) recovers W, A and f_k within 10 % and the continuum within 5 %
    in level; a white spectrum gets the white model (no red part)."""
    from fgsarchive.analysis.periodogram import fitted_continuum

    rng = np.random.default_rng(11)
    f0, df, spp = 1e-3, 2e-4, 5.0
    f = f0 + df * np.arange(40_000)
    w, a, fk = 1.0, 30.0, 0.02
    true = w + a / (1.0 + (f / fk) ** 2)
    cont, var_log, theta = fitted_continuum(true * rng.exponential(size=f.size), f0, df, spp)
    assert np.exp(theta[0]) == pytest.approx(w, rel=0.1)
    assert np.exp(theta[1]) == pytest.approx(a, rel=0.1)
    assert np.exp(theta[2]) == pytest.approx(fk, rel=0.1)
    assert theta[3] == pytest.approx(2.0, abs=0.1)
    assert np.max(np.abs(np.log(cont / true))) < 0.05
    assert np.all(var_log >= 0) and np.all(np.isfinite(var_log))

    cont_w, _v, theta_w = fitted_continuum(rng.exponential(size=f.size), f0, df, spp)
    assert np.median(cont_w) == pytest.approx(1.0, rel=0.03)
    assert np.max(np.abs(np.log(cont_w))) < 0.1  # flat (leave-out refits move the lowest a little)
    assert theta_w[1] <= np.log(np.median(cont_w)) - 20  # red amplitude at its lower bound


def test_baluev_fap_matches_astropy_over_the_power_range():
    # the direct formula against astropy's fap_baluev, from pure noise to strong lines
    from fgsarchive.analysis.periodogram import _baluev_fap

    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 600, 2_000))
    y = rng.normal(size=t.size)
    z = np.array([0.0, 1e-4, 2e-3, 5e-3, 0.01, 0.05, 0.3, 0.9])
    from astropy.timeseries.periodograms.lombscargle import _statistics

    # (LombScargle.false_alarm_probability takes fmax from its own grid, below 7.8 Hz here)
    ref = _statistics.fap_baluev(z, 7.8, t, y, 1.0, normalization="standard")
    got = _baluev_fap(t, z, 7.8)
    assert got[0] == 1.0 and got[-1] < 1e-300 + 1e-250
    np.testing.assert_allclose(got, np.clip(ref, 0, 1), rtol=1e-9, atol=1e-300)


def test_find_peaks_on_given_candidates_equals_the_full_arrays():
    # the periodogram passes order/envelope at the local maxima only: same peaks as full arrays
    from fgsarchive.analysis.periodogram import local_maxima

    rng = np.random.default_rng(5)
    power = rng.exponential(size=20_000)
    power[[3000, 3010, 9000]] += [40.0, 25.0, 30.0]
    order = np.log1p(power * 0.3) / 0.3 + rng.normal(0, 0.01, power.size)
    envelope = power / (1.0 + 0.1 * rng.random(power.size))
    full = find_peaks(power, 7, 5.0, order=order, envelope=envelope)
    cand = local_maxima(power)
    given = find_peaks(power, 7, 5.0, order=order[cand], envelope=envelope[cand], candidates=cand)
    assert full.size == 7 and 3000 in full and 9000 in full
    np.testing.assert_array_equal(given, full)
