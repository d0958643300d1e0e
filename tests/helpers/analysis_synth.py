"""Seeded synthetic guide-star parameter series for the analysis tests (not a physical simulator).

Per-frame noise as in fine guiding at 64 ms: flux relative noise 1/sqrt(counts) with 1e6..5e6
counts per frame (0.045..0.1%), centroid noise 0.003..0.01 px, width noise 0.3..1%; plus
red jitter (an Ornstein-Uhlenbeck process, i.e. a random walk pulled back to the guide point),
a slow random-walk drift, periodic lines (the detector must not fire on them) and rare
single-frame cosmic-ray spikes.  Events are injected by ``inject``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.signal import lfilter

CADENCE_S = 0.064
MJD0 = 60000.0


def ou_process(rng: np.random.Generator, n: int, sigma: float, tau_frames: float) -> np.ndarray:
    """Stationary AR(1) / Ornstein-Uhlenbeck series with std ``sigma`` and correlation time."""
    phi = np.exp(-1.0 / tau_frames)
    e = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), n)
    e[0] = rng.normal(0.0, sigma)
    # x[i] = phi x[i-1] + e[i]  via scipy's lfilter (vectorised)
    return lfilter([1.0], [1.0, -phi], e)


@dataclass
class Synth:
    time_mjd: np.ndarray
    series: dict[str, np.ndarray]
    truth: list[dict] = field(default_factory=list)

    @property
    def time_s(self) -> np.ndarray:
        return (self.time_mjd - self.time_mjd[0]) * 86400.0


def make_series(
    hours: float,
    seed: int,
    *,
    counts: float = 1.0e6,
    centroid_noise_px: float = 0.01,
    width_noise: float = 0.01,
    cadence_s: float = CADENCE_S,
    spikes_per_hour: float = 20.0,
) -> Synth:
    """Quiet guide-star series with noise, jitter, drifts and periodic lines (no events)."""
    rng = np.random.default_rng(seed)
    n = int(round(hours * 3600.0 / cadence_s))
    t = np.arange(n) * cadence_s
    tau_jit = 25.0 / cadence_s  # 25 s correlation time
    walk = np.cumsum(rng.normal(0.0, 1e-4 * np.sqrt(cadence_s), (2, n)), axis=1)

    def line(amp, period_s):
        return amp * np.sin(2 * np.pi * t / period_s + rng.uniform(0, 2 * np.pi))

    rel_noise = 1.0 / np.sqrt(counts)
    flux = counts * (
        1.0
        + line(200e-6, 300.0)  # the ~5-minute, 200 ppm oscillation
        + line(100e-6, 1.7)
        + ou_process(rng, n, 50e-6, 60.0 / cadence_s)
        + rng.normal(0.0, rel_noise, n)
    )
    x = (
        3.5
        + ou_process(rng, n, 0.004, tau_jit)
        + walk[0]
        + line(0.004, 10.0)
        + line(0.002, 0.43)
        + rng.normal(0.0, centroid_noise_px, n)
    )
    y = (
        3.6
        + ou_process(rng, n, 0.004, tau_jit)
        + walk[1]
        + line(0.003, 10.0)
        + rng.normal(0.0, centroid_noise_px, n)
    )
    slow = line(0.01, 4 * 3600.0)  # thermal breathing
    sx = 0.64 * (1 + slow + line(0.003, 20.0) + rng.normal(0.0, width_noise, n))
    sy = 0.60 * (1 + slow + rng.normal(0.0, width_noise, n))
    theta = np.mod(0.4 + ou_process(rng, n, 0.01, tau_jit) + rng.normal(0.0, 0.05, n), np.pi)
    background = 3000.0 + line(3.0, 3600.0) + rng.normal(0.0, 8.0, n)
    # cosmic-ray spikes: single frames, several % in flux
    n_spikes = rng.poisson(spikes_per_hour * hours)
    where = rng.integers(0, n, n_spikes)
    flux[where] *= 1 + rng.uniform(0.01, 0.1, n_spikes)
    return Synth(
        MJD0 + t / 86400.0,
        {
            "flux": flux,
            "x_mean": x,
            "y_mean": y,
            "x_stddev": sx,
            "y_stddev": sy,
            "theta": theta,
            "background": background,
        },
    )


def inject(
    s: Synth,
    seed: int,
    *,
    n_each: int = 20,
    depth: float = 0.01,
    durations_s: tuple[float, float] = (5.0, 120.0),
    jump_px: float = 0.05,
    width_change: float = 0.05,
    margin_s: float = 120.0,
) -> Synth:
    """Inject n_each flux drops (box, depth, durations log-uniform), centroid jumps (persistent,
    |jump| = jump_px along a random direction) and x_stddev/y_stddev changes (persistent,
    alternating sign), at random, well-separated times.  Returns s with ``truth`` filled."""
    rng = np.random.default_rng(seed)
    t = s.time_s
    total = t[-1]
    # cyclic order: consecutive events of one kind are 3 slots apart (>= 15 min for 10 h)
    order = ["flux_drop", "centroid_jump", "psf_change"]
    rng.shuffle(order)
    kinds = order * n_each
    spacing = (total - 2 * margin_s) / len(kinds)
    slots = margin_s + spacing * np.arange(len(kinds))
    jitter = rng.uniform(0, max(0.0, spacing - durations_s[1] - 30.0), len(kinds))
    sign = 1.0
    for kind, t0 in zip(kinds, slots + jitter, strict=True):
        i0 = int(np.searchsorted(t, t0))
        if kind == "flux_drop":
            dur = float(np.exp(rng.uniform(*np.log(durations_s))))
            i1 = int(np.searchsorted(t, t0 + dur))
            s.series["flux"][i0:i1] *= 1 - depth
            s.truth.append(
                {"kind": kind, "start_s": t[i0], "end_s": t[i1 - 1], "amplitude": -depth}
            )
        elif kind == "centroid_jump":
            ang = rng.uniform(0, 2 * np.pi)
            s.series["x_mean"][i0:] += jump_px * np.cos(ang)
            s.series["y_mean"][i0:] += jump_px * np.sin(ang)
            s.truth.append({"kind": kind, "start_s": t[i0], "end_s": t[i0], "amplitude": jump_px})
        else:
            s.series["x_stddev"][i0:] *= 1 + sign * width_change
            s.series["y_stddev"][i0:] *= 1 + sign * width_change * 0.5
            s.truth.append(
                {"kind": kind, "start_s": t[i0], "end_s": t[i0], "amplitude": sign * width_change}
            )
            sign = -sign
    return s


def score(anomalies, s: Synth, *, tol_s: float = 3.0) -> dict:
    """Recall per injected kind, false alarms, timing errors of a detect_anomalies result."""
    start = (anomalies["start_mjd"].to_numpy() - s.time_mjd[0]) * 86400.0
    end = (anomalies["end_mjd"].to_numpy() - s.time_mjd[0]) * 86400.0
    kinds = anomalies["kinds"].to_list()
    used = np.zeros(len(start), dtype=bool)
    found: dict[str, list[bool]] = {}
    timing: list[float] = []
    for ev in s.truth:
        hit = np.flatnonzero(
            (start <= ev["end_s"] + tol_s)
            & (end >= ev["start_s"] - tol_s)
            & np.array([ev["kind"] in k for k in kinds], dtype=bool)
        )
        found.setdefault(ev["kind"], []).append(hit.size > 0)
        if hit.size:
            timing.append(abs(start[hit[0]] - ev["start_s"]))
        # any overlapping event (whatever its kind) is not a false alarm
        near = (start <= ev["end_s"] + tol_s) & (end >= ev["start_s"] - tol_s)
        used |= near
    hours = (s.time_s[-1] - s.time_s[0]) / 3600.0
    return {
        "recall": {k: float(np.mean(v)) for k, v in found.items()},
        "false_alarms": int((~used).sum()),
        "false_alarms_per_10h": float((~used).sum() / hours * 10.0),
        "timing_median_s": float(np.median(timing)) if timing else float("nan"),
        "timing_max_s": float(np.max(timing)) if timing else float("nan"),
        "unmatched": anomalies.filter(pl.Series(~used)) if (~used).any() else None,
    }


def make_star_frames(
    n_const: int = 20,
    seed: int = 0,
    *,
    visit_minutes: float = 40.0,
    n_visits: int = 2,
    cadence_s: float = CADENCE_S,
    sinusoid: tuple[float, float] | None = (0.01, 1200.0),
    dip: tuple[float, float] | None = (0.02, 600.0),
):
    """Per-frame fluxes of ``n_const`` constant guide stars plus, optionally, a sinusoidal
    variable (amplitude, period_s) "VAR_SIN" and an eclipsing-like star (depth, duration_s)
    "VAR_DIP" (one box dip in its first visit).  Each visit has its own flux scale (visit
    offsets up to +-5%), photon noise for 1e6..5e6 counts per frame, a common 5-minute 200 ppm
    telescope line, red noise, and a few masked garbage frames."""
    rng = np.random.default_rng(seed)
    names = [f"S{i:03d}" for i in range(n_const)]
    if sinusoid:
        names.append("VAR_SIN")
    if dip:
        names.append("VAR_DIP")
    n = int(round(visit_minutes * 60 / cadence_s))
    parts = []
    for name in names:
        counts = rng.uniform(1e6, 5e6)
        for v in range(n_visits):
            t0 = MJD0 + rng.uniform(0, 30) + v * 0.5
            t = np.arange(n) * cadence_s
            rel = 200e-6 * np.sin(2 * np.pi * t / 300.0 + rng.uniform(0, 6.3)) + ou_process(
                rng, n, 50e-6, 60.0 / cadence_s
            )
            if name == "VAR_SIN":
                amp, per = sinusoid
                rel = rel + amp * np.sin(2 * np.pi * (t0 * 86400 + t) / per)
            if name == "VAR_DIP" and v == 0:
                depth, dur = dip
                mid = t[-1] * 0.4
                rel = rel - depth * (np.abs(t - mid) < dur / 2)
            scale = counts * rng.uniform(0.95, 1.05)
            flux = scale * (1 + rel) + rng.normal(0, np.sqrt(scale), n)
            masked = rng.random(n) < 1e-3
            flux[masked] = rng.choice([0.0, np.nan, 1e9], masked.sum())
            parts.append(
                pl.DataFrame(
                    {
                        "gs_id": name,
                        "visit_key": f"{name}-v{v}",
                        "time_mjd": t0 + t / 86400.0,
                        "flux": flux,
                        "flux_err": np.full(n, np.sqrt(scale)),
                        "masked": masked,
                    }
                )
            )
    return pl.concat(parts)
