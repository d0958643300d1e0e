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
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

__all__ = [
    "DEFAULT_RADII",
    "aperture_photometry_stack",
    "background_stack",
    "default_threads",
    "masked_flux",
    "optimal_mask",
    "pixel_overlap_areas",
]

#: Aperture radii (px) of the ``photometry`` table's ``flux_r1, flux_r2, flux_r3`` columns.
DEFAULT_RADII: tuple[float, float, float] = (1.5, 2.5, 3.5)

#: Pixels closer than this to the star's (brightest non-spike) pixel are left out of the background (px).
DEFAULT_EXCLUDE_RADIUS = 3.0

_CHUNK = 1024  # frames per work item


def default_threads() -> int:
    """Threads used when ``n_threads`` is None: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_chunks(
    kernel: Callable[..., None], n: int, chunk: int, n_threads: int | None, *args
) -> None:
    """Run ``kernel(*args, ch_lo, ch_hi)`` over the chunks of ``n`` frames on ``n_threads``.

    The kernels are numba ``nogil`` functions that work chunk by chunk, so plain Python threads
    run them in parallel; results never depend on the number of threads. (No numba threading
    layer is involved: nothing here breaks a later ``fork``.)
    """
    threads = default_threads() if n_threads is None else int(n_threads)
    if threads < 1:
        raise ValueError(f"n_threads must be >= 1; got {n_threads}")
    nch = (n + chunk - 1) // chunk
    if nch == 0:
        return
    if threads == 1 or nch == 1:
        kernel(*args, 0, nch)
        return
    pieces = min(nch, 4 * threads)
    bounds = [nch * k // pieces for k in range(pieces + 1)]
    with ThreadPoolExecutor(max_workers=min(threads, pieces)) as pool:
        futures = [
            pool.submit(kernel, *args, lo, hi)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
            if hi > lo
        ]
        for f in futures:
            f.result()


# --------------------------------------------------------------------------------------------
# background
# --------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _rank_sort(buf, out, m):
    """Sort ``buf[:m]`` into ``out[:m]`` by counting each value's rank: O(m^2) comparisons, but
    branch-free and vectorised, faster than comparison sorts for the <= 64 values of a frame."""
    for i in range(m):
        vi = buf[i]
        r = 0
        for j in range(m):
            vj = buf[j]
            r += (vj < vi) + ((vj == vi) & (j < i))
        out[r] = vi


@njit(cache=True, error_model="numpy", inline="always")
def _sorted_quantile(srt, m, q):
    pos = q * (m - 1)
    lo = int(pos)
    if lo >= m - 1:
        return srt[m - 1]
    f = pos - lo
    return srt[lo] * (1.0 - f) + srt[lo + 1] * f


@njit(cache=True, error_model="numpy")
def _background_one(row, buf, r_excl2):
    """Robust background of one frame (``row``: 64 pixels, NaN = invalid; ``buf``: 128 floats).

    Pixels farther than ``sqrt(r_excl2)`` from the star's pixel (the brightest pixel that
    is not a lone spike) are kept; their median
    and the lower-half scatter ``median - P15.87`` give a 3-sigma clip window, and the mean
    of the pixels inside it is returned. Returns ``(background, sigma, n_used)``; NaNs and
    ``n_used = 0`` when the frame has no finite pixel.
    """
    # the star's pixel: the brightest pixel that is not a lone spike (hot pixel, cosmic ray),
    # i.e. whose brightest edge neighbour rises above the frame minimum by >= 2% of its own rise
    vmin = np.inf
    for k in range(64):
        if row[k] < vmin:
            vmin = row[k]
    if not vmin < np.inf:
        return np.nan, np.nan, 0
    kmax = -1
    s0 = -1
    s1 = -1
    s2 = -1
    for attempt in range(4):
        kmax = -1
        vmax = -np.inf
        for k in range(64):
            v = row[k]
            if v > vmax and k != s0 and k != s1 and k != s2:
                vmax = v
                kmax = k
        if kmax < 0 or attempt == 3:
            break
        x = kmax % 8
        y = kmax // 8
        nb = -np.inf
        if x > 0 and row[kmax - 1] > nb:
            nb = row[kmax - 1]
        if x < 7 and row[kmax + 1] > nb:
            nb = row[kmax + 1]
        if y > 0 and row[kmax - 8] > nb:
            nb = row[kmax - 8]
        if y < 7 and row[kmax + 8] > nb:
            nb = row[kmax + 8]
        if nb - vmin >= 0.02 * (vmax - vmin):
            break
        if attempt == 0:
            s0 = kmax
        elif attempt == 1:
            s1 = kmax
        else:
            s2 = kmax
    if kmax < 0:
        kmax = s0
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
    srt = buf[64:]
    _rank_sort(buf, srt, m)
    med = _sorted_quantile(srt, m, 0.5)
    sig = med - _sorted_quantile(srt, m, 0.15865525393145707)
    if not sig > 0.0:
        return med, 0.0, m
    lo = med - 3.0 * sig
    hi = med + 3.0 * sig
    s = 0.0
    c = 0
    for i in range(m):
        v = srt[i]
        ok = v >= lo and v <= hi
        s += v if ok else 0.0
        c += ok
    return s / c, sig, c


@njit(cache=True, error_model="numpy", nogil=True)
def _background_kernel(fr, r_excl2, out_bg, out_sig, ch_lo, ch_hi):
    n = fr.shape[0]
    for ch in range(ch_lo, ch_hi):
        buf = np.empty(128)
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
    n_threads: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Robust per-frame background level (counts per pixel).

    For each frame, the finite pixels farther than ``exclude_radius`` px from the star's pixel
    are kept: the brightest pixel that is not a lone spike (up to three hot pixels or cosmic
    rays brighter than the star, whose edge neighbours stay within 2% of their rise above the
    frame minimum, are skipped); their median and lower-half scatter (``median - 15.87th percentile``,
    insensitive to the star's wings, which only add positive values) define a 3-sigma window,
    and the background is the mean of the kept pixels inside it. With fewer than 8 such
    pixels all finite pixels are used. All-NaN frames give NaN.

    Returns ``background`` of shape ``(n,)`` (float64), or ``(background, sigma)`` with
    ``return_sigma=True`` where ``sigma`` is the robust per-pixel scatter of the background.
    ``n_threads``: threads to use (default :func:`default_threads`).
    """
    fr = _as_stack(frames)
    n = fr.shape[0]
    bg = np.empty(n)
    sig = np.empty(n)
    _run_chunks(_background_kernel, n, _CHUNK, n_threads, fr, float(exclude_radius) ** 2, bg, sig)
    return (bg, sig) if return_sigma else bg


