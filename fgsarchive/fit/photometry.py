"""Per-frame background and photometry of 8x8 guide-star frames (pure maths, no I/O).

Conventions (docs/CONVENTIONS.md): frames are ``(n, 8, 8)`` arrays indexed ``frame[y, x]``, pixel
centres at integer coordinates 0..7, so pixel ``(x, y)`` covers ``[x - 0.5, x + 0.5] x
[y - 0.5, y + 0.5]``.

Public functions
----------------
- :func:`background_stack` -- robust per-frame background (and its per-pixel scatter).
- :func:`aperture_photometry_stack` -- circular apertures with exact circle/pixel overlap areas.
- :func:`pixel_overlap_areas` -- the exact overlap areas themselves (one circle).
- :func:`optimal_mask` -- the brightest-N-pixels mask with the smallest binned relative scatter.
- :func:`masked_flux` -- sum of the pixels inside a mask.

Masks here are *apertures*: ``True`` means the pixel is summed. (The fitters in
:mod:`fgsarchive.fit.model` take a ``mask`` of pixels to *exclude*, as ``numpy.ma`` does.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit, prange

__all__ = [
    "DEFAULT_RADII",
    "aperture_photometry_stack",
    "background_stack",
    "masked_flux",
    "optimal_mask",
    "pixel_overlap_areas",
]

#: Aperture radii (px) of the ``photometry`` table's ``flux_r1, flux_r2, flux_r3`` columns.
DEFAULT_RADII: tuple[float, float, float] = (1.5, 2.5, 3.5)

#: Pixels closer than this to the brightest pixel are left out of the background (px).
DEFAULT_EXCLUDE_RADIUS = 3.0

_CHUNK = 1024  # frames per prange work item


# --------------------------------------------------------------------------------------------
# background
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _insertion_sort(buf, m):
    for i in range(1, m):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@njit(cache=True, inline="always")
def _sorted_quantile(buf, m, q):
    pos = q * (m - 1)
    lo = int(pos)
    if lo >= m - 1:
        return buf[m - 1]
    f = pos - lo
    return buf[lo] * (1.0 - f) + buf[lo + 1] * f


@njit(cache=True)
def _background_one(row, buf, r_excl2):
    """Robust background of one frame (``row``: 64 pixels, NaN = invalid).

    Pixels farther than ``sqrt(r_excl2)`` from the brightest pixel are sorted; their median
    and the lower-half scatter ``median - P15.87`` give a 3-sigma clip window, and the mean
    of the pixels inside it is returned. Returns ``(background, sigma, n_used)``; NaNs and
    ``n_used = 0`` when the frame has no finite pixel.
    """
    kmax = -1
    vmax = -np.inf
    for k in range(64):
        v = row[k]
        if v > vmax:  # NaN compares False
            vmax = v
            kmax = k
    if kmax < 0:
        return np.nan, np.nan, 0
    px = kmax % 8
    py = kmax // 8
    m = 0
    for k in range(64):
        v = row[k]
        if v == v:
            dx = (k % 8) - px
            dy = (k // 8) - py
            if dx * dx + dy * dy > r_excl2:
                buf[m] = v
                m += 1
    if m < 8:  # star too near every pixel (tiny frame of valid pixels): use them all
        m = 0
        for k in range(64):
            v = row[k]
            if v == v:
                buf[m] = v
                m += 1
    _insertion_sort(buf, m)
    med = _sorted_quantile(buf, m, 0.5)
    sig = med - _sorted_quantile(buf, m, 0.15865525393145707)
    if not sig > 0.0:
        return med, 0.0, m
    lo = med - 3.0 * sig
    hi = med + 3.0 * sig
    s = 0.0
    c = 0
    for i in range(m):
        v = buf[i]
        if v >= lo and v <= hi:
            s += v
            c += 1
    return s / c, sig, c


@njit(cache=True, parallel=True)
def _background_kernel(fr, r_excl2, out_bg, out_sig):
    n = fr.shape[0]
    nch = (n + _CHUNK - 1) // _CHUNK
    for ch in prange(nch):
        buf = np.empty(64)
        for i in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            bg, sig, _ = _background_one(fr[i], buf, r_excl2)
            out_bg[i] = bg
            out_sig[i] = sig


def _as_stack(frames: np.ndarray) -> np.ndarray:
    """(n, 8, 8) or (8, 8) float array -> C-contiguous (n, 64) float32/float64 view or copy."""
    a = np.asarray(frames)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (8, 8):
        raise ValueError(f"frames must have shape (n, 8, 8); got {np.shape(frames)}")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return np.ascontiguousarray(a).reshape(a.shape[0], 64)


def background_stack(
    frames: np.ndarray,
    *,
    exclude_radius: float = DEFAULT_EXCLUDE_RADIUS,
    return_sigma: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Robust per-frame background level (counts per pixel).

    For each frame, the finite pixels farther than ``exclude_radius`` px from the brightest
    pixel are kept; their median and lower-half scatter (``median - 15.87th percentile``,
    insensitive to the star's wings, which only add positive values) define a 3-sigma window,
    and the background is the mean of the kept pixels inside it. With fewer than 8 such
    pixels all finite pixels are used. All-NaN frames give NaN.

    Returns ``background`` of shape ``(n,)`` (float64), or ``(background, sigma)`` with
    ``return_sigma=True`` where ``sigma`` is the robust per-pixel scatter of the background.
    """
    fr = _as_stack(frames)
    n = fr.shape[0]
    bg = np.empty(n)
    sig = np.empty(n)
    if n:
        _background_kernel(fr, float(exclude_radius) ** 2, bg, sig)
    return (bg, sig) if return_sigma else bg


