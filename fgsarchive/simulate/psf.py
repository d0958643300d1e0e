"""The PSF model (astropy ``Gaussian2D`` + constant at pixel centres) and the pixel noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: FGS plate scale [arcsec / pixel].
PIXEL_SCALE_ARCSEC = 0.069


def _abc(sx: np.ndarray, sy: np.ndarray, th: np.ndarray) -> tuple[np.ndarray, ...]:
    """Coefficients of astropy ``Gaussian2D``: exponent = a dx^2 + b dx dy + c dy^2."""
    c2, s2, s2t = np.cos(th) ** 2, np.sin(th) ** 2, np.sin(2.0 * th)
    xs2, ys2 = sx * sx, sy * sy
    a = 0.5 * (c2 / xs2 + s2 / ys2)
    b = 0.5 * (s2t / xs2 - s2t / ys2)
    c = 0.5 * (s2 / xs2 + c2 / ys2)
    return a, b, c


def gaussian_frames(
    amplitude: np.ndarray,
    x_mean: np.ndarray,
    y_mean: np.ndarray,
    x_stddev: np.ndarray,
    y_stddev: np.ndarray,
    theta: np.ndarray,
    offset: np.ndarray,
    shape: tuple[int, int] = (8, 8),
    dtype: Any = np.float64,
) -> np.ndarray:
    """Noiseless frames ``(n, ny, nx)``: astropy ``Gaussian2D`` + constant at pixel centres.

    All parameters are 1-D arrays of length ``n`` (or scalars). ``frame[y, x]``, pixel centres
    at integer coordinates (CONVENTIONS.md).
    """
    p = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (amplitude, x_mean, y_mean)]
    q = [
        np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (x_stddev, y_stddev, theta, offset)
    ]
    amp, x0, y0 = np.broadcast_arrays(*p)
    sx, sy, th, off = (np.broadcast_to(v, amp.shape) for v in q)
    a, b, c = _abc(sx, sy, th)
    ny, nx = shape
    xs = np.arange(nx, dtype=dtype)
    ys = np.arange(ny, dtype=dtype)
    dx = (xs[None, None, :] - x0[:, None, None].astype(dtype)).astype(dtype)
    dy = (ys[None, :, None] - y0[:, None, None].astype(dtype)).astype(dtype)
    q2 = (b[:, None, None].astype(dtype) * dy) * dx
    q2 += a[:, None, None].astype(dtype) * dx * dx
    q2 += c[:, None, None].astype(dtype) * dy * dy
    np.negative(q2, out=q2)
    np.exp(q2, out=q2)
    q2 *= amp[:, None, None].astype(dtype)
    q2 += off[:, None, None].astype(dtype)
    return q2


@dataclass(frozen=True)
class _Noise:
    model: Literal["gaussian", "poisson", "none"]
    gain: float  # e-/DN
    exposure_s: float  # effective integration time per frame [s]
    read_noise_e: float

    @property
    def gt(self) -> float:
        return self.gain * self.exposure_s


def _render_fg_chunk(
    sci: np.ndarray,
    err: np.ndarray,
    i0: int,
    i1: int,
    par: dict[str, np.ndarray],
    noise: _Noise,
    seed_seq: np.random.SeedSequence,
    cr_rate: float,
    nan_rate: float,
    nan_frame_rate: float,
    cr_pixel: np.ndarray,
    n_nan: np.ndarray,
) -> None:
    """Render frames ``[i0, i1)`` of a file into ``sci``/``err`` (thread-safe, own RNG)."""
    rng = np.random.default_rng(seed_seq)
    sl = slice(i0, i1)
    n = i1 - i0
    m = gaussian_frames(
        par["amplitude"][sl],
        par["x_mean"][sl],
        par["y_mean"][sl],
        par["x_stddev"][sl],
        par["y_stddev"][sl],
        par["theta"][sl],
        par["offset"][sl],
        dtype=np.float32,
    )
    gt = noise.gt
    k2 = np.float32((noise.read_noise_e / gt) ** 2)
    var = m * np.float32(1.0 / gt)
    var += k2
    np.sqrt(var, out=var)  # var now holds sigma [DN/s]
    if noise.model == "gaussian":
        z = rng.standard_normal(m.shape, dtype=np.float32)
        z *= var
        z += m
        out = z
    elif noise.model == "poisson":
        lam = np.clip(m.astype(np.float64) * gt, 0.0, None)
        e = rng.poisson(lam).astype(np.float32)
        e += rng.standard_normal(m.shape, dtype=np.float32) * np.float32(noise.read_noise_e)
        e *= np.float32(1.0 / gt)
        out = e
    else:
        out = m
    # cosmic rays: one hot pixel per hit
    k = int(rng.binomial(n, cr_rate)) if cr_rate > 0 else 0
    if k:
        f = rng.integers(0, n, k)
        pix = rng.integers(0, 64, k)
        val = rng.uniform(2.0e4, 4.0e5, k).astype(np.float32)
        np.add.at(out.reshape(n, 64), (f, pix), val)
        cr_pixel[i0 + f] = pix
    # isolated NaN pixels and (rarely) fully NaN frames
    k = int(rng.binomial(n, nan_rate)) if nan_rate > 0 else 0
    if k:
        f = rng.integers(0, n, k)
        pix = rng.integers(0, 64, k)
        out.reshape(n, 64)[f, pix] = np.nan
        var.reshape(n, 64)[f, pix] = np.nan
    k = int(rng.binomial(n, nan_frame_rate)) if nan_frame_rate > 0 else 0
    if k:
        f = rng.integers(0, n, k)
        out[f] = np.nan
        var[f] = np.nan
    if nan_rate > 0 or nan_frame_rate > 0:
        n_nan[sl] = np.isnan(out.reshape(n, 64)).sum(axis=1)
    sci[sl] = out
    err[sl] = var