# --------------------------------------------------------------------------------------------
# exact circle / pixel overlap areas
# --------------------------------------------------------------------------------------------


# asin(x) = x + x^3 * poly(x^2) on [0, 0.5]: our least-squares fit (relative error <= 2.3e-16),
# branch-free so that the edge loops vectorise.
_A0 = 0.16666666666666646
_A1 = 0.07500000000021978
_A2 = 0.04464285710146497
_A3 = 0.030381947490254527
_A4 = 0.022372043664706378
_A5 = 0.017355334434132383
_A6 = 0.013928781847841392
_A7 = 0.011882032645784928
_A8 = 0.0077714397645414456
_A9 = 0.016129764409156828
_A10 = -0.010908304349000406
_A11 = 0.028285381520428275


@njit(cache=True, error_model="numpy", inline="always")
def _asin_half(x):
    """asin(x) for 0 <= x <= 0.5."""
    z = x * x
    p = _A11
    p = p * z + _A10
    p = p * z + _A9
    p = p * z + _A8
    p = p * z + _A7
    p = p * z + _A6
    p = p * z + _A5
    p = p * z + _A4
    p = p * z + _A3
    p = p * z + _A2
    p = p * z + _A1
    p = p * z + _A0
    return x + x * z * p


@njit(cache=True, error_model="numpy")
def _corner_terms(xc, yc, r, hc, sg, tt, pp, ss):
    """``hc[j, i]`` = signed area of the disc (xc, yc, r) in the rectangle spanned by its centre
    and the pixel corner (i - 0.5, j - 0.5).

    With u' = min(|u|, r), v' = min(|v|, r) (offsets of the corner from the centre), the area
    of the quarter disc inside [0, u'] x [0, v'] is u' v' when the corner is inside the circle,
    else P(u') - S(v'), where P(t) is the integral of sqrt(r^2 - s^2) over [0, t] and
    S(t) = pi r^2 / 4 - P(t); the sign is sign(u) sign(v). A pixel's area is the second
    difference of hc over its four corners. Near t = r the thin segment S is computed directly
    from ``r - t`` (exact there), so no precision is lost to the square-root singularity; every
    arcsine argument is <= 1/2. Work arrays: 18 entries each (9 column + 9 row edges).
    """
    for i in range(18):
        u = (i - 0.5 - xc) if i < 9 else (i - 9.5 - yc)
        sg[i] = 1.0 if u > 0 else (-1.0 if u < 0 else 0.0)
        tt[i] = min(abs(u), r)
    quarter = 0.25 * math.pi * r * r
    r2 = r * r
    inv_r = 1.0 / r if r > 0.0 else 0.0
    for i in range(18):
        t = tt[i]
        d = r - t
        low = t < 0.5 * r
        x = t * inv_r if low else math.sqrt(0.5 * d * inv_r)
        a = _asin_half(x)
        th = t * math.sqrt(d * (r + t))
        p_low = 0.5 * (th + r2 * a)
        s_high = r2 * a - 0.5 * th
        pp[i] = p_low if low else quarter - s_high
        ss[i] = quarter - p_low if low else s_high
    for j in range(9):
        vp = tt[9 + j]
        sj = ss[9 + j]
        s = sg[9 + j]
        for i in range(9):
            up = tt[i]
            q = up * vp if up * up + vp * vp <= r2 else pp[i] - sj
            hc[j, i] = s * sg[i] * q


