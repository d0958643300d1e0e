"""Gaussian fits and quick moments of 8x8 guide-star frames (pure maths, no I/O).

Model (astropy ``Gaussian2D`` plus a constant; docs/CONVENTIONS.md, docs/fitter.md)::

    f(x, y) = offset + amplitude * exp(-(a dx^2 + b_astropy dx dy + c dy^2)),  dx = x - x_mean, ...
    a = cos^2 t / (2 sx^2) + sin^2 t / (2 sy^2)
    b_astropy = sin(2t) / (2 sx^2) - sin(2t) / (2 sy^2)
    c = sin^2 t / (2 sx^2) + cos^2 t / (2 sy^2)

evaluated at pixel centres ``x, y = 0..7`` of ``frame[y, x]``.

Public API
----------
- :func:`fit_gaussian_stack` -- per-frame Levenberg-Marquardt least squares (numba, threads).
- :func:`quick_fit_stack` -- background-subtracted moments of the full 8x8 marginals.
- :class:`GaussFitResult`, :class:`QuickFitResult`, :class:`FitStatus`, :func:`gaussian2d`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

import numpy as np
from numba import njit

from fgsarchive.choices import FIT_PARAMETERS
from fgsarchive.fit.photometry import (
    DEFAULT_EXCLUDE_RADIUS,
    _as_stack,
    _background_one,
    _run_chunks,
)

__all__ = [
    "MIN_PIXELS",
    "MIN_SNR",
    "PARAM_NAMES",
    "FitStatus",
    "GaussFitResult",
    "QuickFitResult",
    "fit_gaussian_stack",
    "gaussian2d",
    "quick_fit_stack",
]

#: The 7 fitted parameters, in the order of every parameter array here (listed in choices.py).
PARAM_NAMES: tuple[str, ...] = FIT_PARAMETERS


class FitStatus(IntEnum):
    """Per-frame ``status`` codes of the ``fits`` table."""

    CONVERGED = 0  #: position step < xtol_px (and relative amplitude step < xtol_px)
    MAX_ITER = 1  #: not converged within max_iter steps
    BAD_FRAME = 2  #: fewer than MIN_PIXELS usable pixels (all-NaN, masked, DQ-flagged)
    NO_STAR = 3  #: constant frame, or amplitude below MIN_SNR times its noise
    DIVERGED = 4  #: left the sane region, stuck, degenerate (J^T J singular), or flat-topped


#: Frames with fewer usable (finite, unmasked, DQ == 0) pixels are BAD_FRAME.
MIN_PIXELS = 16
#: Amplitude significance below which a frame is NO_STAR (peak vs. background noise before the
#: fit; amplitude / amplitude_err after it).
MIN_SNR = 5.0
#: This many or more usable pixels exactly equal to the maximum mark a flat top (saturation).
FLAT_TOP_PIXELS = 3
#: The sane region: outside it a fit is DIVERGED (px).
SIGMA_MIN, SIGMA_MAX = 0.05, 10.0
POS_MIN, POS_MAX = -1.0, 8.0

_CHUNK = 256  # frames per work item; warm starts never cross a chunk boundary
_LAM0 = 1e-3  # initial Marquardt damping (relative to diag(J^T J))
_LAM_MAX = 1e16
#: With the noise model, weights taken at the previous frame's model are kept when the pixels'
#: variances at the solution are within this (rms, relative) of those weighted with; else one more
#: pass reweights. 0.02 px jitter changes them by ~5 % rms (up to 15 % in a steep wing pixel), and
#: the pulls are the same with and without the extra pass there (docs/fitter.md).
_REWEIGHT_TOL = 0.10
# Reassociation lets LLVM vectorise the 64-pixel sums; no 'nnan'/'ninf' (NaN checks matter).
_FM = {"nsz", "reassoc", "contract", "arcp"}

_XS = np.array([k % 8 for k in range(64)], dtype=np.float64)
_YS = np.array([k // 8 for k in range(64)], dtype=np.float64)
_CORNERS = np.array(
    [[0, 1, 8, 9], [6, 7, 14, 15], [48, 49, 56, 57], [54, 55, 62, 63]], dtype=np.int64
)


def gaussian2d(
    x: np.ndarray,
    y: np.ndarray,
    amplitude: float,
    x_mean: float,
    y_mean: float,
    x_stddev: float,
    y_stddev: float,
    theta: float,
    offset: float = 0.0,
) -> np.ndarray:
    """The model in plain numpy (astropy ``Gaussian2D.evaluate`` + ``offset``); a reference."""
    ct2 = np.cos(theta) ** 2
    st2 = np.sin(theta) ** 2
    s2t = np.sin(2.0 * theta)
    a = 0.5 * (ct2 / x_stddev**2 + st2 / y_stddev**2)
    b = 0.5 * (s2t / x_stddev**2 - s2t / y_stddev**2)
    c = 0.5 * (st2 / x_stddev**2 + ct2 / y_stddev**2)
    dx = x - x_mean
    dy = y - y_mean
    return offset + amplitude * np.exp(-(a * dx * dx + b * dx * dy + c * dy * dy))


# --------------------------------------------------------------------------------------------
# numba kernels. Internally the fit uses q = (A, x0, y0, a, b, c, offset) with the exponent
# a dx^2 + 2 b dx dy + c dy^2 (so b = b_astropy / 2): the quadratic form is well defined for
# round stars, where theta is not, and the Jacobian is cheap. The canonical (sx, sy, theta)
# and their errors are derived at the end (the covariance transforms exactly).
# --------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _lm_pass(d, s, q, gb, H, g, base, pstep):
    """Model, weighted residuals, J^T J (lower triangle), J^T r and chi2 at ``q``.

    ``d``: 64 data values (0 where unusable), ``s``: sqrt weights (0 where unusable).
    The 64 exponentials come from 6 exp() calls: the exponent is a quadratic polynomial in the
    integer pixel coordinates, so exp(-Q) is a product of powers of 6 numbers, built up by
    recurrences along rows and columns. When the exponent range could overflow those partial
    products, every pixel gets its own exp().
    """
    A = q[0]
    x0 = q[1]
    y0 = q[2]
    a = q[3]
    b = q[4]
    c = q[5]
    off = q[6]
    # exp(-Q(x, y)) = e0 * eu^x * ev^y * ea^(x^2) * ez^(x y) * ec^(y^2) on the integer grid
    lx = -2.0 * (a * x0 + b * y0)
    ly = -2.0 * (b * x0 + c * y0)
    q00 = a * x0 * x0 + 2.0 * b * x0 * y0 + c * y0 * y0
    if 7.0 * abs(lx) + 49.0 * a + 98.0 * abs(b) < 650.0 and q00 + 7.0 * abs(ly) + 49.0 * c < 650.0:
        ea = math.exp(-a)
        ec = math.exp(-c)
        ez = math.exp(-2.0 * b)
        eu = math.exp(-lx)
        ev = math.exp(-ly)
        rowf = math.exp(-q00)
        sq = 1.0  # ea^(x^2)
        st = ea  # ea^(2x + 1)
        ea2 = ea * ea
        ux = 1.0
        zx = 1.0
        for i in range(8):
            base[i] = ux * sq
            pstep[i] = zx
            sq *= st
            st *= ea2
            ux *= eu
            zx *= ez
        sr = ec * ev  # rowf(y + 1) / rowf(y) = ev * ec^(2y + 1)
        ec2 = ec * ec
        for yy in range(8):
            for xx in range(8):
                gb[8 * yy + xx] = base[xx] * rowf
                base[xx] *= pstep[xx]
            rowf *= sr
            sr *= ec2
    else:
        for k in range(64):
            dx = _XS[k] - x0
            dy = _YS[k] - y0
            qq = a * dx * dx + 2.0 * b * dx * dy + c * dy * dy
            gb[k] = math.exp(-qq) if qq < 700.0 else 0.0
    h00 = h10 = h11 = h20 = h21 = h22 = h30 = h31 = h32 = h33 = h40 = h41 = h42 = h43 = 0.0
    h44 = h50 = h51 = h52 = h53 = h54 = h55 = h60 = h61 = h62 = h63 = h64 = h65 = h66 = 0.0
    g0 = g1 = g2 = g3 = g4 = g5 = g6 = chi2 = 0.0
    for k in range(64):
        sk = s[k]
        j0 = gb[k] * sk
        gg = A * j0
        dx = _XS[k] - x0
        dy = _YS[k] - y0
        rk = (d[k] - off) * sk - gg
        tg = gg + gg
        j1 = tg * (a * dx + b * dy)
        j2 = tg * (b * dx + c * dy)
        gdx = gg * dx
        j3 = -gdx * dx
        j4 = -2.0 * gdx * dy
        j5 = -gg * dy * dy
        j6 = sk
        h00 += j0 * j0
        h10 += j1 * j0
        h11 += j1 * j1
        h20 += j2 * j0
        h21 += j2 * j1
        h22 += j2 * j2
        h30 += j3 * j0
        h31 += j3 * j1
        h32 += j3 * j2
        h33 += j3 * j3
        h40 += j4 * j0
        h41 += j4 * j1
        h42 += j4 * j2
        h43 += j4 * j3
        h44 += j4 * j4
        h50 += j5 * j0
        h51 += j5 * j1
        h52 += j5 * j2
        h53 += j5 * j3
        h54 += j5 * j4
        h55 += j5 * j5
        h60 += j6 * j0
        h61 += j6 * j1
        h62 += j6 * j2
        h63 += j6 * j3
        h64 += j6 * j4
        h65 += j6 * j5
        h66 += j6 * j6
        g0 += j0 * rk
        g1 += j1 * rk
        g2 += j2 * rk
        g3 += j3 * rk
        g4 += j4 * rk
        g5 += j5 * rk
        g6 += j6 * rk
        chi2 += rk * rk
    H[0, 0] = h00
    H[1, 0] = h10
    H[1, 1] = h11
    H[2, 0] = h20
    H[2, 1] = h21
    H[2, 2] = h22
    H[3, 0] = h30
    H[3, 1] = h31
    H[3, 2] = h32
    H[3, 3] = h33
    H[4, 0] = h40
    H[4, 1] = h41
    H[4, 2] = h42
    H[4, 3] = h43
    H[4, 4] = h44
    H[5, 0] = h50
    H[5, 1] = h51
    H[5, 2] = h52
    H[5, 3] = h53
    H[5, 4] = h54
    H[5, 5] = h55
    H[6, 0] = h60
    H[6, 1] = h61
    H[6, 2] = h62
    H[6, 3] = h63
    H[6, 4] = h64
    H[6, 5] = h65
    H[6, 6] = h66
    g[0] = g0
    g[1] = g1
    g[2] = g2
    g[3] = g3
    g[4] = g4
    g[5] = g5
    g[6] = g6
    return chi2


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _damped_solve7(H, g, lam, dl):
    """Solve (H + lam diag(H)) dl = g by a written-out Cholesky (lower triangle of H).

    Returns False when the damped matrix is not numerically positive definite."""
    m00 = H[0, 0] + lam * max(H[0, 0], 1e-300)
    m10 = H[1, 0]
    m11 = H[1, 1] + lam * max(H[1, 1], 1e-300)
    m20 = H[2, 0]
    m21 = H[2, 1]
    m22 = H[2, 2] + lam * max(H[2, 2], 1e-300)
    m30 = H[3, 0]
    m31 = H[3, 1]
    m32 = H[3, 2]
    m33 = H[3, 3] + lam * max(H[3, 3], 1e-300)
    m40 = H[4, 0]
    m41 = H[4, 1]
    m42 = H[4, 2]
    m43 = H[4, 3]
    m44 = H[4, 4] + lam * max(H[4, 4], 1e-300)
    m50 = H[5, 0]
    m51 = H[5, 1]
    m52 = H[5, 2]
    m53 = H[5, 3]
    m54 = H[5, 4]
    m55 = H[5, 5] + lam * max(H[5, 5], 1e-300)
    m60 = H[6, 0]
    m61 = H[6, 1]
    m62 = H[6, 2]
    m63 = H[6, 3]
    m64 = H[6, 4]
    m65 = H[6, 5]
    m66 = H[6, 6] + lam * max(H[6, 6], 1e-300)
    t = m00
    if not (t > 0.0 and t < np.inf):
        return False
    l00 = math.sqrt(t)
    i0 = 1.0 / l00
    l10 = (m10) * i0
    l20 = (m20) * i0
    l30 = (m30) * i0
    l40 = (m40) * i0
    l50 = (m50) * i0
    l60 = (m60) * i0
    t = m11 - l10 * l10
    if not (t > 0.0 and t < np.inf):
        return False
    l11 = math.sqrt(t)
    i1 = 1.0 / l11
    l21 = (m21 - l20 * l10) * i1
    l31 = (m31 - l30 * l10) * i1
    l41 = (m41 - l40 * l10) * i1
    l51 = (m51 - l50 * l10) * i1
    l61 = (m61 - l60 * l10) * i1
    t = m22 - l20 * l20 - l21 * l21
    if not (t > 0.0 and t < np.inf):
        return False
    l22 = math.sqrt(t)
    i2 = 1.0 / l22
    l32 = (m32 - l30 * l20 - l31 * l21) * i2
    l42 = (m42 - l40 * l20 - l41 * l21) * i2
    l52 = (m52 - l50 * l20 - l51 * l21) * i2
    l62 = (m62 - l60 * l20 - l61 * l21) * i2
    t = m33 - l30 * l30 - l31 * l31 - l32 * l32
    if not (t > 0.0 and t < np.inf):
        return False
    l33 = math.sqrt(t)
    i3 = 1.0 / l33
    l43 = (m43 - l40 * l30 - l41 * l31 - l42 * l32) * i3
    l53 = (m53 - l50 * l30 - l51 * l31 - l52 * l32) * i3
    l63 = (m63 - l60 * l30 - l61 * l31 - l62 * l32) * i3
    t = m44 - l40 * l40 - l41 * l41 - l42 * l42 - l43 * l43
    if not (t > 0.0 and t < np.inf):
        return False
    l44 = math.sqrt(t)
    i4 = 1.0 / l44
    l54 = (m54 - l50 * l40 - l51 * l41 - l52 * l42 - l53 * l43) * i4
    l64 = (m64 - l60 * l40 - l61 * l41 - l62 * l42 - l63 * l43) * i4
    t = m55 - l50 * l50 - l51 * l51 - l52 * l52 - l53 * l53 - l54 * l54
    if not (t > 0.0 and t < np.inf):
        return False
    l55 = math.sqrt(t)
    i5 = 1.0 / l55
    l65 = (m65 - l60 * l50 - l61 * l51 - l62 * l52 - l63 * l53 - l64 * l54) * i5
    t = m66 - l60 * l60 - l61 * l61 - l62 * l62 - l63 * l63 - l64 * l64 - l65 * l65
    if not (t > 0.0 and t < np.inf):
        return False
    l66 = math.sqrt(t)
    i6 = 1.0 / l66
    z0 = (g[0]) * i0
    z1 = (g[1] - l10 * z0) * i1
    z2 = (g[2] - l20 * z0 - l21 * z1) * i2
    z3 = (g[3] - l30 * z0 - l31 * z1 - l32 * z2) * i3
    z4 = (g[4] - l40 * z0 - l41 * z1 - l42 * z2 - l43 * z3) * i4
    z5 = (g[5] - l50 * z0 - l51 * z1 - l52 * z2 - l53 * z3 - l54 * z4) * i5
    z6 = (g[6] - l60 * z0 - l61 * z1 - l62 * z2 - l63 * z3 - l64 * z4 - l65 * z5) * i6
    x6 = (z6) * i6
    dl[6] = x6
    x5 = (z5 - l65 * x6) * i5
    dl[5] = x5
    x4 = (z4 - l54 * x5 - l64 * x6) * i4
    dl[4] = x4
    x3 = (z3 - l43 * x4 - l53 * x5 - l63 * x6) * i3
    dl[3] = x3
    x2 = (z2 - l32 * x3 - l42 * x4 - l52 * x5 - l62 * x6) * i2
    dl[2] = x2
    x1 = (z1 - l21 * x2 - l31 * x3 - l41 * x4 - l51 * x5 - l61 * x6) * i1
    dl[1] = x1
    x0 = (z0 - l10 * x1 - l20 * x2 - l30 * x3 - l40 * x4 - l50 * x5 - l60 * x6) * i0
    dl[0] = x0
    return True


@njit(cache=True, error_model="numpy")
def _q_from_canonical(p, q):
    """(A, x0, y0, sx, sy, theta, off) -> (A, x0, y0, a, b, c, off); False if invalid."""
    sx = p[3]
    sy = p[4]
    t = p[5]
    if not (sx > 0.0 and sy > 0.0 and np.isfinite(t)):
        return False
    for i in range(7):
        if not np.isfinite(p[i]):
            return False
    ct = math.cos(t)
    st = math.sin(t)
    ix = 0.5 / (sx * sx)
    iy = 0.5 / (sy * sy)
    q[0] = p[0]
    q[1] = p[1]
    q[2] = p[2]
    q[3] = ct * ct * ix + st * st * iy
    q[4] = ct * st * (ix - iy)
    q[5] = st * st * ix + ct * ct * iy
    q[6] = p[6]
    return True


@njit(cache=True, error_model="numpy")
def _q_valid(q):
    for i in range(7):
        if not np.isfinite(q[i]):
            return False
    return (
        q[3] > 0.0
        and q[5] > 0.0
        and q[3] * q[5] - q[4] * q[4] > 0.0
        and q[1] > -2.0
        and q[1] < 9.0
        and q[2] > -2.0
        and q[2] < 9.0
    )


@njit(cache=True, error_model="numpy")
def _prefit(row, swrow, d, s, wk):
    """Copy one frame to the work buffers and take its cheap statistics.

    Returns (n_usable, bg0, noise0, peak, k_peak, vmin, n_at_peak): bg0 is the median of the
    four corner 2x2 blocks' means; noise0 the pooled within-block scatter of the two faintest
    blocks (NaN if unavailable).
    """
    nv = 0
    for k in range(64):
        v = np.float64(row[k])
        w = swrow[k]
        ok = abs(v) < np.inf and w > 0.0 and w < np.inf
        d[k] = v if ok else 0.0
        s[k] = w if ok else 0.0
        nv += ok
    peak = -np.inf
    vmin = np.inf
    kpk = 0
    for k in range(64):
        if s[k] > 0.0:
            v = d[k]
            if v > peak:
                peak = v
                kpk = k
            vmin = min(vmin, v)
    nflat = 0
    for k in range(64):
        nflat += s[k] > 0.0 and d[k] == peak
    # corner blocks
    means = wk[0:4]
    sss = wk[4:8]
    cnts = wk[8:12]
    nb = 0
    for bi in range(4):
        cnt = 0
        acc = 0.0
        for j in range(4):
            k = _CORNERS[bi, j]
            if s[k] > 0.0:
                cnt += 1
                acc += d[k]
        if cnt == 0:
            continue
        mean = acc / cnt
        ss = 0.0
        for j in range(4):
            k = _CORNERS[bi, j]
            if s[k] > 0.0:
                ss += (d[k] - mean) * (d[k] - mean)
        # insertion by mean
        pos = nb
        while pos > 0 and means[pos - 1] > mean:
            means[pos] = means[pos - 1]
            sss[pos] = sss[pos - 1]
            cnts[pos] = cnts[pos - 1]
            pos -= 1
        means[pos] = mean
        sss[pos] = ss
        cnts[pos] = cnt
        nb += 1
    if nb == 0:
        bg0 = vmin
        noise0 = np.nan
    else:
        if nb == 4:
            bg0 = 0.5 * (means[1] + means[2])
        elif nb == 3:
            bg0 = means[1]
        else:
            bg0 = means[0]
        ssum = 0.0
        dof = 0.0
        for bi in range(min(nb, 2)):
            ssum += sss[bi]
            dof += cnts[bi] - 1
        noise0 = math.sqrt(ssum / dof) if dof > 0.0 else np.nan
    return nv, bg0, noise0, peak, kpk, vmin, nflat


@njit(cache=True, error_model="numpy")
def _moments_guess(d, s, bg0, peak, kpk, q):
    """Initial q from thresholded background-subtracted moments (pixels above 10% of the peak)."""
    amp = peak - bg0
    th = 0.1 * amp
    m0 = 0.0
    mx = 0.0
    my = 0.0
    mxx = 0.0
    mxy = 0.0
    myy = 0.0
    for k in range(64):
        if s[k] > 0.0:
            v = d[k] - bg0
            if v > th:
                x = _XS[k]
                y = _YS[k]
                m0 += v
                mx += v * x
                my += v * y
                mxx += v * x * x
                mxy += v * x * y
                myy += v * y * y
    x0 = mx / m0
    y0 = my / m0
    # a 2-D Gaussian cut at 10% of its peak keeps 0.744 of its second moment
    vx = (mxx / m0 - x0 * x0) / 0.744
    vy = (myy / m0 - y0 * y0) / 0.744
    cxy = (mxy / m0 - x0 * y0) / 0.744
    vx = min(max(vx, 0.04), 9.0)
    vy = min(max(vy, 0.04), 9.0)
    lim = 0.9 * math.sqrt(vx * vy)
    cxy = min(max(cxy, -lim), lim)
    det = vx * vy - cxy * cxy
    a = vy / (2.0 * det)
    b = -cxy / (2.0 * det)
    c = vx / (2.0 * det)
    # amplitude from the peak pixel, corrected for the star's offset from that pixel's centre
    dx = _XS[kpk] - x0
    dy = _YS[kpk] - y0
    qq = a * dx * dx + 2.0 * b * dx * dy + c * dy * dy
    q[0] = amp * math.exp(min(qq, 2.3))
    q[1] = x0
    q[2] = y0
    q[3] = a
    q[4] = b
    q[5] = c
    q[6] = bg0


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _cov7(H, cov):
    """(H)^-1 entries the errors need (diagonal, and the (a, b, c) block) into ``cov``.

    Written-out Cholesky H = L L^T, then L^-1; False if H is not positive definite."""
    t = H[0, 0]
    if not (t > 0.0 and t < np.inf):
        return False
    l00 = math.sqrt(t)
    i00 = 1.0 / l00
    l10 = (H[1, 0]) * i00
    l20 = (H[2, 0]) * i00
    l30 = (H[3, 0]) * i00
    l40 = (H[4, 0]) * i00
    l50 = (H[5, 0]) * i00
    l60 = (H[6, 0]) * i00
    t = H[1, 1] - l10 * l10
    if not (t > 0.0 and t < np.inf):
        return False
    l11 = math.sqrt(t)
    i11 = 1.0 / l11
    l21 = (H[2, 1] - l20 * l10) * i11
    l31 = (H[3, 1] - l30 * l10) * i11
    l41 = (H[4, 1] - l40 * l10) * i11
    l51 = (H[5, 1] - l50 * l10) * i11
    l61 = (H[6, 1] - l60 * l10) * i11
    t = H[2, 2] - l20 * l20 - l21 * l21
    if not (t > 0.0 and t < np.inf):
        return False
    l22 = math.sqrt(t)
    i22 = 1.0 / l22
    l32 = (H[3, 2] - l30 * l20 - l31 * l21) * i22
    l42 = (H[4, 2] - l40 * l20 - l41 * l21) * i22
    l52 = (H[5, 2] - l50 * l20 - l51 * l21) * i22
    l62 = (H[6, 2] - l60 * l20 - l61 * l21) * i22
    t = H[3, 3] - l30 * l30 - l31 * l31 - l32 * l32
    if not (t > 0.0 and t < np.inf):
        return False
    l33 = math.sqrt(t)
    i33 = 1.0 / l33
    l43 = (H[4, 3] - l40 * l30 - l41 * l31 - l42 * l32) * i33
    l53 = (H[5, 3] - l50 * l30 - l51 * l31 - l52 * l32) * i33
    l63 = (H[6, 3] - l60 * l30 - l61 * l31 - l62 * l32) * i33
    t = H[4, 4] - l40 * l40 - l41 * l41 - l42 * l42 - l43 * l43
    if not (t > 0.0 and t < np.inf):
        return False
    l44 = math.sqrt(t)
    i44 = 1.0 / l44
    l54 = (H[5, 4] - l50 * l40 - l51 * l41 - l52 * l42 - l53 * l43) * i44
    l64 = (H[6, 4] - l60 * l40 - l61 * l41 - l62 * l42 - l63 * l43) * i44
    t = H[5, 5] - l50 * l50 - l51 * l51 - l52 * l52 - l53 * l53 - l54 * l54
    if not (t > 0.0 and t < np.inf):
        return False
    l55 = math.sqrt(t)
    i55 = 1.0 / l55
    l65 = (H[6, 5] - l60 * l50 - l61 * l51 - l62 * l52 - l63 * l53 - l64 * l54) * i55
    t = H[6, 6] - l60 * l60 - l61 * l61 - l62 * l62 - l63 * l63 - l64 * l64 - l65 * l65
    if not (t > 0.0 and t < np.inf):
        return False
    l66 = math.sqrt(t)
    i66 = 1.0 / l66
    i10 = -(l10 * i00) * i11
    i20 = -(l20 * i00 + l21 * i10) * i22
    i30 = -(l30 * i00 + l31 * i10 + l32 * i20) * i33
    i40 = -(l40 * i00 + l41 * i10 + l42 * i20 + l43 * i30) * i44
    i50 = -(l50 * i00 + l51 * i10 + l52 * i20 + l53 * i30 + l54 * i40) * i55
    i60 = -(l60 * i00 + l61 * i10 + l62 * i20 + l63 * i30 + l64 * i40 + l65 * i50) * i66
    i21 = -(l21 * i11) * i22
    i31 = -(l31 * i11 + l32 * i21) * i33
    i41 = -(l41 * i11 + l42 * i21 + l43 * i31) * i44
    i51 = -(l51 * i11 + l52 * i21 + l53 * i31 + l54 * i41) * i55
    i61 = -(l61 * i11 + l62 * i21 + l63 * i31 + l64 * i41 + l65 * i51) * i66
    i32 = -(l32 * i22) * i33
    i42 = -(l42 * i22 + l43 * i32) * i44
    i52 = -(l52 * i22 + l53 * i32 + l54 * i42) * i55
    i62 = -(l62 * i22 + l63 * i32 + l64 * i42 + l65 * i52) * i66
    i43 = -(l43 * i33) * i44
    i53 = -(l53 * i33 + l54 * i43) * i55
    i63 = -(l63 * i33 + l64 * i43 + l65 * i53) * i66
    i54 = -(l54 * i44) * i55
    i64 = -(l64 * i44 + l65 * i54) * i66
    i65 = -(l65 * i55) * i66
    cov[0, 0] = i00 * i00 + i10 * i10 + i20 * i20 + i30 * i30 + i40 * i40 + i50 * i50 + i60 * i60
    cov[1, 1] = i11 * i11 + i21 * i21 + i31 * i31 + i41 * i41 + i51 * i51 + i61 * i61
    cov[2, 2] = i22 * i22 + i32 * i32 + i42 * i42 + i52 * i52 + i62 * i62
    cov[3, 3] = i33 * i33 + i43 * i43 + i53 * i53 + i63 * i63
    cov[4, 4] = i44 * i44 + i54 * i54 + i64 * i64
    cov[5, 5] = i55 * i55 + i65 * i65
    cov[6, 6] = i66 * i66
    cov[3, 4] = i43 * i44 + i53 * i54 + i63 * i64
    cov[4, 3] = cov[3, 4]
    cov[3, 5] = i53 * i55 + i63 * i65
    cov[5, 3] = cov[3, 5]
    cov[4, 5] = i54 * i55 + i64 * i65
    cov[5, 4] = cov[4, 5]
    return True


@njit(cache=True, error_model="numpy")
def _canonical_and_errors(q, have_cov, cov, scale, p, e):
    """q -> canonical p; 1-sigma errors from ``scale * cov`` (cov: (J^T J)^-1 entries, _cov7).

    The (sx, sy, theta) errors go through the inverse of D = d(a, b, c) / d(sx, sy, theta):
    the covariance transforms exactly between the two parametrisations.
    """
    a = q[3]
    b = q[4]
    c = q[5]
    tr = 0.5 * (a + c)
    dd = math.sqrt(0.25 * (a - c) * (a - c) + b * b)
    lmin = tr - dd
    lmax = tr + dd
    sx = 1.0 / math.sqrt(2.0 * lmin) if lmin > 0.0 else np.nan
    sy = 1.0 / math.sqrt(2.0 * lmax) if lmax > 0.0 else np.nan
    t = 0.5 * math.atan2(2.0 * b, a - c) + 0.5 * math.pi
    if t >= math.pi:
        t -= math.pi
    if t < 0.0:
        t = 0.0
    p[0] = q[0]
    p[1] = q[1]
    p[2] = q[2]
    p[3] = sx
    p[4] = sy
    p[5] = t
    p[6] = q[6]
    for i in range(7):
        e[i] = np.nan
    if not have_cov or not (scale >= 0.0):
        return
    for i in (0, 1, 2, 6):
        v = cov[i, i] * scale
        if v >= 0.0:
            e[i] = math.sqrt(v)
    ct = math.cos(t)
    st = math.sin(t)
    s2 = 2.0 * st * ct
    c2 = ct * ct - st * st
    isx2 = 1.0 / (sx * sx)
    isy2 = 1.0 / (sy * sy)
    isx3 = isx2 / sx
    isy3 = isy2 / sy
    d00 = -ct * ct * isx3
    d01 = -st * st * isy3
    d02 = 0.5 * s2 * (isy2 - isx2)
    d10 = -0.5 * s2 * isx3
    d11 = 0.5 * s2 * isy3
    d12 = 0.5 * c2 * (isx2 - isy2)
    d20 = -st * st * isx3
    d21 = -ct * ct * isy3
    d22 = 0.5 * s2 * (isx2 - isy2)
    c00 = d11 * d22 - d12 * d21
    c01 = d02 * d21 - d01 * d22
    c02 = d01 * d12 - d02 * d11
    det = d00 * c00 + d10 * c01 + d20 * c02
    if not (det != 0.0 and np.isfinite(det)):
        return
    # rows of E = D^-1 (adjugate / det)
    for i in range(3):
        if i == 0:
            e0, e1, e2 = c00, c01, c02
        elif i == 1:
            e0, e1, e2 = d12 * d20 - d10 * d22, d00 * d22 - d02 * d20, d02 * d10 - d00 * d12
        else:
            e0, e1, e2 = d10 * d21 - d11 * d20, d01 * d20 - d00 * d21, d00 * d11 - d01 * d10
        v = (
            e0 * e0 * cov[3, 3]
            + e1 * e1 * cov[4, 4]
            + e2 * e2 * cov[5, 5]
            + 2.0 * (e0 * e1 * cov[3, 4] + e0 * e2 * cov[3, 5] + e1 * e2 * cov[4, 5])
        ) * (scale / (det * det))
        if v >= 0.0:
            e[3 + i] = math.sqrt(v)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _noise_weights(mask_w, at, noise_a, noise_b, s, var):
    """Sqrt-weights ``s = mask_w / sqrt(var)``, ``var = a + b max(at, 0)`` (branch-free: vectorised)."""
    for k in range(64):
        v = noise_a + noise_b * max(at[k], 0.0)
        var[k] = v
        s[k] = mask_w[k] / math.sqrt(v)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _model_values(q, gb, out):
    """The model at the pixels from the exponentials ``gb`` of the last pass at ``q``."""
    for k in range(64):
        out[k] = q[6] + q[0] * gb[k]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _variances_close(m, noise_a, noise_b, var):
    """The pixels' model variances at ``m`` within _REWEIGHT_TOL (rms, relative) of ``var``."""
    ss = 0.0
    for k in range(64):
        r = (noise_a + noise_b * max(m[k], 0.0)) / var[k] - 1.0
        ss += r * r
    return ss <= 64.0 * _REWEIGHT_TOL * _REWEIGHT_TOL


