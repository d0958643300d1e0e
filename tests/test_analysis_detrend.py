"""Shared robust helpers of the analyses."""

from __future__ import annotations

import numpy as np
import pytest

from fgsarchive.analysis.detrend import (
    despike,
    detrend_series,
    diff_noise,
    median_and_std,
    robust_std,
    running_median,
    split_segments,
)


def test_noise_estimates_are_robust():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, 200_000)
    assert robust_std(x) == pytest.approx(2.0, rel=0.01)
    assert median_and_std(x)[1] == pytest.approx(2.0, rel=0.02)
    # differences ignore a trend, a step and outliers
    y = x + np.linspace(0, 500, x.size) + 50.0 * (np.arange(x.size) > 1000)
    y[::1000] += 1e4
    assert diff_noise(y) == pytest.approx(2.0, rel=0.02)
    assert np.isnan(diff_noise(np.array([1.0, np.nan])))


def test_running_median_keeps_steps_and_follows_slopes_at_the_ends():
    x = np.r_[np.zeros(500), np.full(500, 10.0)]
    np.testing.assert_array_equal(running_median(x, 101), x)
    ramp = np.arange(1000, dtype=float)
    np.testing.assert_allclose(running_median(ramp, 101), ramp, atol=1e-9)
    assert running_median(np.array([3.0, 1.0]), 5).tolist() == [3.0, 1.0]


def test_despike_removes_short_spikes_only():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 1000)
    y = x.copy()
    y[100] += 50
    y[500:502] -= 40
    y[700:720] += 10  # a 20-sample box is not a spike
    out = despike(y, threshold=6.0)
    assert abs(out[100]) < 4 and np.all(np.abs(out[500:502]) < 4)
    np.testing.assert_array_equal(out[700:720], y[700:720])
    untouched = np.ones(1000, dtype=bool)
    untouched[[100, 500, 501]] = False
    assert np.mean(out[untouched] == y[untouched]) > 0.99


def test_split_segments_and_detrend_per_segment():
    t = np.r_[np.arange(100), 200 + np.arange(50)] * 1.0
    assert split_segments(t, 5.0) == [(0, 100), (100, 150)]
    y = np.r_[np.full(100, 5.0), np.full(50, -3.0)] + 0.1 * t
    y[3] = np.nan
    med = detrend_series(t, y, method="median")
    assert np.isnan(med[3])
    assert np.nanmedian(med[:100]) == pytest.approx(0) and np.median(med[100:]) == pytest.approx(0)
    lin = detrend_series(t, y, method="linear")
    np.testing.assert_allclose(np.nan_to_num(lin), 0, atol=1e-9)
    np.testing.assert_array_equal(detrend_series(t, y, method="none")[4:], y[4:])
    with pytest.raises(ValueError, match="valid values: 'median', 'linear', 'none'"):
        detrend_series(t, y, method="mean")


def test_fast_medians_equal_numpy_median_exactly():
    """median_and_std (numba below SMALL_MEDIAN_SIZE values, in-place partition above) and
    median_inplace give np.median's numbers to the bit: odd and even counts, ties, NaNs."""
    from fgsarchive.analysis.detrend import MAD_TO_SIGMA, SMALL_MEDIAN_SIZE, median_inplace

    rng = np.random.default_rng(7)
    sizes = [1, 2, 3, 4, 5, 17, 64, SMALL_MEDIAN_SIZE - 1, SMALL_MEDIAN_SIZE]
    sizes += [SMALL_MEDIAN_SIZE + 1, SMALL_MEDIAN_SIZE + 2, 5000, 5001]
    for trial, n in enumerate(sizes * 6):
        x = rng.standard_t(3, n) * 10 ** rng.uniform(-3, 3)
        if trial % 3 == 1:
            x = np.round(x)  # many ties
        if trial % 4 == 2:
            x[rng.random(n) < 0.3] = np.nan
        f = x[np.isfinite(x)]
        if f.size == 0:
            assert np.isnan(median_and_std(x)).all()
            continue
        med = np.median(f)
        expected = (med, MAD_TO_SIGMA * np.median(np.abs(f - med)))
        assert median_and_std(x) == expected, (n, trial)
        assert median_inplace(f.copy()) == med, (n, trial)
