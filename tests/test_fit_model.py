"""fgsarchive.fit.model against scipy curve_fit (astropy Gaussian2D + offset) on seeded frames."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.modeling.functional_models import Gaussian2D
from scipy.optimize import curve_fit

from fgsarchive.fit.model import (
    MIN_PIXELS,
    PARAM_NAMES,
    FitStatus,
    GaussFitResult,
    fit_gaussian_stack,
    gaussian2d,
    quick_fit_stack,
)

YY, XX = np.mgrid[:8, :8].astype(np.float64)
XY = np.vstack([XX.ravel(), YY.ravel()])


def astropy_model(xy, amplitude, x_mean, y_mean, x_stddev, y_stddev, theta, offset):
    """The reference model: astropy's own Gaussian2D.evaluate plus a constant."""
    return (
        Gaussian2D.evaluate(xy[0], xy[1], amplitude, x_mean, y_mean, x_stddev, y_stddev, theta)
        + offset
    )


def simulate(
    n: int,
    seed: int,
    *,
    amplitude=(5e4, 7e5),
    offset=3000.0,
    sigma=(0.55, 0.7),
    pos=(2.5, 4.5),
    read_noise=10.0,
    poisson=True,
):
    """Seeded frames: Poisson(model) + Gaussian read noise, float32; truth as (n, 7)."""
    rng = np.random.default_rng(seed)
    amp = rng.uniform(*amplitude, n)
    x = rng.uniform(*pos, n)
    y = rng.uniform(*pos, n)
    sx = rng.uniform(*sigma, n)
    sy = rng.uniform(*sigma, n)
    th = rng.uniform(0.0, np.pi, n)
    truth = np.stack([amp, x, y, sx, sy, th, np.full(n, offset)], axis=1)
    model = gaussian2d(XX, YY, *(t[:, None, None] for t in truth.T))
    frames = rng.poisson(model).astype(np.float64) if poisson else model.copy()
    frames += rng.normal(0.0, read_noise, model.shape)
    return frames.astype(np.float32), truth


def canonical(p: np.ndarray) -> np.ndarray:
    """curve_fit's raw parameters -> x_stddev >= y_stddev > 0, theta in [0, pi)."""
    p = p.copy()
    p[:, 3:5] = np.abs(p[:, 3:5])
    swap = p[:, 3] < p[:, 4]
    p[swap, 3], p[swap, 4] = p[swap, 4], p[swap, 3].copy()
    p[swap, 5] += np.pi / 2
    p[:, 5] = np.mod(p[:, 5], np.pi)
    return p


def quad_form(p: np.ndarray) -> np.ndarray:
    """(a, b, c) of the exponent: identical for every equivalent (sx, sy, theta)."""
    ct, st = np.cos(p[:, 5]), np.sin(p[:, 5])
    ix, iy = 0.5 / p[:, 3] ** 2, 0.5 / p[:, 4] ** 2
    return np.stack([ct**2 * ix + st**2 * iy, ct * st * (ix - iy), st**2 * ix + ct**2 * iy], 1)


