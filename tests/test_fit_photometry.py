"""fgsarchive.fit.photometry: exact overlap areas, backgrounds, apertures, optimal masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from fgsarchive.fit.photometry import (
    DEFAULT_RADII,
    aperture_photometry_stack,
    background_stack,
    masked_flux,
    optimal_mask,
    pixel_overlap_areas,
)

YY, XX = np.mgrid[:8, :8].astype(np.float64)


def star_frames(n, seed, *, amplitude=2.8e5, offset=3000.0, sigma=0.62, read_noise=10.0):
    """Seeded round-star frames (Poisson + read noise) at random subpixel positions."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(2.5, 4.5, n)
    y = rng.uniform(2.5, 4.5, n)
    model = offset + amplitude * np.exp(
        -((XX - x[:, None, None]) ** 2 + (YY - y[:, None, None]) ** 2) / (2 * sigma**2)
    )
    frames = rng.poisson(model) + rng.normal(0.0, read_noise, model.shape)
    return frames.astype(np.float32), x, y


def area_by_quadrature(xc, yc, r, x0, x1, y0, y1):
    """Area of the disc inside [x0, x1] x [y0, y1] by adaptive quadrature of chord lengths."""

    def chord(x):
        h2 = r * r - (x - xc) ** 2
        if h2 <= 0:
            return 0.0
        h = math.sqrt(h2)
        return max(0.0, min(y1, yc + h) - max(y0, yc - h))

    lo, hi = max(x0, xc - r), min(x1, xc + r)
    if hi <= lo:
        return 0.0
    # split at the kinks: the centre and where the circle crosses y0 or y1
    pts = [xc]
    for dy in (y1 - yc, yc - y0):
        if abs(dy) < r:
            d = math.sqrt(r * r - dy * dy)
            pts += [xc - d, xc + d]
    edges = [lo, *sorted(p for p in pts if lo < p < hi), hi]
    return sum(
        quad(chord, a, b, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    )


# ------------------------------------------------------------------------------- overlap areas


@settings(max_examples=60, deadline=None)
@given(
    r=st.floats(0.05, 3.99),
    fx=st.floats(0.0, 1.0),
    fy=st.floats(0.0, 1.0),
)
def test_areas_sum_to_pi_r2_inside_the_frame(r, fx, fy):
    x = (r - 0.5) + fx * (8.0 - 2.0 * r)
    y = (r - 0.5) + fy * (8.0 - 2.0 * r)
    a = pixel_overlap_areas(x, y, r)
    assert a.shape == (8, 8)
    assert np.all(a >= -1e-12) and np.all(a <= 1 + 1e-12)
    assert a.sum() == pytest.approx(math.pi * r * r, rel=1e-11, abs=1e-14)


@settings(max_examples=25, deadline=None)
@given(x=st.floats(-2.0, 9.0), y=st.floats(-2.0, 9.0), r=st.floats(0.1, 5.0))
def test_areas_match_quadrature_anywhere(x, y, r):
    a = pixel_overlap_areas(x, y, r)
    py, px = np.unravel_index(np.argmax(a), a.shape)
    # the largest pixel, a boundary pixel, and the whole frame box
    for qx, qy in {(px, py), (int(np.clip(round(x + r), 0, 7)), int(np.clip(round(y), 0, 7)))}:
        want = area_by_quadrature(x, y, r, qx - 0.5, qx + 0.5, qy - 0.5, qy + 0.5)
        assert a[qy, qx] == pytest.approx(want, abs=1e-9)
    assert a.sum() == pytest.approx(area_by_quadrature(x, y, r, -0.5, 7.5, -0.5, 7.5), abs=1e-8)


def test_areas_match_supersampling():
    rng = np.random.default_rng(3)
    k = 400  # sub-samples per pixel side
    sub = (np.arange(k) + 0.5) / k - 0.5
    for _ in range(5):
        x, y, r = rng.uniform(2, 5), rng.uniform(2, 5), rng.uniform(0.7, 3.2)
        gx = (np.arange(8)[:, None] + sub[None, :]).ravel()
        inside = ((gx[None, :] - x) ** 2 + (gx[:, None] - y) ** 2) <= r * r
        brute = inside.reshape(8, k, 8, k).mean(axis=(1, 3))
        np.testing.assert_allclose(pixel_overlap_areas(x, y, r), brute, atol=4e-3)


def test_area_special_cases():
    assert pixel_overlap_areas(3.0, 3.0, 0.0).sum() == 0.0
    # a circle covering the whole frame
    assert np.allclose(pixel_overlap_areas(3.5, 3.5, 20.0), 1.0)
    # a circle centred on a pixel, small enough to stay inside it
    a = pixel_overlap_areas(4.0, 2.0, 0.4)
    assert a[2, 4] == pytest.approx(math.pi * 0.16) and a.sum() == pytest.approx(math.pi * 0.16)
    # symmetric about the frame centre
    a = pixel_overlap_areas(3.5, 3.5, 2.3)
    assert np.allclose(a, a[::-1, :]) and np.allclose(a, a[:, ::-1]) and np.allclose(a, a.T)
    with pytest.raises(ValueError):
        pixel_overlap_areas(3.0, 3.0, -1.0)


# ---------------------------------------------------------------------------------- background


def test_background_is_robust_and_nearly_unbiased():
    frames, x, y = star_frames(4000, seed=1)
    bg, sig = background_stack(frames, return_sigma=True)
    assert abs(np.median(bg) - 3000.0) < 3.0
    assert np.std(bg) < 15.0
    assert np.median(sig) == pytest.approx(math.sqrt(3000.0 + 100.0), rel=0.15)
    # a hot pixel and a cosmic ray away from the star hardly matter
    hit = frames.copy()
    hit[:, 0, 0] = 1e6
    hit[:, 7, 6] = 5e4
    assert np.median(np.abs(background_stack(hit) - bg)) < 5.0


def test_background_special_frames():
    frames = np.stack(
        [np.full((8, 8), np.nan), np.full((8, 8), 42.0), np.where(np.eye(8) > 0, np.nan, 7.0)]
    )
    bg = background_stack(frames)
    assert np.isnan(bg[0]) and bg[1] == 42.0 and bg[2] == 7.0
    assert background_stack(np.empty((0, 8, 8))).shape == (0,)


# -------------------------------------------------------------------------------- apertures


def test_aperture_of_flat_frame_is_the_covered_area():
    frames = np.full((3, 8, 8), 5.0, dtype=np.float32)
    x = np.array([3.5, 3.1, 0.2])
    y = np.array([3.5, 4.2, 0.4])
    flux = aperture_photometry_stack(frames, x, y, (1.5, 2.5, 3.5), background=0.0)
    for i in range(3):
        for k, r in enumerate((1.5, 2.5, 3.5)):
            assert flux[i, k] == pytest.approx(5.0 * pixel_overlap_areas(x[i], y[i], r).sum())
    assert flux[0, 2] == pytest.approx(5.0 * math.pi * 3.5**2)
    # background subtraction removes it all
    assert np.allclose(aperture_photometry_stack(frames, x, y, background=5.0), 0.0)


def test_aperture_photometry_of_stars():
    frames, x, y = star_frames(2000, seed=2)
    flux = aperture_photometry_stack(frames, x, y)
    assert flux.shape == (2000, len(DEFAULT_RADII))
    total = 2 * math.pi * 2.8e5 * 0.62**2
    # the fraction of a sampled Gaussian inside r: close to 1 - exp(-r^2 / 2 sigma^2)
    med = np.median(flux, axis=0) / total
    assert med[2] == pytest.approx(1.0, abs=0.003)
    assert med[1] == pytest.approx(1.0 - math.exp(-(2.5**2) / (2 * 0.62**2)), abs=0.01)
    assert np.all(np.diff(flux, axis=1) > -1e4)


def test_aperture_nan_handling():
    frames, x, y = star_frames(3, seed=3)
    frames[0, 0, 0] = np.nan  # outside every aperture
    frames[1, int(round(y[1])), int(round(x[1]))] = np.nan  # at the centre
    flux = aperture_photometry_stack(frames, x, y, background=3000.0)
    assert np.all(np.isfinite(flux[0])) and np.all(np.isnan(flux[1]))
    flux = aperture_photometry_stack(frames, np.array([np.nan, 3.0, 3.0]), y, background=0.0)
    assert np.all(np.isnan(flux[0]))
    with pytest.raises(ValueError):
        aperture_photometry_stack(frames, x, y, radii=())


# ------------------------------------------------------------------------- brightest-pixel mask


def test_masked_flux():
    frames, _, _ = star_frames(10, seed=4)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    assert np.allclose(masked_flux(frames, mask), frames[:, 2:5, 3:6].sum(axis=(1, 2)), rtol=1e-6)
    frames[0, 3, 3] = np.nan
    frames[1, 7, 7] = np.nan
    f = masked_flux(frames, mask)
    assert np.isnan(f[0]) and np.isfinite(f[1])
    with pytest.raises(ValueError):
        masked_flux(frames, np.ones((4, 4), bool))


def test_optimal_mask_beats_the_full_sum_on_a_noisy_background():
    rng = np.random.default_rng(5)
    n = 4096
    x = 3.4 + rng.normal(0, 0.01, n)
    y = 3.6 + rng.normal(0, 0.01, n)
    model = 3000.0 + 1e5 * np.exp(
        -((XX - x[:, None, None]) ** 2 + (YY - y[:, None, None]) ** 2) / (2 * 0.62**2)
    )
    frames = (rng.poisson(model) + rng.normal(0, 400.0, model.shape)).astype(np.float32)
    mask, n_pix, scatter = optimal_mask(frames, bin_frames=16)
    assert mask.dtype == bool and mask.shape == (8, 8) and mask.sum() == n_pix
    assert scatter.shape == (64,)
    assert 3 <= n_pix <= 25
    assert scatter[n_pix - 1] == np.nanmin(scatter)
    assert scatter[n_pix - 1] < 0.7 * scatter[63]
    # the chosen pixels are the brightest ones, around the star
    assert mask[int(round(3.6)), int(round(3.4))]
    med = np.median(frames, axis=0)
    assert med[mask].min() >= med[~mask].max()
    # and the masked sum is indeed quieter (relative to the star) than the full frame sum
    flux = masked_flux(frames, mask)
    full = masked_flux(frames, np.ones((8, 8), bool))
    rel = np.std(flux) / (np.median(flux) - n_pix * 3000.0)
    rel_full = np.std(full) / (np.median(full) - 64 * 3000.0)
    assert rel < rel_full


def test_optimal_mask_arguments():
    frames, _, _ = star_frames(100, seed=6)
    with pytest.raises(ValueError):
        optimal_mask(frames, bin_frames=16)  # only 6 bins
    with pytest.raises(ValueError):
        optimal_mask(frames, max_pixels=0)
    mask, n, scatter = optimal_mask(frames, max_pixels=10, bin_frames=4, background=3000.0)
    assert scatter.shape == (10,) and 1 <= n <= 10 and mask.sum() == n