@njit(cache=True, error_model="numpy", nogil=True)
def _fit_kernel(
    fr,
    swt,
    init,
    use_init,
    warm,
    max_iter,
    xtol,
    absolute,
    noise_a,
    noise_b,
    out_p,
    out_e,
    out_chi2,
    out_chi2r,
    out_nit,
    out_st,
    ch_lo,
    ch_hi,
):
    n = fr.shape[0]
    per_frame_w = swt.shape[0] > 1
    use_noise = noise_a > 0.0 and noise_b >= 0.0
    for ch in range(ch_lo, ch_hi):
        d = np.empty(64)
        s = np.empty(64)
        s0 = np.empty(64)
        mprev = np.empty(64)  # the last converged frame's model: the next frame's weights
        vw = np.empty(64)  # the variances the current weights were taken from
        gb = np.empty(64)
        Ha = np.empty((7, 7))
        Hb = np.empty((7, 7))
        ga = np.empty(7)
        gbv = np.empty(7)
        cov = np.empty((7, 7))
        wk = np.empty(12)
        dl = np.empty(7)
        q = np.empty(7)
        qt = np.empty(7)
        qprev = np.empty(7)
        p = np.empty(7)
        e = np.empty(7)
        base = np.empty(8)
        pstep = np.empty(8)
        prev_ok = False
        prev_mx = np.nan
        prev_my = np.nan
        for i in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            swrow = swt[i] if per_frame_w else swt[0]
            nv, bg0, noise0, peak, kpk, vmin, nflat = _prefit(fr[i], swrow, d, s, wk)
            out_nit[i] = 0
            out_chi2[i] = np.nan
            out_chi2r[i] = np.nan
            for j in range(7):
                out_p[j, i] = np.nan
                out_e[j, i] = np.nan
            if nv < MIN_PIXELS:
                out_st[i] = 2
                prev_ok = False
                continue
            if not (peak > vmin and peak > bg0) or peak - bg0 < MIN_SNR * noise0:
                out_st[i] = 3
                prev_ok = False
                continue
            prev_w = False
            if use_noise:
                # Weights 1/var: at the previous converged frame's model (a guided star barely
                # moves, and that model owes nothing to this frame's noise), else at the data.
                prev_w = warm and prev_ok
                for k in range(64):
                    s0[k] = s[k]
                _noise_weights(s0, mprev if prev_w else d, noise_a, noise_b, s, vw)
            # starting point
            cur_mx = np.nan
            cur_my = np.nan
            if use_init and _q_from_canonical(init[i], q):
                pass
            else:
                _moments_guess(d, s, bg0, peak, kpk, q)
                cur_mx = q[1]
                cur_my = q[2]
                if warm and prev_ok:
                    # this frame's centroid, less the previous frame's moments-vs-fit offset
                    # (the same bias for a guided star); the last good fit's shape/background
                    cx = qprev[1] - prev_mx
                    cy = qprev[2] - prev_my
                    if abs(cx) < 0.2 and abs(cy) < 0.2:
                        q[1] += cx
                        q[2] += cy
                    q[3] = qprev[3]
                    q[4] = qprev[4]
                    q[5] = qprev[5]
                    q[6] = qprev[6]
                    dx = _XS[kpk] - q[1]
                    dy = _YS[kpk] - q[2]
                    qq = q[3] * dx * dx + 2.0 * q[4] * dx * dy + q[5] * dy * dy
                    q[0] = (peak - q[6]) * math.exp(min(qq, 2.3))
            H = Ha
            g = ga
            Ht = Hb
            gt = gbv
            chi2 = _lm_pass(d, s, q, gb, H, g, base, pstep)
            gb_at_q = True  # gb holds the exponentials at q (not at a rejected trial point)
            lam = _LAM0
            nit = 0
            conv = False
            stuck = not np.isfinite(chi2)
            while nit < max_iter and not stuck:
                nit += 1
                if not _damped_solve7(H, g, lam, dl):
                    lam *= 10.0
                    stuck = lam > _LAM_MAX
                    continue
                if abs(dl[1]) < xtol and abs(dl[2]) < xtol and abs(dl[0]) <= xtol * abs(q[0]):
                    for j in range(7):
                        q[j] += dl[j]
                    conv = True
                    break
                for j in range(7):
                    qt[j] = q[j] + dl[j]
                if _q_valid(qt):
                    chi2t = _lm_pass(d, s, qt, gb, Ht, gt, base, pstep)
                    gb_at_q = chi2t < chi2
                    if gb_at_q:
                        for j in range(7):
                            q[j] = qt[j]
                        H, Ht = Ht, H
                        g, gt = gt, g
                        chi2 = chi2t
                        lam = max(lam * 0.1, 1e-12)
                        continue
                lam *= 10.0
                stuck = lam > _LAM_MAX
            # covariance from the undamped J^T J at the last evaluated point
            dof = nv - 7
            if use_noise and _q_valid(q) and gb_at_q and prev_w:
                # the weights' model is still the solution's (variances within _REWEIGHT_TOL):
                # keep them, no further pass
                _model_values(q, gb, mprev)
                prev_w = _variances_close(mprev, noise_a, noise_b, vw)
            else:
                prev_w = False
            if use_noise and _q_valid(q) and not prev_w:
                # Weights 1/var at the model, so neither the errors nor chi2 depend on the
                # pixels' own noise, and one Gauss-Newton step with them: it removes the bias
                # of weights taken at the data (pixels that fluctuate low weigh more; -0.4
                # sigma in the offset). One more pass; gb is usually still at q.
                if not gb_at_q:
                    _lm_pass(d, s, q, gb, H, g, base, pstep)
                _model_values(q, gb, mprev)
                _noise_weights(s0, mprev, noise_a, noise_b, s, vw)
                chi2 = _lm_pass(d, s, q, gb, H, g, base, pstep)
                gb_at_q = True  # near enough: the step below is a fraction of a sigma
                if _damped_solve7(H, g, 0.0, dl) and abs(dl[1]) < 0.1 and abs(dl[2]) < 0.1:
                    for j in range(7):
                        qt[j] = q[j] + dl[j]
                    if _q_valid(qt):
                        for j in range(7):
                            q[j] = qt[j]
            scale = 1.0 if absolute or use_noise else (chi2 / dof if dof > 0 else np.nan)
            have_cov = _q_valid(q) and _cov7(H, cov)
            _canonical_and_errors(q, have_cov, cov, scale, p, e)
            for j in range(7):
                out_p[j, i] = p[j]
                out_e[j, i] = e[j]
            out_chi2[i] = chi2
            if (absolute or use_noise) and dof > 0:
                out_chi2r[i] = chi2 / dof
            out_nit[i] = nit
            finite = True
            for j in range(7):
                if not np.isfinite(p[j]):
                    finite = False
            if finite and (p[0] <= 0.0 or (e[0] >= 0.0 and p[0] < MIN_SNR * e[0])):
                st = 3
            elif (
                stuck
                or not finite
                or not have_cov
                or p[3] > SIGMA_MAX
                or p[4] < SIGMA_MIN
                or p[1] < POS_MIN
                or p[1] > POS_MAX
                or p[2] < POS_MIN
                or p[2] > POS_MAX
                or nflat >= FLAT_TOP_PIXELS
            ):
                st = 4
            elif not conv:
                st = 1
            else:
                st = 0
            out_st[i] = st
            prev_ok = st == 0
            if prev_ok and use_noise and not prev_w:  # (with prev_w, mprev is at q already)
                if not gb_at_q:
                    _lm_pass(d, s, q, gb, H, g, base, pstep)
                _model_values(q, gb, mprev)
            if prev_ok:
                for j in range(7):
                    qprev[j] = q[j]
                prev_mx = cur_mx
                prev_my = cur_my


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GaussFitResult:
    """Per-frame Gaussian fit results; every field is an ``(n,)`` numpy array.

    Parameters are float64 in pixels (positions: pixel-centre convention, x along the last
    axis), radians (``theta`` in [0, pi), ``x_stddev >= y_stddev > 0``) and frame units
    (``amplitude``, ``offset``). ``*_err`` are 1-sigma uncertainties; ``chi2`` is the sum of
    squared (weighted) residuals; ``chi2_red`` is ``chi2 / (n_pix - 7)`` when the errors are
    absolute (noise model, or ``weighted`` with ``absolute_sigma``), NaN otherwise: near 1 when
    the Gaussian describes the star to the noise; ``n_iter`` (int16) counts LM steps; ``status`` (int8) holds
    :class:`FitStatus` codes. Frames with status 2, or 3 decided before fitting, are all NaN.
    """

    amplitude: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    x_stddev: np.ndarray
    y_stddev: np.ndarray
    theta: np.ndarray
    offset: np.ndarray
    amplitude_err: np.ndarray
    x_mean_err: np.ndarray
    y_mean_err: np.ndarray
    x_stddev_err: np.ndarray
    y_stddev_err: np.ndarray
    theta_err: np.ndarray
    offset_err: np.ndarray
    chi2: np.ndarray
    chi2_red: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray

    def __len__(self) -> int:
        return int(self.status.shape[0])

    @property
    def params(self) -> np.ndarray:
        """``(n, 7)`` parameters in :data:`PARAM_NAMES` order."""
        return np.stack([getattr(self, k) for k in PARAM_NAMES], axis=1)

    @property
    def errors(self) -> np.ndarray:
        """``(n, 7)`` 1-sigma uncertainties in :data:`PARAM_NAMES` order."""
        return np.stack([getattr(self, k + "_err") for k in PARAM_NAMES], axis=1)

    @property
    def converged(self) -> np.ndarray:
        return self.status == FitStatus.CONVERGED

    def to_dict(self) -> dict[str, np.ndarray]:
        """The ``fits``-table columns this stage owns, in table order (no keys, no fit_version)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` of :meth:`to_dict` (float64, int16, int8 columns; zero-copy)."""
        import pyarrow as pa

        return pa.table(self.to_dict())