def reference_fit(frames, truth, *, sigma=None, valid=None):
    """curve_fit per frame (unweighted unless sigma), started at the truth (a good guess)."""
    n = len(frames)
    params = np.empty((n, 7))
    errors = np.empty((n, 7))
    for i in range(n):
        keep = np.ones(64, bool) if valid is None else valid[i].ravel()
        sig = None if sigma is None else sigma[i].ravel()[keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, pcov = curve_fit(
                astropy_model,
                XY[:, keep],
                frames[i].ravel()[keep].astype(np.float64),
                p0=truth[i],
                sigma=sig,
            )
        params[i] = p
        errors[i] = np.sqrt(np.diag(pcov))
    swap = np.abs(params[:, 3]) < np.abs(params[:, 4])
    errors[swap, 3], errors[swap, 4] = errors[swap, 4], errors[swap, 3].copy()
    return canonical(params), errors


@pytest.fixture(scope="module")
def stack():
    frames, truth = simulate(1200, seed=20240601)
    ref, ref_err = reference_fit(frames, truth)
    fit = fit_gaussian_stack(frames)
    return frames, truth, ref, ref_err, fit


def test_reference_model_is_astropy():
    p = (2.8e5, 3.3, 3.7, 0.8, 0.5, 0.4, 3000.0)
    assert np.allclose(gaussian2d(XX, YY, *p), astropy_model(XY, *p).reshape(8, 8), rtol=1e-13)


def test_agrees_with_curve_fit(stack):
    _, _, ref, _, fit = stack
    assert isinstance(fit, GaussFitResult) and len(fit) == len(ref)
    assert np.all(fit.status == FitStatus.CONVERGED)
    dx = np.abs(fit.x_mean - ref[:, 1])
    dy = np.abs(fit.y_mean - ref[:, 2])
    da = np.abs(fit.amplitude / ref[:, 0] - 1.0)
    good = (dx < 1e-4) & (dy < 1e-4) & (da < 1e-4)
    assert good.mean() >= 0.999, (dx.max(), dy.max(), da.max())
    # the shape agrees too, in a parametrisation-free way
    assert np.allclose(quad_form(fit.params), quad_form(ref), rtol=1e-4, atol=1e-6)
    assert np.allclose(fit.offset, ref[:, 6], rtol=1e-4)
    assert np.all(np.abs(fit.x_stddev - ref[:, 3]) < 1e-4)
    assert np.all(np.abs(fit.y_stddev - ref[:, 4]) < 1e-4)


def test_uncertainties_match_curve_fit_pcov(stack):
    _, _, ref, ref_err, fit = stack
    ratio = fit.errors / ref_err
    for j, name in enumerate(PARAM_NAMES):
        if name == "theta":  # near-round stars make theta (and its error) ill-determined
            round_ = np.abs(ref[:, 3] - ref[:, 4]) < 0.03
            r = ratio[~round_, j]
        else:
            r = ratio[:, j]
        assert np.median(np.abs(r - 1)) < 1e-3, name
        assert np.quantile(np.abs(r - 1), 0.99) < 0.02, name


def test_truth_accuracy_as_good_as_curve_fit(stack):
    _, truth, ref, _, fit = stack
    for j in (1, 2):
        ours = np.median(np.abs(fit.params[:, j] - truth[:, j]))
        theirs = np.median(np.abs(ref[:, j] - truth[:, j]))
        assert ours <= 1.1 * theirs
        assert ours < 0.002
    assert np.median(np.abs(fit.amplitude / truth[:, 0] - 1)) < 0.005


def test_canonical_parameters(stack):
    *_, fit = stack
    assert np.all(fit.x_stddev >= fit.y_stddev)
    assert np.all(fit.y_stddev > 0)
    assert np.all((fit.theta >= 0) & (fit.theta < np.pi))
    assert fit.n_iter.dtype == np.int16 and fit.status.dtype == np.int8


@pytest.mark.parametrize(
    "sx, sy, theta, want_theta",
    [(1.0, 0.5, 0.4, 0.4), (0.5, 1.0, 0.4, 0.4 + np.pi / 2), (0.9, 0.6, -0.3, np.pi - 0.3)],
)
def test_canonicalisation_and_astropy_theta_sign(sx, sy, theta, want_theta):
    """Noiseless frames made by astropy itself: the fit returns the canonical equivalent."""
    p = (1e5, 3.4, 3.6, sx, sy, theta, 2000.0)
    frame = astropy_model(XY, *p).reshape(1, 8, 8)
    fit = fit_gaussian_stack(frame)
    assert fit.status[0] == 0
    assert fit.x_stddev[0] == pytest.approx(max(sx, sy), abs=1e-7)
    assert fit.y_stddev[0] == pytest.approx(min(sx, sy), abs=1e-7)
    assert fit.theta[0] == pytest.approx(want_theta, abs=1e-6)
    assert fit.x_mean[0] == pytest.approx(3.4, abs=1e-8)
    assert fit.y_mean[0] == pytest.approx(3.6, abs=1e-8)


def test_round_star_has_no_theta_trouble():
    frame = astropy_model(XY, 2e5, 3.2, 3.9, 0.6, 0.6, 0.0, 3000.0).reshape(1, 8, 8)
    fit = fit_gaussian_stack(frame)
    assert fit.status[0] == 0
    assert fit.x_stddev[0] == pytest.approx(0.6, abs=1e-7)
    assert fit.y_stddev[0] == pytest.approx(0.6, abs=1e-7)
    assert 0 <= fit.theta[0] < np.pi


def _bad_frames():
    rng = np.random.default_rng(7)
    good, _ = simulate(1, seed=3)
    frames = {}
    frames["all_nan"] = np.full((8, 8), np.nan)
    few = good[0].copy()
    few.ravel()[MIN_PIXELS - 1 :] = np.nan
    frames["too_few_pixels"] = few
    frames["constant"] = np.full((8, 8), 3000.0)
    frames["zeros"] = np.zeros((8, 8))
    frames["pure_noise"] = 3000.0 + rng.normal(0, 50, (8, 8))
    frames["poisson_noise"] = rng.poisson(3000.0, (8, 8)).astype(float)
    flat = astropy_model(XY, 5e5, 3.5, 3.5, 0.9, 0.9, 0.0, 3000.0).reshape(8, 8)
    frames["flat_topped"] = np.minimum(flat, 65535.0)
    frames["inf_everywhere"] = np.full((8, 8), np.inf)
    return frames


@pytest.mark.parametrize(
    "name, allowed",
    [
        ("all_nan", {2}),
        ("too_few_pixels", {2}),
        ("constant", {3}),
        ("zeros", {3}),
        ("pure_noise", {3}),
        ("poisson_noise", {3}),
        ("flat_topped", {4}),
        ("inf_everywhere", {2}),
    ],
)
def test_bad_frames_get_a_status(name, allowed):
    good, _ = simulate(3, seed=11)
    frames = np.stack([good[0], _bad_frames()[name], good[1], good[2]]).astype(np.float32)
    fit = fit_gaussian_stack(frames)
    assert fit.status[1] in allowed
    assert np.all(fit.status[[0, 2, 3]] == 0)  # neighbours (and warm starts) unaffected
    if fit.status[1] == FitStatus.BAD_FRAME:
        assert np.all(np.isnan(fit.params[1]))


def test_many_noise_frames_are_never_converged_garbage():
    rng = np.random.default_rng(5)
    frames = 3000.0 + rng.normal(0, 60, (500, 8, 8))
    fit = fit_gaussian_stack(frames.astype(np.float32))
    assert np.all(fit.status != FitStatus.CONVERGED)
    assert np.mean(fit.status == FitStatus.NO_STAR) > 0.95


def test_converged_frames_are_finite(stack):
    *_, fit = stack
    ok = fit.status == 0
    assert np.all(np.isfinite(fit.params[ok])) and np.all(np.isfinite(fit.errors[ok]))
    assert np.all(np.isfinite(fit.chi2[ok]))


def test_nan_dq_and_mask_exclude_pixels_identically():
    frames, truth = simulate(200, seed=99)
    dirty = frames.copy()
    bad = np.zeros((8, 8), bool)
    bad[0, 7] = bad[6, 1] = bad[7, 7] = bad[3, 0] = True
    dirty[:, bad] = 1e7  # hot pixels
    dq = np.where(bad, 1, 0).astype(np.uint32)
    with_nan = frames.copy()
    with_nan[:, bad] = np.nan
    a = fit_gaussian_stack(dirty, dq=dq)
    b = fit_gaussian_stack(with_nan)
    c = fit_gaussian_stack(dirty, mask=bad)
    d = fit_gaussian_stack(dirty, mask=np.broadcast_to(bad, (200, 8, 8)))
    for other in (b, c, d):
        np.testing.assert_allclose(a.params, other.params, rtol=1e-12, atol=1e-12)
    assert np.all(a.status == 0)
    # the same answer as curve_fit on the 60 remaining pixels ...
    ref, _ = reference_fit(frames[:50], truth[:50], valid=np.broadcast_to(~bad, (50, 8, 8)))
    assert np.all(np.abs(a.x_mean[:50] - ref[:, 1]) < 1e-4)
    assert np.all(np.abs(a.amplitude[:50] / ref[:, 0] - 1) < 1e-4)
    # ... and close to the clean fit: losing background pixels changes little
    clean = fit_gaussian_stack(frames)
    assert np.all(np.abs(a.x_mean - clean.x_mean) < 3 * clean.x_mean_err)
    assert np.all(np.abs(a.amplitude - clean.amplitude) < 3 * clean.amplitude_err)


def test_uncertainties_match_repeated_noise_unweighted():
    """Homoscedastic noise: curve_fit-style scaled pcov is the right covariance."""
    n = 1500
    rng = np.random.default_rng(1)
    p = (2.8e5, 3.37, 3.61, 0.66, 0.58, 0.7, 3000.0)
    model = gaussian2d(XX, YY, *p)
    frames = (model + rng.normal(0, 300.0, (n, 8, 8))).astype(np.float32)
    fit = fit_gaussian_stack(frames)
    assert np.all(fit.status == 0)
    for name in ("amplitude", "x_mean", "y_mean", "x_stddev", "y_stddev", "offset"):
        ratio = np.std(getattr(fit, name)) / np.median(getattr(fit, name + "_err"))
        assert 0.8 < ratio < 1.2, (name, ratio)


def test_uncertainties_match_repeated_noise_weighted_poisson():
    """Poisson noise: ERR-weighted fit with absolute sigma gives the right covariance."""
    n = 1500
    rng = np.random.default_rng(2)
    p = (2.8e5, 3.37, 3.61, 0.66, 0.58, 0.7, 3000.0)
    model = gaussian2d(XX, YY, *p)
    err = np.sqrt(model + 10.0**2)
    frames = (rng.poisson(model, (n, 8, 8)) + rng.normal(0, 10.0, (n, 8, 8))).astype(np.float32)
    fit = fit_gaussian_stack(frames, err=err, weighted=True, absolute_sigma=True)
    scaled = fit_gaussian_stack(frames, err=err, weighted=True)
    assert np.all(fit.status == 0)
    np.testing.assert_allclose(fit.params, scaled.params, rtol=1e-12)
    for name in ("amplitude", "x_mean", "y_mean", "x_stddev", "y_stddev", "offset"):
        ratio = np.std(getattr(fit, name)) / np.median(getattr(fit, name + "_err"))
        assert 0.8 < ratio < 1.2, (name, ratio)
    # chi2 / dof ~ 1 with the true errors, so scaled and absolute errors agree on average
    assert np.median(fit.chi2 / 57) == pytest.approx(1.0, abs=0.1)


def test_weighted_agrees_with_curve_fit_sigma():
    frames, truth = simulate(100, seed=8)
    err = np.sqrt(np.maximum(frames, 1.0) + 100.0)
    fit = fit_gaussian_stack(frames, err=err, weighted=True)
    ref, ref_err = reference_fit(frames, truth, sigma=err)
    assert np.all(np.abs(fit.x_mean - ref[:, 1]) < 1e-4)
    assert np.all(np.abs(fit.amplitude / ref[:, 0] - 1) < 1e-4)
    assert np.median(np.abs(fit.x_mean_err / ref_err[:, 1] - 1)) < 1e-3


def test_warm_start_initial_threads_and_dtype_give_the_same_answers(stack):
    frames, truth, *_, fit = stack
    variants = [
        fit_gaussian_stack(frames, warm_start=False),
        fit_gaussian_stack(frames, initial=truth),
        fit_gaussian_stack(frames, n_threads=1),
        fit_gaussian_stack(frames.astype(np.float64)),
    ]
    for v in variants:
        assert np.all(v.status == 0)
        assert np.max(np.abs(v.x_mean - fit.x_mean)) < 1e-5
        assert np.max(np.abs(v.amplitude / fit.amplitude - 1)) < 1e-5
    # the result never depends on the number of threads
    np.testing.assert_array_equal(variants[2].params, fit.params)


def test_warm_start_survives_jumps():
    """Consecutive frames far apart: a warm start must not land in a wrong minimum."""
    frames, truth = simulate(400, seed=12, pos=(1.5, 5.5))
    warm = fit_gaussian_stack(frames, warm_start=True)
    cold = fit_gaussian_stack(frames, warm_start=False)
    assert np.all(warm.status == 0)
    assert np.max(np.abs(warm.x_mean - cold.x_mean)) < 1e-5


def test_to_dict_and_arrow(stack):
    *_, fit = stack
    cols = fit.to_dict()
    assert list(cols) == [
        *PARAM_NAMES,
        *(k + "_err" for k in PARAM_NAMES),
        "chi2",
        "chi2_red",
        "n_iter",
        "status",
    ]
    table = fit.to_arrow()
    assert table.num_rows == len(fit)
    assert str(table.schema.field("status").type) == "int8"
    assert str(table.schema.field("n_iter").type) == "int16"
    assert str(table.schema.field("x_mean").type) == "double"


def test_empty_and_single_frame_inputs():
    assert len(fit_gaussian_stack(np.empty((0, 8, 8), np.float32))) == 0
    frames, _ = simulate(1, seed=4)
    assert fit_gaussian_stack(frames[0]).status.shape == (1,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weighted": True},
        {"mask": np.zeros((7, 8), bool)},
        {"dq": np.zeros((3, 8, 8), np.uint32)},
        {"max_iter": 0},
        {"xtol_px": 0.0},
        {"initial": np.zeros((2, 7))},
        {"n_threads": 0},
    ],
)
def test_invalid_arguments(kwargs):
    frames, _ = simulate(4, seed=4)
    with pytest.raises(ValueError):
        fit_gaussian_stack(frames, **kwargs)