# --------------------------------------------------------------------------------------------
# exact circle / pixel overlap areas
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _quarter_primitive(t, r):
    """Area under ``sqrt(r^2 - s^2)`` for s in [0, t], 0 <= t <= r."""
    if t >= r:
        return 0.25 * math.pi * r * r
    if t <= 0.0:
        return 0.0
    return 0.5 * (t * math.sqrt(r * r - t * t) + r * r * math.asin(t / r))


@njit(cache=True)
def _overlap_areas(xc, yc, r, area, su, uu, pu, sv, vv, pxs, xsv, hc):
    """Exact areas of the disc (xc, yc, r) inside each of the 64 pixels, written to ``area``.

    ``H(u, v)``, the signed area of the disc (centred at the origin) inside the rectangle
    between the origin and the corner (u, v), is ``sign(u) sign(v) Q(|u|, |v|)`` with
    ``Q(u, v) = v' min(x*, u') + max(P(u') - P(x*), 0)``, ``u' = min(u, r)``, ``v' = min(v, r)``,
    ``x* = sqrt(r^2 - v'^2)`` and ``P`` the primitive of the circle's upper half. The area in a
    pixel is the second difference of H over its four corners. Only 18 arcsines per circle.
    """
    for i in range(9):
        u = i - 0.5 - xc
        su[i] = 1.0 if u > 0 else (-1.0 if u < 0 else 0.0)
        up = min(abs(u), r)
        uu[i] = up
        pu[i] = _quarter_primitive(up, r)
    for j in range(9):
        v = j - 0.5 - yc
        sv[j] = 1.0 if v > 0 else (-1.0 if v < 0 else 0.0)
        vp = min(abs(v), r)
        vv[j] = vp
        xs = math.sqrt(max(r * r - vp * vp, 0.0))
        xsv[j] = xs
        pxs[j] = _quarter_primitive(xs, r)
    for j in range(9):
        vp = vv[j]
        xs = xsv[j]
        px = pxs[j]
        s = sv[j]
        for i in range(9):
            q = vp * min(xs, uu[i]) + max(pu[i] - px, 0.0)
            hc[j, i] = s * su[i] * q
    for y in range(8):
        for x in range(8):
            area[8 * y + x] = hc[y + 1, x + 1] - hc[y + 1, x] - hc[y, x + 1] + hc[y, x]


