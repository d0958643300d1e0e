"""The exact FFT Lomb-Scargle (backend "fft") against nifty-ls and astropy's direct sums on the
grid it chose, on seeded, read-only series: one regular run, runs with non-integer gaps, masks
differing per series, a non-default band, the double-frequency wrap, and the nifty-ls fallback
for times off the cadence grid."""

from __future__ import annotations

import nifty_ls
import numpy as np
import pytest
from astropy.timeseries import LombScargle

from fgsarchive.analysis import periodogram as pg
from fgsarchive.analysis.periodogram import periodogram_series

DT = 0.064
ATOL = 1e-6  # absolute, on powers in 0..1


def runs(lengths, starts, seed=0, k=3, jitter=0.0):
    """Times (s, MJD x 86400 as the archive stores them) of runs of 64-ms frames, and k series
    with a sinusoid each and white noise."""
    rng = np.random.default_rng(seed)
    t = np.concatenate([s + np.arange(n) * DT for n, s in zip(lengths, starts, strict=True)])
    t = (60000.0 + t / 86400.0) * 86400.0  # float64 rounding of the stored times (~1 us)
    t = t + rng.normal(0, jitter, t.size)
    periods = np.array([3.7, 0.41, 29.0])[:k]
    y = 0.3 * np.sin(2 * np.pi * t[None, :] / periods[:, None]) + rng.normal(0, 1.0, (k, t.size))
    t.setflags(write=False)
    return t, y


def nifty_on_grid(t, y, res):
    """nifty-ls powers (masked = zero weight) on the result's own grid."""
    fin = np.isfinite(y)
    out = nifty_ls.lombscargle(
        t - t[0],
        np.where(fin, y, 0.0),
        dy=np.where(fin, 1.0, np.inf),
        fmin=res.f0_hz,
        fmax=res.fmax_hz,
        Nf=res.nf,
        normalization="standard",
    )
    return np.atleast_2d(np.asarray(out.power))


def astropy_at(t, y, freq):
    """astropy's exact direct sum (method "slow"), masked samples dropped."""
    ok = np.isfinite(y)
    return LombScargle(t[ok] - t[0], y[ok]).power(freq, method="slow")


def check_exact(t, y, res, n_astropy=150):
    assert res.backend == "fft"
    ref = nifty_on_grid(t, y, res)
    np.testing.assert_allclose(res.power, ref, atol=ATOL, rtol=0)
    freq = res.frequency_hz()
    pick = np.linspace(0, res.nf - 1, n_astropy).astype(int)
    for i in range(y.shape[0]):
        np.testing.assert_allclose(
            res.power[i, pick], astropy_at(t, y[i], freq[pick]), atol=ATOL, rtol=0
        )


def test_one_regular_run_matches_nifty_and_astropy_on_its_grid():
    t, y = runs([3000], [0.0])
    res = periodogram_series(t, y, detrend="none", significance="white")
    check_exact(t, y, res)
    # the grid is m / (M dt): M a fast FFT length >= 5 x baseline / dt, spacing <= the one asked
    baseline = t[-1] - t[0]
    m_fft = 1.0 / (res.df_hz * DT)
    assert abs(m_fft - round(m_fft)) < 1e-3  # dt is fitted to the times (~1e-9 off 64 ms)
    assert 1 / (5 * baseline) * (1 - 2e-3) <= res.df_hz <= 1 / (5 * baseline)
    # the default start is the grid point nearest 1 / baseline (where nifty-ls's grid starts):
    # the continuum's resolution elements then fall where they did
    assert abs(res.f0_hz - 1 / baseline) <= 0.5 * res.df_hz
    nyquist = 0.5 / DT
    assert nyquist - res.df_hz <= res.fmax_hz < nyquist  # strictly below: the sine vanishes there
    asked = periodogram_series(t, y, fmax_hz=0.5 / np.median(np.diff(t)), significance="white")
    assert (asked.nf, asked.fmax_hz) == (res.nf, res.fmax_hz)
    # the injected 3.7-s line is the top peak
    top = res.peaks.filter(res.peaks["series"] == "0")["period_s"][0]
    assert top == pytest.approx(3.7, rel=0.01)


def test_runs_with_non_integer_gaps_and_masks_per_series(monkeypatch):
    # three files: gaps of 200.013 s and 102.038 s are not whole multiples of 64 ms
    t, y = runs([2500, 1800, 2200], [0.0, 360.013, 622.251], seed=1)
    rng = np.random.default_rng(2)
    y[1, rng.random(t.size) < 0.05] = np.nan  # scattered
    y[2, 700:900] = np.nan  # a block
    grid = pg._regular_grid(t - t[0], np.median(np.diff(t)))
    assert grid is not None and grid.phase.size == 3
    # 3 offsets x (3 series + 3 masks) FFT rows: nifty-ls is expected to be faster
    assert periodogram_series(t, y, significance="white").backend == "nifty"
    monkeypatch.setattr(pg, "FFT_COST_RATIO", 100.0)
    res = periodogram_series(t, y, detrend="none", significance="white")
    assert res.n_points == (t.size, int(np.isfinite(y[1]).sum()), t.size - 200)
    check_exact(t, y, res)


def test_non_default_band():
    t, y = runs([2000, 2000], [0.0, 140.5], seed=3, k=2)
    res = periodogram_series(t, y, fmin_hz=0.05, fmax_hz=3.0, detrend="none", significance="white")
    assert res.f0_hz >= 0.05 > res.f0_hz - res.df_hz
    assert 3.0 - res.df_hz < res.fmax_hz <= 3.0
    check_exact(t, y, res)