def test_wrong_frame_shape():
    with pytest.raises(ValueError):
        fit_gaussian_stack(np.zeros((3, 8, 7), np.float32))


# ------------------------------------------------------------------------------------ quick fit


def test_quick_fit_is_unbiased_where_edge_moments_are_not():
    frames, truth = simulate(3000, seed=21, pos=(2.0, 5.0))
    q = quick_fit_stack(frames)
    err_x = q.x_mean - truth[:, 1]
    err_y = q.y_mean - truth[:, 2]
    assert np.median(np.abs(err_x)) < 0.05 and np.median(np.abs(err_y)) < 0.05
    assert abs(np.median(err_x)) < 0.01 and abs(np.median(err_y)) < 0.01
    # moments of row 0 / column 0 alone (background and far wings) say little about the star
    f = frames.astype(np.float64) - np.median(frames, axis=(1, 2), keepdims=True)
    row0, col0 = f[:, 0, :], f[:, :, 0]
    edge_x = (row0 * np.arange(8)).sum(1) / row0.sum(1)
    edge_y = (col0 * np.arange(8)).sum(1) / col0.sum(1)
    assert np.median(np.abs(edge_x - truth[:, 1])) > 0.2
    assert np.median(np.abs(edge_y - truth[:, 2])) > 0.2
    # widths and fluxes are sensible
    s_true = np.sqrt(truth[:, 3] * truth[:, 4])
    assert np.median(np.abs(np.sqrt(q.x_stddev * q.y_stddev) / s_true - 1)) < 0.1
    flux_true = 2 * np.pi * truth[:, 0] * truth[:, 3] * truth[:, 4]
    assert np.median(np.abs(q.flux / flux_true - 1)) < 0.01


def test_quick_fit_handles_nan_mask_and_empty_frames():
    frames, truth = simulate(50, seed=22)
    frames[3] = np.nan
    frames[4, 0, :] = np.nan
    mask = np.zeros((8, 8), bool)
    mask[7, :] = True
    q = quick_fit_stack(frames, mask=mask)
    assert np.isnan(q.x_mean[3]) and np.isnan(q.flux[3])
    ok = np.arange(50) != 3
    assert np.all(np.isfinite(q.x_mean[ok]))
    assert np.median(np.abs(q.x_mean[ok] - truth[ok, 1])) < 0.05
    assert list(q.to_dict()) == ["x_mean", "y_mean", "x_stddev", "y_stddev", "flux"]
    assert q.to_arrow().num_rows == 50