@dataclass(frozen=True, eq=False)
class QuickFitResult:
    """Moments of the background-subtracted 8x8 marginals; ``(n,)`` float64 arrays.

    ``x_stddev``/``y_stddev`` are the spreads of the marginals along the x and y axes (not the
    principal axes of an elliptical star). ``flux`` is the background-subtracted sum over the
    usable pixels; NaN where the frame has no usable pixel or a non-positive flux.
    """

    x_mean: np.ndarray
    y_mean: np.ndarray
    x_stddev: np.ndarray
    y_stddev: np.ndarray
    flux: np.ndarray

    def __len__(self) -> int:
        return int(self.flux.shape[0])

    def to_dict(self) -> dict[str, np.ndarray]:
        """The ``quickfits``-table columns this stage owns, in table order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_arrow(self) -> Any:
        import pyarrow as pa

        return pa.table(self.to_dict())


# --------------------------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------------------------


def _pixel_array(a: np.ndarray | None, name: str, n: int) -> np.ndarray | None:
    """(8, 8) or (n, 8, 8) -> (1, 64) or (n, 64)."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.shape == (8, 8):
        return a.reshape(1, 64)
    if a.shape == (n, 8, 8):
        return a.reshape(n, 64)
    raise ValueError(f"{name} must have shape (8, 8) or ({n}, 8, 8); got {a.shape}")


