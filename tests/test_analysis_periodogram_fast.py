"""The fast paths of the noise continuum and the conditioning equal straightforward references:
``local_continuum`` (grid cache + compiled fits) against the plain NumPy computation of the same
windows, ``_interp_split`` against ``np.interp``, the per-grid caches against fresh grids,
``detrend.file_rows`` against comparing file names one by one, and to the bit: the compiled
Whittle fit against plain Fisher scoring, the fitted continuum and ``decorrelate_pointing``
against their first, plain versions, the local passes against every pass in full. Seeded,
read-only spectra of the noise kinds the statistics are judged on (white, AR(1), random walk,
lines on top)."""

from __future__ import annotations

import math

import numba
import numpy as np
import polars as pl
import pytest

from fgsarchive.analysis import periodogram as pg
from fgsarchive.analysis.detrend import file_rows


def spectra(seed: int = 3):
    """(power, f0, df, bins per resolution) of a few seeded, read-only noise periodograms."""
    rng = np.random.default_rng(seed)
    out = []
    for nf, bpr, kind in (
        (9000, 5.0, "white"),
        (23_456, 5.0, "ar1"),
        (4321, 2.0, "walk"),
        (777, 10.0, "lines"),
        (60, 1.0, "white"),
    ):
        f0 = float(rng.uniform(1e-4, 1e-3))
        df = f0 / bpr
        f = f0 + df * np.arange(nf)
        shape = {
            "white": np.ones(nf),
            "ar1": 1.0 + 50.0 / (1.0 + (f / (30 * f0)) ** 2),
            "walk": 1.0 + 1e3 * (f0 / f) ** 2,
            "lines": 1.0 + 10.0 / (1.0 + f / (5 * f0)),
        }[kind]
        p = shape * rng.exponential(size=nf)
        if kind == "lines":
            p[[40, 41, 300]] *= 500.0
        p.setflags(write=False)
        out.append((p, f0, df, bpr))
    return out