def pixel_overlap_areas(x: float, y: float, radius: float) -> np.ndarray:
    """Exact area (px^2) of the circle centred at ``(x, y)`` with ``radius`` inside each pixel.

    Returns an ``(8, 8)`` float64 array indexed ``[y, x]``; it sums to ``pi radius^2`` when the
    circle lies inside the frame.
    """
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0; got {radius}")
    area = np.empty(64)
    w = [np.empty(9) for _ in range(7)]
    _overlap_areas(float(x), float(y), float(radius), area, *w, np.empty((9, 9)))
    return area.reshape(8, 8)


@njit(cache=True, parallel=True)
def _aperture_kernel(fr, xs, ys, radii, bg, out):
    n = fr.shape[0]
    nr = radii.shape[0]
    nch = (n + _CHUNK - 1) // _CHUNK
    for ch in prange(nch):
        area = np.empty(64)
        e = np.empty(64)
        su = np.empty(9)
        uu = np.empty(9)
        pu = np.empty(9)
        sv = np.empty(9)
        vv = np.empty(9)
        pxs = np.empty(9)
        xsv = np.empty(9)
        hc = np.empty((9, 9))
        for i in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            xc = xs[i]
            yc = ys[i]
            b = bg[i]
            if not (np.isfinite(xc) and np.isfinite(yc) and np.isfinite(b)):
                for k in range(nr):
                    out[i, k] = np.nan
                continue
            for p in range(64):
                e[p] = fr[i, p] - b
            for k in range(nr):
                _overlap_areas(xc, yc, radii[k], area, su, uu, pu, sv, vv, pxs, xsv, hc)
                s = 0.0
                for p in range(64):
                    a = area[p]
                    s += a * e[p] if a != 0.0 else 0.0  # NaN pixels outside do not matter
                out[i, k] = s


def aperture_photometry_stack(
    frames: np.ndarray,
    x: np.ndarray | float,
    y: np.ndarray | float,
    radii: Sequence[float] = DEFAULT_RADII,
    *,
    background: np.ndarray | float | None = None,
) -> np.ndarray:
    """Background-subtracted flux in circular apertures, with exact pixel overlap areas.

    Parameters
    ----------
    frames : ``(n, 8, 8)`` float32/float64 stack.
    x, y : aperture centres (px, pixel-centre convention), scalars or ``(n,)`` arrays -- usually
        the fitted ``x_mean, y_mean``.
    radii : aperture radii (px).
    background : per-pixel background to subtract, scalar or ``(n,)``; ``None`` computes
        :func:`background_stack`. Pass ``0.0`` for raw sums.

    Returns
    -------
    ``(n, len(radii))`` float64: ``sum_p area_p * (frame_p - background)``. Parts of an
    aperture outside the 8x8 window count nothing (no correction). A NaN pixel that overlaps an
    aperture, or a non-finite centre or background, gives NaN for that aperture.
    """
    fr = _as_stack(frames)
    n = fr.shape[0]
    r = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    if r.ndim != 1 or r.size == 0 or not np.all(r >= 0):
        raise ValueError(f"radii must be a non-empty sequence of non-negative numbers; got {radii}")
    xs = np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)))
    ys = np.ascontiguousarray(np.broadcast_to(np.asarray(y, dtype=np.float64), (n,)))
    if background is None:
        bg = background_stack(fr.reshape(n, 8, 8))
    else:
        bg = np.ascontiguousarray(np.broadcast_to(np.asarray(background, dtype=np.float64), (n,)))
    out = np.empty((n, r.size))
    if n:
        _aperture_kernel(fr, xs, ys, r, bg, out)
    return out


# --------------------------------------------------------------------------------------------
# brightest-pixel masks
# --------------------------------------------------------------------------------------------