def _usable_template(
    n: int, mask: np.ndarray | None, dq: np.ndarray | None, err: np.ndarray | None
) -> np.ndarray:
    """(1 or n, 64) float64 sqrt-weights: 0 for excluded pixels, 1 or 1/err otherwise."""
    m = _pixel_array(mask, "mask", n)
    q = _pixel_array(dq, "dq", n)
    e = _pixel_array(err, "err", n)
    rows = max(x.shape[0] if x is not None else 1 for x in (m, q, e))
    w = np.ones((rows, 64))
    if m is not None:
        w = w * ~m.astype(bool)
    if q is not None:
        w = w * (q == 0)
    if e is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ee = e.astype(np.float64)
            inv = np.where(np.isfinite(ee) & (ee > 0), 1.0 / ee, 0.0)
        w = w * inv
    return np.ascontiguousarray(w)


def fit_gaussian_stack(
    frames: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    dq: np.ndarray | None = None,
    err: np.ndarray | None = None,
    weighted: bool = False,
    absolute_sigma: bool = False,
    noise: tuple[float, float] | None = None,
    max_iter: int = 50,
    xtol_px: float = 1e-6,
    initial: np.ndarray | None = None,
    warm_start: bool = True,
    n_threads: int | None = None,
) -> GaussFitResult:
    """Fit a 2-D Gaussian plus constant to every 8x8 frame (Levenberg-Marquardt, numba).

    Parameters
    ----------
    frames : ``(n, 8, 8)`` float32 or float64, ``frame[y, x]``.
    mask : bool ``(8, 8)`` or ``(n, 8, 8)``; True EXCLUDES a pixel (numpy.ma convention).
    dq : integer ``(8, 8)`` or ``(n, 8, 8)`` DQ flags; pixels with nonzero DQ are excluded.
    err : ``(8, 8)`` or ``(n, 8, 8)`` per-pixel 1-sigma errors; used only when ``weighted``.
        Pixels with non-finite or non-positive err are excluded.
    weighted : minimise ``sum(((data - model) / err)^2)`` instead of ``sum((data - model)^2)``
        (the default: the same objective as ``curve_fit`` without ``sigma``).
    absolute_sigma : (weighted only) take ``err`` as absolute: the covariance is
        ``(J^T W J)^-1`` unscaled. Otherwise (default, and always for unweighted fits) it is
        scaled by ``chi2 / (n_pix - 7)``, as ``curve_fit``'s default ``pcov``.
    noise : ``(a, b)``: the per-pixel noise model ``var = a + b * max(signal, 0)`` in frame
        units squared (read noise and Poisson terms, see :mod:`fgsarchive.fit.noise`). The fit
        minimises chi2 with weights ``1 / var`` taken at the previous converged frame's model
        (with ``warm_start``; else at the data), and the covariance (absolute, unscaled) and
        ``chi2`` hold weights at a model, never at the pixels' own noisy values: when the
        solution's variances differ from the weighted ones by more than 10 % rms, one more pass
        reweights at the solution and takes one Gauss-Newton step. Not combined with ``weighted``.
    max_iter : LM steps per frame before giving up (status 1).
    xtol_px : converged when a step moves x_mean and y_mean by less than this (px) and the
        amplitude by less than this relative amount.
    initial : optional ``(n, 7)`` starting parameters in :data:`PARAM_NAMES` order; rows with a
        non-finite or invalid value fall back to the default start.
    warm_start : start from the previous frame's solution when it converged (within blocks of
        256 frames); otherwise from background-subtracted moments.
    n_threads : threads for this call (default: the CPUs this process may use). The numba
        kernel releases the GIL and runs on plain Python threads, chunk by chunk.

    NaN/inf pixels are excluded. Never raises on bad frames: see :class:`FitStatus`.
    """
    fr = _as_stack(frames)
    n = fr.shape[0]
    if weighted and err is None:
        raise ValueError("weighted=True needs err")
    if noise is not None:
        if weighted:
            raise ValueError("noise and weighted=True are exclusive: give one noise description")
        noise_a, noise_b = (float(v) for v in noise)
        if not (noise_a > 0 and noise_b >= 0 and math.isfinite(noise_a + noise_b)):
            raise ValueError(f"noise (a, b) needs a > 0 and b >= 0 (finite); got {noise}")
    else:
        noise_a = noise_b = -1.0
    if int(max_iter) < 1 or int(max_iter) > np.iinfo(np.int16).max:
        raise ValueError(f"max_iter must be in 1..32767; got {max_iter}")
    if not xtol_px > 0:
        raise ValueError(f"xtol_px must be > 0; got {xtol_px}")
    sw = _usable_template(n, mask, dq, err if weighted else None)
    if initial is not None:
        init = np.ascontiguousarray(np.asarray(initial, dtype=np.float64))
        if init.shape != (n, 7):
            raise ValueError(f"initial must have shape ({n}, 7); got {init.shape}")
        use_init = True
    else:
        init = np.zeros((1, 7))
        use_init = False
    out_p = np.empty((7, n))
    out_e = np.empty((7, n))
    chi2 = np.empty(n)
    chi2_red = np.empty(n)
    nit = np.empty(n, dtype=np.int16)
    st = np.empty(n, dtype=np.int8)
    _run_chunks(
        _fit_kernel,
        n,
        _CHUNK,
        n_threads,
        fr,
        sw,
        init,
        use_init,
        bool(warm_start),
        int(max_iter),
        float(xtol_px),
        bool(weighted and absolute_sigma),
        noise_a,
        noise_b,
        out_p,
        out_e,
        chi2,
        chi2_red,
        nit,
        st,
    )
    cols = {k: out_p[j] for j, k in enumerate(PARAM_NAMES)}
    cols.update({k + "_err": out_e[j] for j, k in enumerate(PARAM_NAMES)})
    return GaussFitResult(**cols, chi2=chi2, chi2_red=chi2_red, n_iter=nit, status=st)