def reference_local_continuum(power, f0_hz, df_hz, bpr):
    """The local continuum computed directly in NumPy (as before the fast path): element sums,
    cumulative sums, the windowed line fit per evaluation element, np.interp to every bin."""
    p = np.asarray(power, dtype=np.float64)
    nf = p.size
    y = np.log(np.maximum(p, max(float(np.median(p)), 1e-300) * 1e-8))
    y0 = float(y.mean())
    c = max(1, int(round(bpr)))
    m = -(-nf // c)
    pad = m * c - nf
    x = np.log(f0_hz + df_hz * np.arange(m * c))
    x0 = float(x[:nf].mean())
    xs = (x - x0).reshape(m, c)
    w2 = np.concatenate((np.ones(nf), np.zeros(pad))).reshape(m, c)
    cycles0 = f0_hz / (df_hz * bpr)
    e_lin = np.arange(min(m, int(2 * pg.CONTINUUM_MIN_ELEMENTS / pg.CONTINUUM_HALF_WIDTH) + 1))
    start = max(cycles0 + e_lin[-1], 1.0)
    n_log = int(np.ceil(np.log(max((cycles0 + m) / start, 1.0)) / np.log1p(0.01))) + 1
    e_log = np.round(start * (1.01 ** np.arange(n_log)) - cycles0).astype(np.int64)
    e = np.unique(np.clip(np.concatenate((e_lin, e_log, [m - 1])), 0, m - 1))
    fe = f0_hz + df_hz * (e * c + 0.5 * (c - 1))
    half = np.maximum(pg.CONTINUUM_MIN_ELEMENTS, pg.CONTINUUM_HALF_WIDTH * fe / (df_hz * bpr))
    half = np.minimum(np.round(half).astype(np.int64), max(1, (m - 1) // 2))
    lo = np.clip(e - half, 0, np.maximum(m - (2 * half + 1), 0))
    hi = np.minimum(lo + 2 * half + 1, m)
    clo = np.clip(e - pg.CONTINUUM_CORE_ELEMENTS, lo, hi)
    chi = np.clip(e + pg.CONTINUUM_CORE_ELEMENTS + 1, lo, hi)
    xe = np.log(fe) - x0
    at = e * c + 0.5 * (c - 1)

    def window(a):
        q = np.concatenate(([0.0], np.cumsum(a.sum(axis=1))))
        return (q[hi] - q[lo]) - (q[chi] - q[clo])

    s0 = np.maximum(window(w2), 1.0)
    sx = window(xs * w2)
    xm = sx / s0
    vxx = np.maximum(window(xs * xs * w2) - sx * xm, 1e-300)

    def fit(yy):
        ys = np.concatenate((yy - y0, np.zeros(pad))).reshape(m, c)
        ym = window(ys) / s0
        slope = (window(xs * ys) - sx * ym) / vxx
        return np.interp(np.arange(nf), at, ym + slope * (xe - xm) + y0)

    log_cont = fit(y)
    for _ in range(pg.CONTINUUM_PASSES - 1):
        log_cont = fit(np.minimum(y, log_cont + pg._EULER_GAMMA + np.log(pg.CONTINUUM_CLIP)))
    var_e = pg._LOG_EXP_VAR * bpr * (1.0 / s0 + (xe - xm) ** 2 / vxx)
    return np.exp(log_cont + pg._EULER_GAMMA), np.interp(np.arange(nf), at, var_e)


@pytest.mark.parametrize("case", range(5))
def test_local_continuum_equals_the_numpy_reference(case):
    p, f0, df, bpr = spectra()[case]
    cont, var_log = pg.local_continuum(p, f0, df, bpr)
    ref_cont, ref_var = reference_local_continuum(p, f0, df, bpr)
    np.testing.assert_allclose(cont, ref_cont, rtol=1e-12)
    np.testing.assert_allclose(var_log, ref_var, rtol=1e-12)


def test_local_continuum_floor_of_tiny_ordinates_as_the_reference():
    """Ordinates below 1e-8 of the median are floored there (the median is then computed)."""
    p, f0, df, bpr = spectra()[1]
    q = p.copy()
    q[[5, 500, 5000]] = [0.0, 1e-12, 1e-30]
    cont, _v = pg.local_continuum(q, f0, df, bpr)
    np.testing.assert_allclose(cont, reference_local_continuum(q, f0, df, bpr)[0], rtol=1e-12)


def test_interp_split_equals_numpy_interp():
    """Nodes inside, at and beyond the ends of the points, points exactly on nodes."""
    rng = np.random.default_rng(8)
    x = np.sort(rng.uniform(-1.0, 11.0, 5000))
    xp = np.unique(np.concatenate((rng.uniform(0.0, 10.0, 40), x[[100, 2000, 4000]])))
    fp = rng.normal(size=xp.size)
    out = np.empty(x.size)
    pg._interp_split(x, xp, fp, np.searchsorted(x, xp), out)
    np.testing.assert_array_equal(out, np.interp(x, xp, fp))


def test_grid_caches_give_what_fresh_grids_give():
    """Alternating grids (the caches hold one each) and a cleared cache give the same continuum,
    and a grid's cached arrays cannot be written to."""
    cases = spectra()
    first = [pg.noise_continuum(*c) for c in cases]
    again = [pg.noise_continuum(*c) for c in reversed(cases)][::-1]
    pg._local_grid.cache_clear()
    pg._model_grid.cache_clear()
    fresh = [pg.noise_continuum(*c) for c in cases]
    for a, b, c in zip(first, again, fresh, strict=True):
        for i in range(2):
            np.testing.assert_array_equal(a[i], b[i])
            np.testing.assert_array_equal(a[i], c[i])
    p, f0, df, bpr = cases[1]
    with pytest.raises(ValueError):
        pg._local_grid(p.size, f0, df, bpr).var_log[0] = 1.0
    _cont, var_log = pg.local_continuum(p, f0, df, bpr)
    var_log[:] = -1.0  # the caller's copy, not the cache
    assert np.all(pg.local_continuum(p, f0, df, bpr)[1] >= 0)


def test_noise_continuum_is_exp_of_the_chosen_log():
    """noise_continuum takes the model or, where it misfits, the local continuum: per bin one
    of the two, to the bit (the log round trip and the in-place choice change no value)."""
    for p, f0, df, bpr in spectra():
        cont, var_log = pg.noise_continuum(p, f0, df, bpr)
        model, var_model, _theta = pg.fitted_continuum(p, f0, df, bpr)
        local, var_local = pg.local_continuum(p, f0, df, bpr)
        is_local = np.log(local) - pg.MODEL_MISFIT_SIGMA * np.sqrt(var_local) > np.log(model)
        np.testing.assert_array_equal(cont, np.where(is_local, local, model))
        np.testing.assert_array_equal(
            var_log, np.where(is_local, var_local, var_model + pg.MODEL_VAR_FLOOR)
        )


@pytest.mark.parametrize("layout", ["interleaved", "contiguous", "revisited"])
def test_file_rows_equals_comparing_names(layout):
    """Files interleaved (hash grouping), in contiguous runs (run ids), and a file coming back
    after another (runs that are not files)."""
    rng = np.random.default_rng(2)
    pick = rng.integers(0, 3, 500)
    if layout == "contiguous":
        pick = np.sort(pick)
    elif layout == "revisited":
        pick = np.concatenate((np.zeros(100, int), np.ones(50, int), np.zeros(30, int), [2]))
    names = np.array(["b.fits", "a.fits", "c.fits"])[pick]
    rows = pl.DataFrame({"file_name": names})
    got = file_rows(rows)
    want = [np.flatnonzero(names == n) for n in dict.fromkeys(names.tolist())]
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert file_rows(rows.head(0)) == []


def test_spike_mask_equals_its_plain_definition():
    """Compiled path (finite series) and NumPy path (with NaN) agree with |v - median of five| >
    SPIKE_SIGMA x diff noise, written out here."""
    from fgsarchive.analysis.anomalies import SPIKE_SIGMA
    from fgsarchive.analysis.detrend import despike, diff_noise
    from fgsarchive.analysis.periodogram import spike_mask

    rng = np.random.default_rng(11)
    v = rng.normal(0.0, 1.0, 5000)
    hits = rng.choice(v.size, 40, replace=False)
    v[hits] += rng.choice([-1, 1], hits.size) * rng.uniform(3, 30, hits.size)
    expected = np.abs(v - despike(v)) > SPIKE_SIGMA * diff_noise(v)
    got = spike_mask(v)
    assert got.sum() >= 20 and np.array_equal(got, expected)
    w = v.copy()
    w[100:110] = np.nan
    assert np.array_equal(spike_mask(w), np.abs(w - despike(w)) > SPIKE_SIGMA * diff_noise(w))


def _lines_reference(peaks: pl.DataFrame, rel_tol: float, min_stars: int) -> list[tuple]:
    """The greedy line clustering written out plainly: every window recounted every round."""
    df = peaks.filter(pl.col("fap") <= 0.01).sort("frequency_hz")
    logf = np.log(df["frequency_hz"].to_numpy())
    power = df["power"].to_numpy()
    star = np.unique(df["gs_id"].to_numpy(), return_inverse=True)[1]
    half = np.log1p(rel_tol)
    alive = np.ones(logf.size, dtype=bool)
    out = []
    while True:
        idx = np.flatnonzero(alive)
        if idx.size < min_stars:
            break
        lf = logf[idx]
        lo = np.searchsorted(lf, lf - half, side="left")
        hi = np.searchsorted(lf, lf + half, side="right")
        nstars = np.array(
            [
                np.unique(star[idx[a:b]]).size if b - a >= min_stars else 0
                for a, b in zip(lo, hi, strict=True)
            ]
        )
        best = int(np.lexsort((-power[idx], -nstars))[0])
        if nstars[best] < min_stars:
            break
        members = idx[lo[best] : hi[best]]
        alive[members] = False
        f = np.exp(logf[members])
        out.append((float(np.median(f)), int(np.unique(star[members]).size), int(members.size)))
    return sorted(out, key=lambda r: (-r[1], r[0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_instrumental_lines_equal_the_plain_greedy_clustering(seed):
    """Counts updated only where peaks were removed give the lines of recounting everything."""
    from fgsarchive.analysis.periodogram import instrumental_lines

    rng = np.random.default_rng(seed)
    n = 3000
    true_lines = rng.uniform(0.01, 5.0, 25)
    freq = np.where(
        rng.random(n) < 0.6,
        rng.choice(true_lines, n) * (1 + rng.normal(0, 0.003, n)),
        rng.uniform(0.005, 7.0, n),
    )
    peaks = pl.DataFrame(
        {
            "gs_id": rng.choice([f"S{i}" for i in range(40)], n),
            "frequency_hz": freq,
            "power": rng.uniform(0, 1, n).round(2),  # ties, as the lexsort must break them
            "fap": rng.choice([1e-5, 1e-3, 0.5], n),
        }
    )
    got = instrumental_lines(peaks, rel_tol=0.01, min_stars=3, max_fap=0.01)
    expected = _lines_reference(peaks, 0.01, 3)
    assert len(expected) >= 10
    assert list(zip(got["frequency_hz"], got["n_stars"], got["n_peaks"], strict=True)) == expected


# --- the compiled continuum kernels against their plain versions, to the bit ---------------


@numba.njit(cache=False)
def _plain_nll(fb, pbar, weight, theta, g):
    """Whittle's -log likelihood and d log S / d theta written out (as ``_model_terms``)."""
    w, a = np.exp(theta[0]), np.exp(theta[1])
    lk, alpha = theta[2], theta[3]
    n = fb.size
    q = np.empty(n)
    total = 0.0
    for i in range(n):
        lr = np.log(fb[i]) - lk
        u = np.exp(min(max(alpha * lr, -700.0), 700.0))
        red = a / (1.0 + u)
        sv = w + red
        g[0, i] = w / sv
        g[1, i] = red / sv
        dred = red * u / (1.0 + u) / sv
        g[2, i] = dred * alpha
        g[3, i] = -dred * lr
        ls = np.log(sv)
        q[i] = pbar[i] * np.exp(-ls)
        total += weight[i] * (ls + q[i])
    return total, q


@numba.njit(cache=False)
def _plain_whittle_fit(fb, pbar, weight, theta0, lo, hi, iterations):
    """Fisher scoring as first written: every candidate of the line search evaluated in full,
    each score and Fisher element summed in its own pass over the bins."""
    n = fb.size
    theta = np.minimum(np.maximum(theta0, lo), hi)
    g = np.empty((4, n))
    g2 = np.empty((4, n))
    val, q = _plain_nll(fb, pbar, weight, theta, g)
    for _ in range(iterations):
        score = np.zeros(4)
        fisher = np.zeros((4, 4))
        for k in range(4):
            for i in range(n):
                score[k] += g[k, i] * weight[i] * (q[i] - 1.0)
            for m in range(4):
                for i in range(n):
                    fisher[k, m] += g[k, i] * weight[i] * g[m, i]
        d = np.empty(4)
        for k in range(4):
            d[k] = np.sqrt(max(fisher[k, k], 1e-300))
        step = (np.linalg.pinv(fisher / np.outer(d, d), 1e-9) @ (score / d)) / d
        t = 1.0
        accepted = False
        v2 = val
        cand = theta
        q2 = q
        for _ls in range(12):
            cand = np.minimum(np.maximum(theta + t * step, lo), hi)
            v2, q2 = _plain_nll(fb, pbar, weight, cand, g2)
            if v2 <= val:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        done = val - v2 < 1e-4
        theta, val, q = cand, v2, q2
        g, g2 = g2, g
        if done:
            break
    return theta, val


def _whittle_cases():
    """(fb, pbar, weight, theta0, lo, hi) of binned seeded spectra with starts near and far,
    elements left out (zero weights) and a bin of zero power (no early stop possible)."""
    out = []
    for p, f0, df, bpr in spectra():
        bpr = max(bpr, 1.0)
        grid = pg._model_grid(p.size, f0, df, bpr)
        pbar = np.add.reduceat(p, grid.edges) / grid.count
        w0 = float(np.median(p)) / np.log(2.0)
        lo = np.array([np.log(w0) - 10, np.log(w0) - 25, np.log(grid.fb[0]) - 3, 1.0])
        hi = np.array([np.log(w0) + 10, np.log(w0) + 40, np.log(grid.fb[-1]), 2.0])
        n_out = grid.n_ind.copy()
        n_out[2:5] = 0.0
        zero = pbar.copy()
        zero[min(7, zero.size - 1)] = 0.0
        for alpha0 in (1.0, 1.5, 2.0):
            for lk0 in (np.log(grid.fb[0]), np.log(grid.fb[grid.fb.size // 3])):
                theta0 = np.array([np.log(w0), np.log(w0) + 2, lk0, alpha0])
                out.append((grid.fb, pbar, grid.n_ind, theta0, lo, hi))
                out.append((grid.fb, pbar, n_out, theta0, lo, hi))
                out.append((grid.fb, zero, grid.n_ind, theta0, lo, hi))
    return out


def test_whittle_fit_equals_the_plain_fisher_scoring():
    """Abandoned line-search candidates, the fused score/Fisher pass and the kept terms change
    no step: theta and the likelihood equal the plain loop's to the bit."""
    cases = _whittle_cases()
    assert len(cases) >= 60
    for fb, pbar, weight, theta0, lo, hi in cases:
        want = _plain_whittle_fit(fb, pbar, weight, theta0, lo, hi, 40)
        got = pg._whittle_fit_compiled(fb, pbar, weight, theta0, lo, hi, 40)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1] == want[1]


def test_whittle_candidates_are_abandoned_only_when_bound_to_fail():
    """The tail bound is a lower bound of the remaining terms: at any theta, the partial sums
    plus it never exceed the full -log likelihood (beyond the margin), and a zero ordinate
    switches it off."""
    rng = np.random.default_rng(5)
    for fb, pbar, weight, _theta0, lo, hi in _whittle_cases()[:36]:
        tail, margin = pg._whittle_tail(pbar, weight, lo, hi)
        if pbar.min() <= 0:
            assert np.all(tail == -np.inf) and margin == 0.0
            continue
        assert margin > 0
        n = fb.size
        scratch = [np.empty(n) for _ in range(4)]
        lfb = np.array([math.log(v) for v in fb])  # the C library's log, as compiled code
        for _ in range(20):
            theta = lo + (hi - lo) * rng.random(4)
            full = pg._whittle_terms(lfb, pbar, weight, theta, tail, np.inf, *scratch)
            g = np.empty((4, n))
            assert full == _plain_nll(fb, pbar, weight, theta, g)[0]
            terms = weight * (np.log(scratch[2]) + scratch[3])
            partial = np.cumsum(terms)
            assert np.all(partial + tail[1:] <= full + margin)
            # a limit below the full sum abandons; at or above it, the full sum comes back
            assert (
                pg._whittle_terms(
                    np.log(fb), pbar, weight, theta, tail, full - 10 * margin - 1.0, *scratch
                )
                == np.inf
            )
            assert (
                pg._whittle_terms(lfb, pbar, weight, theta, tail, full + margin, *scratch) == full
            )


def reference_fitted_log_continuum(power, f0_hz, df_hz, bpr):
    """``_fitted_log_continuum`` as first written: np.median, every fit from its starts with the
    plain Fisher scoring (no reuse), every ordinate clipped with np.minimum, each leave-out
    element tested on its own."""
    p = np.asarray(power, dtype=np.float64)
    nf = p.size
    bpr = max(float(bpr), 1.0)
    grid = pg._model_grid(nf, float(f0_hz), float(df_hz), bpr)
    c, f, edges, count, fb, n_ind = grid.c, grid.f, grid.edges, grid.count, grid.fb, grid.n_ind
    pos = p if nf and p.min() > 0 else p[p > 0]
    w0 = max(float(np.median(pos[pos.size // 2 :]) / np.log(2.0)), 1e-300)
    pbar = np.add.reduceat(p, edges) / count
    a0 = max(float(np.mean(pbar[: min(3, pbar.size)])) - w0, 1e-3 * w0)
    half = np.flatnonzero(pbar < w0 + 0.5 * a0)
    fk0 = float(fb[half[0]]) if half.size else float(fb[-1])
    lf0, lf1 = np.log(fb[0]), np.log(fb[-1])
    bounds = [
        (np.log(w0) - 10.0, np.log(w0) + 10.0),
        (np.log(w0) - 25.0, np.log(w0) + 40.0),
        (lf0 - 3.0, lf1),
        pg.MODEL_SLOPES,
    ]
    lo = np.array([b[0] for b in bounds], dtype=np.float64)
    hi = np.array([b[1] for b in bounds], dtype=np.float64)

    def fit(pbar, weight, start=None, warm_only=False):
        w_white = float(np.sum(weight * pbar) / max(np.sum(weight), 1e-300))
        nll_white = float(np.sum(weight * (np.log(w_white) + pbar / w_white)))
        starts = [start] if start is not None else []
        for alpha0 in () if warm_only and start is not None else pg.MODEL_SLOPES:
            starts.append(
                np.array([np.log(w0), np.log(a0), np.clip(np.log(fk0), lf0, lf1), alpha0])
            )
        best, best_nll = None, np.inf
        for theta0 in starts:
            th, val = _plain_whittle_fit(fb, pbar, weight, np.asarray(theta0, float), lo, hi, 40)
            if val < best_nll:
                best, best_nll = th, val
        if nll_white - best_nll < pg.MODEL_SELECT_NLL:
            lw = float(np.clip(np.log(w_white), *bounds[0]))
            return np.array([lw, bounds[1][0], lf0, pg.MODEL_SLOPES[0]])
        return best

    theta = fit(pbar, n_ind)
    for _ in range(pg.CONTINUUM_PASSES - 1):
        log_s = pg._model_and_var(f, fb, n_ind, theta, bounds, grid=grid, with_var=False)[0]
        clipped = np.minimum(p, pg.CONTINUUM_CLIP * np.exp(log_s))
        pbar = np.add.reduceat(clipped, edges) / count
        theta = fit(pbar, n_ind, theta if theta[1] > bounds[1][0] else None, warm_only=True)
    log_s, var_log = pg._model_and_var(f, fb, n_ind, theta, bounds, grid=grid)
    core = pg.MODEL_LEAVE_OUT_CORE
    for e in range(min(pg.MODEL_LEAVE_OUT_ELEMENTS, grid.n_lin - core)):
        a, b = e * c, min((e + 1) * c, nf)
        if not np.any(p[a:b] > pg.MODEL_LEAVE_OUT_RATIO * np.exp(log_s[a:b])):
            continue
        n_out = np.array(n_ind)
        n_out[max(0, e - core) : e + core + 1] = 0.0
        th = fit(pbar, n_out, theta if theta[1] > bounds[1][0] else None, warm_only=True)
        log_s[a:b], var_log[a:b] = pg._model_and_var(f[a:b], fb, n_out, th, bounds)
    return log_s, var_log, theta


@pytest.mark.parametrize("case", range(5))
def test_fitted_continuum_equals_the_plain_computation(case):
    """Reused fits, the one-partition median, the candidate clipping and the compiled fits
    give the plain computation's continuum, variance and parameters to the bit (white and red
    spectra, lines, and a white one with nothing to clip, whose passes repeat the first fit)."""
    p, f0, df, bpr = spectra()[case]
    got = pg._fitted_log_continuum(p, f0, df, bpr)
    want = reference_fitted_log_continuum(p, f0, df, bpr)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_local_passes_equal_every_pass_in_full():
    """The passes that resum only the elements holding a clipped ordinate equal three full
    passes to the bit (strong lines: the clipping acts), and non-finite ordinates take the full
    passes (NaN where they fall, as before)."""
    for p, f0, df, bpr in spectra():
        q = p.copy()
        q[[3, p.size // 2, p.size // 2 + 1, p.size - 2]] *= 1e4  # lines to clip
        g = pg._local_grid(q.size, f0, df, bpr)
        y = np.log(q)
        y0 = float(y.mean())
        clip = pg._EULER_GAMMA + np.log(pg.CONTINUUM_CLIP)
        fast = np.empty(q.size)
        args = (g.xs, g.lo, g.hi, g.clo, g.chi, g.s0, g.sx, g.vxx, g.xe, g.xm, g.at, g.bins)
        pg._local_passes(y, y0, clip, 3, 0.25, *args, g.split, fast)
        full = np.empty(q.size)
        pg._local_passes_full(y, y0, clip, 3, *args, g.split, full)
        np.testing.assert_array_equal(fast, full + 0.25)
        one = np.empty(q.size)
        pg._local_passes_full(y, y0, clip, 1, *args, g.split, one)
        assert not np.array_equal(one, full)  # the later passes clipped something
        bad = y.copy()
        bad[q.size // 3] = np.nan
        pg._local_passes(bad, y0, clip, 3, 0.0, *args, g.split, fast)
        pg._local_passes_full(bad, y0, clip, 3, *args, g.split, full)
        np.testing.assert_array_equal(fast, full)
        assert np.isnan(fast).any()


def _plain_decorrelate(rows, values, widths=False, bin_frames=64):
    """``decorrelate_pointing`` as first written: np.median, always four clipping passes."""
    from fgsarchive.analysis.detrend import MIN_DECORRELATION_FRAMES, _least_squares

    out = np.array(values, dtype=np.float64, copy=True)
    regressors = [rows["x_mean"].to_numpy(), rows["y_mean"].to_numpy()]
    if widths:
        regressors += [rows["x_stddev"].to_numpy(), rows["y_stddev"].to_numpy()]
    ok = np.isfinite(out)
    for r in regressors:
        ok &= np.isfinite(r)

    def design(cols):
        dx, dy = cols[0], cols[1]
        return np.column_stack((np.ones(dx.size), dx, dy, dx * dx, dy * dy, dx * dy, *cols[2:]))

    for in_file in file_rows(rows):
        idx = in_file[ok[in_file]]
        if idx.size < MIN_DECORRELATION_FRAMES:
            continue
        m = idx.size // bin_frames * bin_frames
        centred = [r[idx] - np.median(r[idx]) for r in regressors]
        full = design(centred)
        if bin_frames == 1:
            bv, xb = out[idx], full
        else:
            bv = out[idx[:m]].reshape(-1, bin_frames).mean(axis=1)
            xb = design([c[:m].reshape(-1, bin_frames).mean(axis=1) for c in centred])
        keep = np.ones(bv.size, dtype=bool)
        coef = None
        for _ in range(4):
            if keep.sum() < 2 * xb.shape[1]:
                break
            coef = _least_squares(xb[keep], bv[keep])
            resid = bv - xb @ coef
            r = resid[keep]
            scatter = 1.4826 * np.median(np.abs(r - np.median(r)))
            if not scatter > 0:
                break
            keep = np.abs(resid - np.median(r)) < 4.0 * scatter
        if coef is not None and np.all(np.isfinite(coef)):
            out[idx] = out[idx] - full[:, 1:] @ coef[1:]
    return out


@pytest.mark.parametrize("bin_frames", [1, 64])
def test_decorrelate_pointing_equals_four_plain_passes(bin_frames):
    """Stopping the clipping passes once the kept bins repeat, and the one-partition medians,
    give the plain four passes' flux to the bit: files with flux drops (bins clipped over
    several passes), NaN frames, an odd and an even count of frames, a file too short."""
    from fgsarchive.analysis.detrend import decorrelate_pointing

    rng = np.random.default_rng(4)
    sizes = (9001, 12_800, 300, 20_000)
    n = sum(sizes)
    x = 0.02 * np.cumsum(rng.normal(0, 0.01, n)) + 0.01 * np.sin(np.arange(n) / 7.0)
    y = 0.02 * np.cumsum(rng.normal(0, 0.01, n))
    sx = 0.64 + 0.002 * rng.normal(size=n)
    sy = 0.60 + 0.002 * rng.normal(size=n)
    flux = 1e5 * (1 - 0.3 * x**2 - 0.2 * y**2 + 0.05 * (sx - 0.64)) + rng.normal(0, 30, n)
    for start in rng.integers(0, n - 2000, 12):
        flux[start : start + int(rng.integers(50, 1500))] *= 0.97  # drops
    flux[rng.integers(0, n, 40)] = np.nan
    rows = pl.DataFrame(
        {
            "file_name": np.repeat([f"f{i}.fits" for i in range(len(sizes))], sizes),
            "x_mean": x,
            "y_mean": y,
            "x_stddev": sx,
            "y_stddev": sy,
        }
    )
    got = decorrelate_pointing(rows, flux, widths=True, bin_frames=bin_frames)
    want = _plain_decorrelate(rows, flux, widths=True, bin_frames=bin_frames)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, flux)  # the fit acted