def masked_flux(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sum of the pixels where ``mask`` (``(8, 8)`` bool, True = summed) is set; ``(n,)`` float64.

    NaN pixels inside the mask make that frame's sum NaN (no silent partial sums).
    """
    fr = _as_stack(frames)
    m = np.asarray(mask, dtype=bool)
    if m.shape != (8, 8):
        raise ValueError(f"mask must have shape (8, 8); got {m.shape}")
    return fr[:, m.ravel()].sum(axis=1, dtype=np.float64)


def _robust_p2p_scatter(binned: np.ndarray) -> np.ndarray:
    """Point-to-point scatter of each column: 1.4826 MAD of first differences / sqrt(2)."""
    d = np.diff(binned, axis=0)
    dev = np.abs(d - np.median(d, axis=0))
    return 1.482602218505602 * np.median(dev, axis=0) / math.sqrt(2.0)


def optimal_mask(
    frames: np.ndarray,
    *,
    max_pixels: int = 64,
    bin_frames: int = 16,
    background: np.ndarray | float | None = None,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Mask of the N brightest pixels whose summed flux has the smallest binned relative scatter.

    Pixels are ranked by their median over the stack (brightest first). For each N = 1 ..
    ``max_pixels``, the raw sum of the N brightest pixels is binned in consecutive groups of
    ``bin_frames`` frames (16 frames ~ 1 s at 64 ms), and its scatter is measured robustly from
    point to point (1.4826 x MAD of the first differences / sqrt 2, so slow trends and rare
    events such as a real flux drop do not count as noise). The scatter is divided by the
    star's median flux in those N pixels (median sum minus ``N x background``), so adding pure
    background pixels only adds noise. Run it per guide star and visit segment.

    Parameters
    ----------
    frames : ``(n, 8, 8)``; frames with a NaN among the candidate pixels are dropped.
    max_pixels : largest N tried (1..64).
    bin_frames : frames per bin (>= 1); at least 8 bins are needed.
    background : per-pixel background level (scalar or ``(n,)``, its median is used);
        ``None`` uses the median of :func:`background_stack`.

    Returns
    -------
    mask : ``(8, 8)`` bool, True for the chosen pixels.
    n_pixels : the chosen N.
    scatter : ``(max_pixels,)`` float64 relative binned scatter for N = 1 .. ``max_pixels``
        (``scatter[n_pixels - 1]`` is the minimum; NaN where the star flux is not positive).
    """
    fr = _as_stack(frames)
    if not 1 <= int(max_pixels) <= 64:
        raise ValueError(f"max_pixels must be in 1..64; got {max_pixels}")
    if int(bin_frames) < 1:
        raise ValueError(f"bin_frames must be >= 1; got {bin_frames}")
    max_pixels = int(max_pixels)
    bin_frames = int(bin_frames)
    with np.errstate(all="ignore"):
        med_img = np.nanmedian(fr, axis=0) if fr.shape[0] else np.full(64, np.nan)
    ranked = np.where(np.isfinite(med_img), med_img, -np.inf)
    order = np.argsort(-ranked, kind="stable")[:max_pixels]
    sub = fr[:, order].astype(np.float64)
    sub = sub[np.all(np.isfinite(sub), axis=1)]
    nb = sub.shape[0] // bin_frames
    if nb < 8:
        raise ValueError(
            f"optimal_mask needs at least 8 bins of {bin_frames} frames with finite pixels; "
            f"got {sub.shape[0]} usable frames"
        )
    if background is None:
        bg_level = float(np.nanmedian(background_stack(fr.reshape(-1, 8, 8))))
    else:
        bg_level = float(np.nanmedian(np.asarray(background, dtype=np.float64)))
    cs = np.cumsum(sub[: nb * bin_frames], axis=1)
    binned = cs.reshape(nb, bin_frames, max_pixels).mean(axis=1)
    npix = np.arange(1, max_pixels + 1)
    star = np.median(binned, axis=0) - npix * bg_level
    with np.errstate(all="ignore"):
        scatter = np.where(star > 0, _robust_p2p_scatter(binned) / star, np.nan)
    if np.all(np.isnan(scatter)):
        n_best = max_pixels
    else:
        n_best = int(np.nanargmin(scatter)) + 1
    mask = np.zeros(64, dtype=bool)
    mask[order[:n_best]] = True
    return mask.reshape(8, 8), n_best, scatter