@njit(cache=True, error_model="numpy")
def _areas_from_corners(hc, area):
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
    hc = np.empty((9, 9))
    w = [np.empty(18) for _ in range(4)]
    _corner_terms(float(x), float(y), float(radius), hc, *w)
    _areas_from_corners(hc, area)
    return area.reshape(8, 8)


@njit(cache=True, error_model="numpy", nogil=True)
def _aperture_kernel(fr, xs, ys, radii, bg, out, ch_lo, ch_hi):
    n = fr.shape[0]
    nr = radii.shape[0]
    for ch in range(ch_lo, ch_hi):
        area = np.empty(64)
        e = np.empty(64)
        dd = np.empty((9, 9))
        hc = np.empty((9, 9))
        sg = np.empty(18)
        tt = np.empty(18)
        pp = np.empty(18)
        ss = np.empty(18)
        for i in range(ch * _CHUNK, min(n, (ch + 1) * _CHUNK)):
            xc = xs[i]
            yc = ys[i]
            b = bg[i]
            if not (np.isfinite(xc) and np.isfinite(yc) and np.isfinite(b)):
                for k in range(nr):
                    out[i, k] = np.nan
                continue
            finite = True
            for p in range(64):
                v = fr[i, p] - b
                e[p] = v
                finite &= abs(v) < np.inf
            if finite:
                # sum_p area_p e_p = sum_corners hc * (second difference of e, zero-padded)
                for j in range(9):
                    for c in range(9):
                        acc = 0.0
                        if j > 0 and c > 0:
                            acc += e[8 * (j - 1) + c - 1]
                        if j > 0 and c < 8:
                            acc -= e[8 * (j - 1) + c]
                        if j < 8 and c > 0:
                            acc -= e[8 * j + c - 1]
                        if j < 8 and c < 8:
                            acc += e[8 * j + c]
                        dd[j, c] = acc
            for k in range(nr):
                _corner_terms(xc, yc, radii[k], hc, sg, tt, pp, ss)
                s = 0.0
                if finite:
                    for j in range(9):
                        for c in range(9):
                            s += hc[j, c] * dd[j, c]
                else:
                    _areas_from_corners(hc, area)
                    for p in range(64):
                        a = area[p]
                        s += a * e[p] if a != 0.0 else 0.0  # NaNs outside do not matter
                out[i, k] = s


def aperture_photometry_stack(
    frames: np.ndarray,
    x: np.ndarray | float,
    y: np.ndarray | float,
    radii: Sequence[float] = DEFAULT_RADII,
    *,
    background: np.ndarray | float | None = None,
    n_threads: int | None = None,
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
    n_threads : threads to use (default :func:`default_threads`).

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
        bg = background_stack(fr.reshape(n, 8, 8), n_threads=n_threads)
    else:
        bg = np.ascontiguousarray(np.broadcast_to(np.asarray(background, dtype=np.float64), (n,)))
    out = np.empty((n, r.size))
    _run_chunks(_aperture_kernel, n, _CHUNK, n_threads, fr, xs, ys, r, bg, out)
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
