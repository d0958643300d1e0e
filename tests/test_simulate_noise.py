"""The simulator's correlated noise and short gapped guide periods have the statistics asked."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from fgsarchive import simulate as sim

DT = 0.064


def _acf1(x: np.ndarray) -> float:
    x = x - x.mean()
    return float(np.dot(x[:-1], x[1:]) / np.dot(x, x))


def _many(c: sim.CorrelatedNoise, rms: float, n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([sim.noise_series(c, n, DT, rms, rng) for _ in range(k)])


# --- the processes themselves (fast, many realisations) ---


@pytest.mark.parametrize("tau_s", [0.5, 5.0])
def test_ar1_lag1_autocorrelation_and_variance(tau_s: float) -> None:
    c = sim.CorrelatedNoise("x", "ar1", rms=0.02, tau_s=tau_s)
    x = _many(c, 0.02, 20_000, 40, seed=1)
    acf = np.mean([_acf1(r) for r in x])
    # the sample lag-1 autocorrelation is biased low by ~(1 + phi) / N_eff; tiny here
    assert acf == pytest.approx(math.exp(-DT / tau_s), abs=0.004)
    assert np.sqrt(np.mean(x**2)) == pytest.approx(0.02, rel=0.05)


def test_random_walk_variance_grows_linearly_with_lag() -> None:
    c = sim.CorrelatedNoise("flux", "random_walk", rms=0.01, tau_s=60.0)
    x = _many(c, 0.01, 8000, 60, seed=2)
    assert np.all(x[:, 0] == 0.0)  # starts at 0 at every guide period
    lag_s = {}
    for lag in (10, 100, 1000):
        d = x[:, lag:] - x[:, :-lag]
        lag_s[lag] = float(np.mean(d**2))
    # variance of the change over tau_s is rms^2, so over L frames it is rms^2 L dt / tau
    for lag, v in lag_s.items():
        assert v == pytest.approx(0.01**2 * lag * DT / 60.0, rel=0.15), lag
    assert lag_s[1000] / lag_s[10] == pytest.approx(100, rel=0.2)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_power_law_spectrum_slope_and_rms(alpha: float) -> None:
    c = sim.CorrelatedNoise("width", "power_law", rms=0.01, alpha=alpha)
    n = 4096
    x = _many(c, 0.01, n, 400, seed=3)  # steep spectra: the lowest bins hold most variance
    assert np.sqrt(np.mean(x**2)) == pytest.approx(0.01, rel=0.06)
    p = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0)
    f = np.fft.rfftfreq(n)
    sel = (f > 2e-3) & (f < 0.2)
    slope = np.polyfit(np.log(f[sel]), np.log(p[sel]), 1)[0]
    assert slope == pytest.approx(-alpha, abs=0.1)


def test_white_component_is_uncorrelated() -> None:
    c = sim.CorrelatedNoise("flux", "white", rms=0.003)
    x = _many(c, 0.003, 20_000, 5, seed=4)
    assert abs(np.mean([_acf1(r) for r in x])) < 0.01
    assert x.std() == pytest.approx(0.003, rel=0.02)


def test_bad_components_and_presets_say_what() -> None:
    with pytest.raises(ValueError, match="exactly one of share= or rms="):
        sim.CorrelatedNoise("x", "ar1")
    with pytest.raises(ValueError, match="exactly one"):
        sim.CorrelatedNoise("x", "ar1", share=0.1, rms=0.1)
    with pytest.raises(ValueError, match="share must be in"):
        sim.CorrelatedNoise("x", "ar1", share=1.0)
    with pytest.raises(ValueError, match="quantity"):
        sim.CorrelatedNoise("z", "ar1", rms=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tau_s"):
        sim.CorrelatedNoise("x", "random_walk", rms=0.1, tau_s=0.0)
    with pytest.raises(ValueError, match="unknown noise preset 'pink'; presets: white, ar1"):
        sim.resolve_noise("pink")
    assert sim.resolve_noise("white") == () == sim.resolve_noise(None)
    kinds = {c.kind for c in sim.resolve_noise("realistic")}
    assert {"ar1", "random_walk", "power_law"} <= kinds


# --- through simulate_program: truth, flux, gaps, seeds ---


def _sim(tmp_path, name: str, **kw) -> tuple[sim.SimulatedProgram, pl.DataFrame]:
    args = dict(
        n_visits=2,
        files_per_visit=2,
        frames_per_file=6000,
        include_other_products=False,
        jitter_scale=0.0,
        cosmic_ray_rate=0.0,
        nan_pixel_rate=0.0,
        seed=11,
    )
    args.update(kw)
    p = sim.simulate_program(tmp_path / name, **args)
    truth = sim.read_truth(p.truth_dir)
    fr = truth.frames().join(
        truth.files.select("file_name", "visit", "guide_period"), on="file_name"
    )
    return p, fr.sort("visit", "guide_period", "integration")


def test_ar1_share_in_the_centroid_truth(tmp_path) -> None:
    share, tau = 0.4, 1.0
    p, fr = _sim(
        tmp_path,
        "ar1",
        correlated_noise=[sim.CorrelatedNoise("x", "ar1", share=share, tau_s=tau)],
        frames_per_file=15_000,
    )
    noise = sim.read_truth(p.truth_dir).noise
    assert noise.height == 2 and set(noise["kind"]) == {"ar1"}
    for row in noise.iter_rows(named=True):
        # share of the per-frame variance against the visit's photon-noise sigma
        assert row["rms"] ** 2 / (row["rms"] ** 2 + row["white_sigma"] ** 2) == pytest.approx(share)
        x = fr.filter(pl.col("visit") == row["visit"])
        acfs, var = [], []
        for _, g in x.group_by("guide_period"):
            d = g.sort("integration")["x_mean"].to_numpy()
            acfs.append(_acf1(d))
            var.append(np.mean((d - d.mean()) ** 2))
        assert np.mean(acfs) == pytest.approx(math.exp(-DT / tau), abs=0.01)
        assert math.sqrt(np.mean(var)) == pytest.approx(row["rms"], rel=0.15)
        # y carries no noise (jitter off): the component went where it was asked
        assert x["y_mean"].n_unique() == 1


def test_white_sigma_is_the_fit_scatter_of_white_frames() -> None:
    """``share`` is relative to the photon noise: its sigma_x is what a fit can reach."""
    from fgsarchive.fit.model import fit_gaussian_stack

    base = dict(
        amplitude=2e5, x_mean=3.6, y_mean=3.4, x_stddev=0.66, y_stddev=0.58, theta=0.1, offset=3000
    )
    noise = sim._Noise("gaussian", 2.0, 0.032, 12.0)
    sig = sim.white_noise_sigmas(base, noise)
    n = 3000
    m = sim.gaussian_frames(*(np.full(n, v) for v in base.values()))
    rng = np.random.default_rng(5)
    s = np.sqrt(m / noise.gt + (noise.read_noise_e / noise.gt) ** 2)
    frames = (m + rng.standard_normal(m.shape) * s).astype(np.float32)
    res = fit_gaussian_stack(frames, err=s.astype(np.float32), weighted=True)
    assert np.std(res.x_mean) == pytest.approx(sig["x"], rel=0.12)
    assert np.std(res.y_mean) == pytest.approx(sig["y"], rel=0.12)
    assert np.std(res.x_stddev / base["x_stddev"]) == pytest.approx(sig["width"], rel=0.15)
    flux = (frames - base["offset"]).sum(axis=(1, 2))
    star = 2 * np.pi * base["amplitude"] * base["x_stddev"] * base["y_stddev"]
    assert np.std(flux / star) == pytest.approx(sig["flux"], rel=0.1)


def test_random_walk_in_flux_truth_grows_with_lag(tmp_path) -> None:
    _, fr = _sim(
        tmp_path,
        "rw",
        correlated_noise=[sim.CorrelatedNoise("flux", "random_walk", rms=0.01, tau_s=30.0)],
        n_visits=3,
    )
    sf = {}
    for lag in (20, 200, 2000):
        d = []
        for _, g in fr.group_by("visit", "guide_period"):
            f = g.sort("integration")["flux_scale"].to_numpy()
            assert f[0] == 1.0  # the walk restarts at each guide period
            d.append(f[lag:] - f[:-lag])
        sf[lag] = float(np.mean(np.concatenate(d) ** 2))
    assert sf[200] / sf[20] == pytest.approx(10, rel=0.3)
    assert sf[2000] / sf[200] == pytest.approx(10, rel=0.5)
    assert sf[200] == pytest.approx(0.01**2 * 200 * DT / 30.0, rel=0.3)


def test_width_noise_keeps_the_flux(tmp_path) -> None:
    _, fr = _sim(
        tmp_path,
        "width",
        correlated_noise=[sim.CorrelatedNoise("width", "power_law", rms=0.05, alpha=1.0)],
        n_visits=1,
    )
    w = fr["x_stddev"] / fr["x_stddev"].median()
    assert 0.03 < w.std() < 0.08  # the widths breathe ...
    flux = (fr["amplitude"] * fr["x_stddev"] * fr["y_stddev"]).to_numpy()
    np.testing.assert_allclose(flux, flux[0], rtol=1e-12)  # ... the flux does not
    assert (fr["x_stddev"] / fr["y_stddev"]).std() < 1e-12  # both widths scale together
    assert (fr["flux_scale"] == 1.0).all()


def test_short_guide_periods_with_gaps(tmp_path) -> None:
    p, _ = _sim(
        tmp_path, "gaps", guide_period_frames=(2000, 4000), n_visits=3, frames_per_file=9000
    )
    files = sim.read_truth(p.truth_dir).files.sort("data_start_mjd")
    for (visit,), g in files.group_by("visit"):
        n = g["n_frames"].to_numpy()
        assert n.sum() == 2 * 9000, visit
        assert (n >= 2000).all() and (n <= 4000).all(), n
        assert g["guide_period"].to_list() == list(range(g.height))
        gaps_s = (g["data_start_mjd"][1:].to_numpy() - g["data_end_mjd"][:-1].to_numpy()) * 86400
        assert (gaps_s >= 0.5 * 30.0 - 0.01).all() and (gaps_s <= 1.5 * 30.0 + 0.01).all()
    assert files.height >= 3 * 5


def test_short_guide_period_split_edge_cases() -> None:
    rng = np.random.default_rng(0)
    for total in (1, 1999, 2000, 4001, 5000, 123_457):
        parts = sim._short_guide_periods(rng, total, 2000, 4000)
        assert sum(parts) == total
        if total >= 2000:
            assert min(parts) >= 2000 and max(parts) <= 4000, (total, parts)
    with pytest.raises(ValueError, match="guide_period_frames"):
        sim._short_guide_periods(rng, 10, 5, 2)


def test_noise_is_seeded_and_leaves_the_other_draws_alone(tmp_path) -> None:
    comp = [sim.CorrelatedNoise("flux", "ar1", share=0.2, tau_s=3.0)]
    _, plain = _sim(tmp_path, "plain", n_visits=1, jitter_scale=1.0)
    _, white = _sim(tmp_path, "white", n_visits=1, jitter_scale=1.0, correlated_noise="white")
    _, a = _sim(tmp_path, "a", n_visits=1, jitter_scale=1.0, correlated_noise=comp)
    _, b = _sim(tmp_path, "b", n_visits=1, jitter_scale=1.0, correlated_noise=comp)
    _, c = _sim(tmp_path, "c", n_visits=1, jitter_scale=1.0, correlated_noise=comp, seed=12)
    assert white.equals(plain)  # 'white' is today's simulator
    assert a.equals(b)
    assert not a["flux_scale"].equals(c["flux_scale"])
    # the flux noise is a stream of its own: positions and widths are drawn as without it
    for col in ("x_mean", "y_mean", "x_stddev", "theta", "offset"):
        assert a[col].equals(plain[col]), col
    assert a["flux_scale"].std() > 0 and (plain["flux_scale"] == 1.0).all()


def test_a_stars_flux_is_the_same_in_every_visit(tmp_path) -> None:
    """docs/simulator.md: the total flux follows GS_MAG within +-3 % per visit, whatever the
    visit's PSF widths (the demo's star differed by 29 % between observations before)."""
    p, fr = _sim(tmp_path, "flux", n_visits=8, n_guide_stars=2, frames_per_file=50, jitter_scale=1)
    truth = sim.read_truth(p.truth_dir)
    fr = fr.join(truth.files.select("file_name", "gs_id"), on="file_name").join(
        truth.stars.select("gs_id", "fgs_mag"), on="gs_id"
    )
    per_visit = fr.group_by("visit", "gs_id", "fgs_mag").agg(
        (2 * np.pi * pl.col("amplitude") * pl.col("x_stddev") * pl.col("y_stddev"))
        .mean()
        .alias("flux"),
        pl.col("x_stddev").mean(),
    )
    ratio = per_visit["flux"] / sim.flux_from_mag(per_visit["fgs_mag"].to_numpy())
    assert (ratio - 1).abs().max() <= 0.0301
    # the widths do differ between visits, so the peak amplitude must have followed them
    assert per_visit["x_stddev"].max() / per_visit["x_stddev"].min() > 1.03
