"""Per-file pixel noise model ``var = a + b * max(signal, 0)`` for weighted fits (pure maths).

``a`` is the read-noise (and dark) variance and ``b`` the Poisson term (1 / (gain x integration
time)), both in the frame's units: ``a`` [(DN/s)^2], ``b`` [DN/s]. Two columns per file instead of
a second 64-float array per frame. The model is taken, in this order of preference, from

- ``err``: the cal file's ERR extension, a robust line through the (max(SCI, 0), ERR^2) pairs of
  the usable pixels;
- ``frames``: the frames themselves: each pixel's scatter about an unweighted Gaussian fit,
  against its model value, corrected for the fit's leverage (when ERR is missing, zero or NaN);
- ``none``: neither gave a model (too few frames or pixels); the fit is then unweighted and its
  errors are relative (scaled by chi2/dof).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: ``files.noise_source`` values, in order of preference.
NOISE_SOURCES = ("err", "frames", "none")
#: Fewer usable (SCI, ERR) pairs than this give no ``err`` model.
MIN_ERR_PAIRS = 64
#: Fewer frames than this give no ``frames`` model (each pixel's variance from its differences).
MIN_FRAMES = 32
#: Frames (from the start of a file) the ``frames`` model is estimated on: enough, and cheap.
SAMPLE_FRAMES = 2048
#: Frames the ``err`` model is estimated on (32k exact pairs: ~10 ms per file at ingest).
SAMPLE_FRAMES_ERR = 512
#: The read-noise term is kept at least this share of the smallest modelled variance, so every
#: pixel keeps a finite weight.
_A_FLOOR = 1e-6


@dataclass(frozen=True)
class NoiseModel:
    """``var(pixel) = a + b * max(signal, 0)`` in frame units squared, and where it came from."""

    a: float
    b: float
    source: str

    def variance(self, signal: np.ndarray) -> np.ndarray:
        """Model variance at ``signal`` (frame units squared)."""
        return self.a + self.b * np.maximum(signal, 0.0)

    @property
    def params(self) -> tuple[float, float] | None:
        """``(a, b)`` for :func:`~fgsarchive.fit.model.fit_gaussian_stack`; None for ``none``."""
        return None if self.source == "none" else (self.a, self.b)


NO_MODEL = NoiseModel(float("nan"), float("nan"), "none")


def _robust_line(x: np.ndarray, y: np.ndarray, *, upper_clip: float, lower_clip: float):
    """Fit ``y = a + b x`` minimising relative residuals, clipping outliers; None if degenerate.

    Iterated: weights 1 / fitted y^2 (relative residuals, as the variance spans decades), points
    whose relative residual is beyond ``upper_clip`` / ``lower_clip`` robust sigmas dropped.
    """
    keep = np.isfinite(x) & np.isfinite(y) & (y > 0)
    if keep.sum() < 8:
        return None
    scale = y.copy()
    a = b = np.nan
    for _ in range(6):
        xs, ys, w = x[keep], y[keep], 1.0 / scale[keep] ** 2
        sw, sx, sy = w.sum(), (w * xs).sum(), (w * ys).sum()
        sxx, sxy = (w * xs * xs).sum(), (w * xs * ys).sum()
        det = sw * sxx - sx * sx
        if det > 1e-12 * sw * sxx:
            b = (sw * sxy - sx * sy) / det
        else:  # no spread in signal: a constant variance
            b = 0.0
        b = max(b, 0.0)
        a = (sy - b * sx) / sw
        fitted = a + b * np.maximum(x, 0.0)
        if not np.all(np.isfinite(fitted)) or fitted.max() <= 0:
            return None
        floor = _A_FLOOR * fitted.max()
        a = max(a, floor)
        fitted = np.maximum(a + b * np.maximum(x, 0.0), floor)
        rel = (y - fitted) / fitted
        spread = 1.4826 * np.median(np.abs(rel[keep] - np.median(rel[keep])))
        spread = max(spread, 1e-6)
        new = np.isfinite(x) & np.isfinite(y) & (y > 0)
        new &= (rel < upper_clip * spread) & (rel > -lower_clip * spread)
        scale = fitted
        if new.sum() < 8 or np.array_equal(new, keep):
            break
        keep = new
    if not (np.isfinite(a) and np.isfinite(b) and a > 0):
        return None
    return float(a), float(b)


def _usable(pixels: np.ndarray, dq: np.ndarray | None) -> np.ndarray:
    """(64,) bool: pixels not flagged in DQ."""
    if dq is None:
        return np.ones(64, dtype=bool)
    return np.asarray(dq).reshape(64) == 0


def noise_from_err(
    sci: np.ndarray, err: np.ndarray | None, dq: np.ndarray | None = None
) -> NoiseModel | None:
    """The model from the cal file's (SCI, ERR) pairs, ``(m, 64)`` or ``(m, 8, 8)``; None if unusable.

    ERR is a function of the signal (the pipeline's, or the simulator's noiseless model), SCI
    is that signal plus noise: so SCI is regressed on ERR^2 (``sci = (err^2 - a) / b``, weights
    1 / err^2, pixels beyond 5 sigma - cosmic rays - dropped), which the noise in SCI does not
    bias. A constant ERR gives ``b = 0``. ERR missing, all zero, all NaN or of another shape
    gives None (then try :func:`noise_from_frames`).
    """
    if err is None:
        return None
    sci = np.asarray(sci, dtype=np.float64).reshape(-1, 64)
    err = np.asarray(err, dtype=np.float64)
    if err.size != sci.size:
        return None
    err = err.reshape(-1, 64)
    ok = np.isfinite(sci) & np.isfinite(err) & (err > 0) & _usable(sci, dq)[None, :]
    if ok.sum() < MIN_ERR_PAIRS:
        return None
    var, y = err[ok] ** 2, sci[ok]
    keep = np.ones(var.size, dtype=bool)
    for _ in range(5):
        x, yy, w = var[keep], y[keep], 1.0 / var[keep]
        sw, sx, sy = w.sum(), (w * x).sum(), (w * yy).sum()
        sxx, sxy = (w * x * x).sum(), (w * x * yy).sum()
        det = sw * sxx - sx * sx
        if not det > 1e-9 * sx * sx:  # ERR (nearly) constant: read noise only
            return NoiseModel(float(np.median(var)), 0.0, "err")
        slope = (sw * sxy - sx * sy) / det  # 1 / b
        icpt = (sy - slope * sx) / sw  # -a / b
        new = np.abs(y - (icpt + slope * var)) < 5.0 * np.sqrt(var)
        if new.sum() < MIN_ERR_PAIRS or np.array_equal(new, keep):
            break
        keep = new
    if not (np.isfinite(slope) and slope > 0):
        return NoiseModel(float(np.median(var)), 0.0, "err")
    b = 1.0 / slope
    a = max(-icpt * b, _A_FLOOR * float(var.max()))
    return NoiseModel(float(a), float(b), "err")


def _temporal(pixels: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (median, robust variance of frame-to-frame differences / 2)."""
    px = pixels[:, usable]
    diffs = np.diff(px, axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN pixel gives NaN, dropped
        mean = np.nanmedian(px, axis=0)
        med = np.nanmedian(diffs, axis=0)
        mad = np.nanmedian(np.abs(diffs - med), axis=0)
    return mean, (1.4826 * mad) ** 2 / 2.0


def _hat_diagonal(params: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """(n_usable, n_usable) hat matrix of an unweighted fit at ``params`` (numeric Jacobian)."""
    from .model import gaussian2d

    ys, xs = np.divmod(np.arange(64)[usable], 8)
    steps = np.array(
        [1e-4 * abs(params[0]), 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-4 * abs(params[6]) + 1e-3]
    )
    jac = np.empty((usable.sum(), 7))
    for j in range(7):
        hi, lo = params.copy(), params.copy()
        hi[j] += steps[j]
        lo[j] -= steps[j]
        jac[:, j] = (gaussian2d(xs, ys, *hi) - gaussian2d(xs, ys, *lo)) / (2 * steps[j])
    q, _ = np.linalg.qr(jac)
    return q @ q.T


def noise_from_frames(pixels: np.ndarray, dq: np.ndarray | None = None) -> NoiseModel | None:
    """The model from the frames alone (``(n, 64)`` or ``(n, 8, 8)``, time order); None if too few.

    The frames are fitted (unweighted) and each pixel's residuals give its variance (robust:
    1.4826 MAD, around its own median so a PSF that is not a Gaussian does not count), set
    against its mean model value. The fit follows the star, so pointing jitter does not count
    either. A residual scatters less than the pixel by the fit's leverage; with the hat matrix
    ``H`` (at the median fit), ``E[r_k^2] = a (1 - h_kk) + b (m_k (1 - 2 h_kk) + sum_j H_kj^2 m_j)``,
    linear in (a, b), is what is fitted. Without a star in the frames (no converged fit), the
    frame-to-frame variance of each pixel against its median is used instead.
    """
    from .model import fit_gaussian_stack, gaussian2d

    pixels = np.asarray(pixels, dtype=np.float32).reshape(-1, 64)
    if len(pixels) < MIN_FRAMES:
        return None
    usable = _usable(pixels, dq) & (np.isfinite(pixels).mean(axis=0) > 0.5)
    if usable.sum() < 16:
        return None
    sample = pixels[:4096]
    fit = fit_gaussian_stack(sample.reshape(-1, 8, 8), mask=~usable.reshape(8, 8), n_threads=1)
    ok = fit.status == 0
    if ok.sum() < MIN_FRAMES:
        mean, var = _temporal(pixels, usable)
        line = _robust_line(np.maximum(mean, 0.0), var, upper_clip=3.0, lower_clip=5.0)
        return None if line is None else NoiseModel(line[0], line[1], "frames")
    params = fit.params[ok]
    ys, xs = np.divmod(np.arange(64)[usable], 8)
    model = gaussian2d(xs[None, :], ys[None, :], *(params[:, j, None] for j in range(7)))
    resid = sample[ok][:, usable] - model
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN pixel gives NaN, dropped
        med = np.nanmedian(resid, axis=0)
        var = (1.4826 * np.nanmedian(np.abs(resid - med), axis=0)) ** 2
    hat = _hat_diagonal(np.median(params, axis=0), usable)
    h = np.diag(hat)
    m = np.maximum(np.median(model, axis=0), 0.0)
    u = 1.0 - h
    v = m * (1.0 - 2.0 * h) + (hat**2) @ m
    w = 1.0 / np.maximum(var, 1e-30)
    design = np.stack([u, v], axis=1) * w[:, None]
    (a, b), *_ = np.linalg.lstsq(design, var * w, rcond=None)
    b = max(float(b), 0.0)
    if not b > 0:
        a = float(np.sum(var * u * w**2) / np.sum(u * u * w**2))
    floor = _A_FLOOR * float(np.max(a + b * m))
    a = max(float(a), floor)
    if not (np.isfinite(a) and np.isfinite(b) and a > 0):
        return None
    return NoiseModel(a, b, "frames")


def file_noise_model(
    sci: np.ndarray, err: np.ndarray | None, dq: np.ndarray | None = None
) -> NoiseModel:
    """The best model a file's first frames give: from ERR, else from the frames, else ``none``."""
    sci = np.asarray(sci)[:SAMPLE_FRAMES]
    if err is not None:
        err = np.asarray(err)[:SAMPLE_FRAMES_ERR]
    from_err = noise_from_err(sci[:SAMPLE_FRAMES_ERR], err, dq)
    return from_err or noise_from_frames(sci, dq) or NO_MODEL