@njit(cache=True, error_model="numpy", nogil=True)
def _quick_kernel(fr, swt, r_excl2, out, ch_lo, ch_hi):
    n = fr.shape[0]
    per_frame = swt.shape[0] > 1
    for ch in range(ch_lo, ch_hi):
        row = np.empty(64)
        buf = np.empty(128)
        mx = np.empty(8)
        my = np.empty(8)
        for i in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            w = swt[i] if per_frame else swt[0]
            for k in range(64):
                v = fr[i, k]
                row[k] = v if (w[k] > 0.0 and abs(v) < np.inf) else np.nan
            bg, _, nused = _background_one(row, buf, r_excl2)
            for j in range(8):
                mx[j] = 0.0
                my[j] = 0.0
            for k in range(64):
                v = row[k]
                if v == v:
                    v -= bg
                    mx[k % 8] += v
                    my[k // 8] += v
            f = 0.0
            sx = 0.0
            sy = 0.0
            for j in range(8):
                f += mx[j]
                sx += j * mx[j]
                sy += j * my[j]
            if nused == 0 or not f > 0.0:
                for j in range(5):
                    out[j, i] = np.nan
                continue
            xm = sx / f
            ym = sy / f
            vx = 0.0
            vy = 0.0
            for j in range(8):
                vx += (j - xm) * (j - xm) * mx[j]
                vy += (j - ym) * (j - ym) * my[j]
            vx /= f
            vy /= f
            out[0, i] = xm
            out[1, i] = ym
            out[2, i] = math.sqrt(vx) if vx > 0.0 else np.nan
            out[3, i] = math.sqrt(vy) if vy > 0.0 else np.nan
            out[4, i] = f


def quick_fit_stack(
    frames: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    exclude_radius: float = DEFAULT_EXCLUDE_RADIUS,
    n_threads: int | None = None,
) -> QuickFitResult:
    """Centroid, spread and flux of every frame from the full 8x8 marginals.

    The per-frame background of :func:`fgsarchive.fit.photometry.background_stack` (pixels
    beyond ``exclude_radius`` of the brightest pixel, sigma-clipped) is subtracted, then the x
    and y marginals (sums over all rows / columns) give first and second moments. ``mask``
    (``(8, 8)`` or ``(n, 8, 8)`` bool, True EXCLUDES) and NaN pixels count as background.
    """
    fr = _as_stack(frames)
    n = fr.shape[0]
    sw = _usable_template(n, mask, None, None)
    out = np.empty((5, n))
    _run_chunks(_quick_kernel, n, _CHUNK, n_threads, fr, sw, float(exclude_radius) ** 2, out)
    return QuickFitResult(
        x_mean=out[0], y_mean=out[1], x_stddev=out[2], y_stddev=out[3], flux=out[4]
    )
