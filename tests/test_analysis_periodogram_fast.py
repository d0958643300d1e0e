"""The fast paths of the noise continuum and the conditioning equal straightforward references:
``local_continuum`` (grid cache + compiled fits) against the plain NumPy computation of the same
windows, ``_interp_split`` against ``np.interp``, the per-grid caches against fresh grids, and
``detrend.file_rows`` against comparing file names one by one. Seeded, read-only spectra of the
noise kinds the statistics are judged on (white, AR(1), random walk, lines on top)."""

from __future__ import annotations

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
    of the two (the log round trip of the fast path changes no value)."""
    for p, f0, df, bpr in spectra():
        cont, var_log = pg.noise_continuum(p, f0, df, bpr)
        model, var_model, _theta = pg.fitted_continuum(p, f0, df, bpr)
        local, var_local = pg.local_continuum(p, f0, df, bpr)
        is_local = np.log(local) - pg.MODEL_MISFIT_SIGMA * np.sqrt(var_local) > np.log(model)
        np.testing.assert_allclose(cont, np.where(is_local, local, model), rtol=1e-14)
        np.testing.assert_allclose(
            var_log, np.where(is_local, var_local, var_model + pg.MODEL_VAR_FLOOR), rtol=1e-14
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