@pytest.mark.parametrize("starts", [[0.0], [0.0, 150.037]])
def test_double_frequency_wraps_beyond_the_fft_length(starts):
    # up to 0.9 / dt: 2m runs past M (and m past M/2), both folded by the DFT's periodicity
    lengths = [1500] * len(starts)
    t, y = runs(lengths, starts, seed=4, k=2)
    res = periodogram_series(
        t, y, fmax_hz=0.9 / DT, detrend="none", significance="white", samples_per_peak=2
    )
    m_fft = round(1.0 / (res.df_hz * DT))
    m = np.rint(res.frequency_hz() / res.df_hz).astype(int)
    assert m.max() > m_fft / 2 and 2 * m.max() > m_fft
    ref = nifty_on_grid(t, y, res)
    # one regular run: at m = M/2 the sine vanishes on every sample, nifty's value there is
    # round-off; ours is the cosine-only fit (checked below against a direct least squares)
    regular = (2 * m) % m_fft != 0 if len(starts) == 1 else np.ones(m.size, bool)
    np.testing.assert_allclose(res.power[:, regular], ref[:, regular], atol=ATOL, rtol=0)
    if len(starts) == 1:
        (j,) = np.flatnonzero(~regular)
        tt = t - t[0]
        for i in range(2):
            a = np.column_stack([np.ones(t.size), np.cos(2 * np.pi * res.frequency_hz()[j] * tt)])
            resid = y[i] - a @ np.linalg.lstsq(a, y[i], rcond=None)[0]
            expect = 1 - resid.var() / y[i].var()
            assert res.power[i, j] == pytest.approx(expect, abs=ATOL)


def test_jittered_times_fall_back_to_nifty_and_stay_right():
    t, y = runs([1500], [0.0], seed=5, k=2, jitter=0.002)  # 3 % of a cadence
    assert pg._regular_grid(t - t[0], np.median(np.diff(t))) is None
    res = periodogram_series(t, y, detrend="none", significance="white")
    assert res.backend == "nifty"
    baseline = t[-1] - t[0]
    assert res.df_hz == pytest.approx(1 / (5 * baseline))  # the grid asked for, unchanged
    freq = res.frequency_hz()
    pick = np.linspace(0, res.nf - 1, 100).astype(int)
    for i in range(2):
        ref = astropy_at(t, y[i], freq[pick])
        np.testing.assert_allclose(res.power[i, pick], ref, atol=1e-5, rtol=0)


def test_too_many_offset_classes_fall_back(monkeypatch):
    starts = [0.0, 70.011, 140.029, 210.047]
    t, y = runs([400] * 4, starts, seed=6, k=1)
    grid = pg._regular_grid(t - t[0], np.median(np.diff(t)))
    assert grid.phase.size == 4
    monkeypatch.setattr(pg, "FFT_MAX_OFFSETS", 3)
    assert pg._regular_grid(t - t[0], np.median(np.diff(t))) is None
    res = periodogram_series(t, y, detrend="none", significance="white")
    assert res.backend == "nifty"


def test_fft_and_nifty_backends_find_the_same_peaks():
    t, y = runs([6000], [0.0], seed=7)
    a = periodogram_series(t, y, n_peaks=3)
    b = periodogram_series(t, y, n_peaks=3, backend="nifty")
    assert (a.backend, b.backend) == ("fft", "nifty")
    for name in ("0", "1", "2"):
        fa = a.peaks.filter(a.peaks["series"] == name)["frequency_hz"][0]
        fb = b.peaks.filter(b.peaks["series"] == name)["frequency_hz"][0]
        assert abs(fa - fb) <= max(a.df_hz, b.df_hz)


def test_batched_rows_equal_one_row_at_a_time(monkeypatch):
    t, y = runs([2000, 1500], [0.0, 131.3], seed=8, k=3)
    y[0, ::11] = np.nan
    whole = periodogram_series(t, y, detrend="none", significance="white")
    monkeypatch.setattr(pg, "FFT_BATCH_BYTES", 1)  # one FFT row per batch
    one = periodogram_series(t, y, detrend="none", significance="white")
    assert whole.backend == one.backend == "fft"
    np.testing.assert_allclose(whole.power, one.power, atol=1e-12, rtol=0)


def test_few_missing_samples_share_the_all_samples_window(monkeypatch):
    """Series missing up to FFT_DIRECT_MISSING samples use the all-samples window corrected by
    direct sums over what they miss; one missing more gets a window of its own; all exact."""
    t, y = runs([2500, 1800, 2200], [0.0, 360.013, 622.251], seed=3)
    rng = np.random.default_rng(4)
    y = np.vstack([y, rng.normal(0, 1.0, (2, t.size))])  # 5 series
    limit = pg.FFT_DIRECT_MISSING
    for row, count in zip(range(1, 5), (1, 7, limit, limit + 1), strict=True):
        y[row, rng.choice(t.size, count, replace=False)] = np.nan
    shared, own = pg._window_masks(np.isfinite(y))
    assert shared.tolist() == [True, True, True, True, False] and own == 1
    monkeypatch.setattr(pg, "FFT_COST_RATIO", 100.0)
    res = periodogram_series(t, y, detrend="none", significance="white")
    check_exact(t, y, res)
