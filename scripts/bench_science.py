"""Science benchmark: fit errors, false peaks, false alarms and recall, per kind of noise.

    python scripts/bench_science.py                       # 5 noise kinds x 3 seeds, 3 h each
    python scripts/bench_science.py --hours 1 --seeds 1   # a quick look
    python scripts/bench_science.py --noise white,ar1_weak,ar1,random_walk,power_law,realistic
    python scripts/bench_science.py --json /tmp/science.json --out /tmp/bench --keep
    python scripts/bench_science.py --debug-misses        # also list each miss, nearest anomalies
    python scripts/bench_science.py --out /tmp/b --keep   # then, after a change to the analyses:
    python scripts/bench_science.py --out /tmp/b --reuse --anomalies-only   # re-analyse, re-score
    python scripts/bench_science.py --out /tmp/b --reuse --anomalies-only --anomaly-detector REV

For every noise kind (a preset of ``fgsarchive.simulate.NOISE_PRESETS``: ``white`` is the plain
simulator, ``ar1`` AR(1) at tau 20 s holding 10 % of each quantity's per-frame variance,
``ar1_weak`` 1 % at 60 s, ``random_walk``, ``power_law`` and ``realistic``, a mixture nothing was
tuned to; by default all but ``power_law``) and every seed, one archive is simulated, ingested,
fitted and analysed exactly as ``fgsarchive analyse`` does, then scored against the truth. Each
run has ``--hours`` of fine guiding in ``--programs`` programs, visits of ``2 x --frames-per-file``
frames at 64 ms split into short guide periods of ``--guide-period-frames`` (default 2000-15000
frames, log-uniform) with 15-45-s gaps, guided by a pool of 21 guide stars (FGS mag 12.5-15.3;
one of them a 1 % sinusoidal variable, P = 50 min). A seed gives the same plan, stars and photon
noise under every noise kind, so the kinds differ only by the correlated noise.

Visits come in threes:

* quiet (visit % 3 == 0): nothing injected -- the false-peak rate is measured here;
* events + a flux sinusoid (% 3 == 1) and events only (% 3 == 2). Events, at random times in
  their quarter of the visit: a flux drop of 0.5-3 % lasting 5-60 s, a centroid jump of
  0.02-0.2 px, a PSF-width step of 2-10 % (x; half that in y), and in the visits without a
  sinusoid a 60-s high-gain-antenna move (0.03 px of extra jitter). The sinusoid has a period
  of 60-600 s and an amplitude z = 3-10 times its least-squares uncertainty ``sigma sqrt(2 /
  N)`` (sigma: the star's expected per-frame noise of the summed flux, N: frames of the visit).

Scores (functions ``fit_pulls``, ``false_peak_rates``, ``score_events``, ``false_alarms``,
``score_sinusoids``; a test checks them on known input):

* fit pulls: std of (fit - truth) / fit error for x_mean, y_mean, amplitude, x_stddev over
  converged frames without a cosmic ray or NaN pixel, using the per-frame truth; per bin of the
  true amplitude. 1.0 means the errors are honest;
* false peaks: share of quiet-visit series (flux, flux_opt, amplitude, x_stddev, y_stddev) whose
  best periodogram peak has FAP < 0.01 and < 0.001 (any peak; a second column counts only peaks
  not labelled instrumental/pointing). White noise should give 1 % and 0.1 %;
* anomaly false alarms per 10 h: anomalies touching no injection (+-5 s), per 10 h of guiding;
* recall: an injection (whose start lies in data, >= 10 s from a file's edges) is found when an
  anomaly of its visit whose ``kinds`` hold the expected kind starts within 5 s of it;
* recall against signal-to-noise (``event_snr``, measured on the archive's own series of the
  visit, red noise included): drops by depth over the scatter of a box as long as the drop
  minus its flanks, jumps by size over the step filter's scatter at the best window, HGA moves
  by their extra jitter RMS over the per-frame centroid noise;
* sinusoid recall: a flux or flux_opt peak with FAP < 1 %, not blamed on the pointing, within
  3 % of the injected period.

Prints a table per noise kind (mean over seeds, with the range) and the pulls per amplitude bin;
``--json`` writes every run's figures. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

CADENCE_S = 0.064
EDGE_S = 10.0  # an injection is scored when its start lies this far inside a file
WINDOW_S = 5.0
EXPECTED = {
    "flux_drop": "flux_drop",
    "centroid_jump": "centroid_jump",
    "psf_width_change": "psf_change",
    "hga_move": "jitter_burst",
}
PULL_PARAMETERS = ("x_mean", "y_mean", "amplitude", "x_stddev")
AMPLITUDE_EDGES = (0.0, 1e5, 3e5, np.inf)
FALSE_PEAK_PARAMETERS = ("flux", "flux_opt", "amplitude", "x_stddev", "y_stddev")
FAP_LEVELS = (0.01, 0.001)
DEFAULT_NOISE = "white,ar1_weak,ar1,random_walk,realistic"


def per_frame_noise(fgs_mag: float) -> float:
    """Expected relative noise of a frame's summed flux (the simulator's noise model)."""
    from fgsarchive.simulate import flux_from_mag

    flux = float(flux_from_mag(fgs_mag))  # DN/s in the PSF
    sky = 64 * 3000.0
    k = 2.0 * CADENCE_S / 2  # gain x exposure (cadence / 2) [e- per DN/s]
    return math.sqrt((flux + sky) * k + 64 * 12.0**2) / (flux * k)


# --- the plan ------------------------------------------------------------------------------


def plan(hours: float, programs: int, frames_per_file: int, seed: int) -> tuple[list, str, list]:
    """Stars, the variable's id and per program its visits, injections and sinusoids."""
    from fgsarchive import simulate as sim

    rng = np.random.default_rng(seed)
    stars = sim.make_guide_stars(21, seed=seed, center=(80.8, -69.5))
    variable = stars[0].gs_id
    frames_per_visit = 2 * frames_per_file
    t_visit = frames_per_visit * CADENCE_S
    n_visits_total = max(programs, round(hours * 3600 / t_visit))
    per_program = [
        n_visits_total // programs + (i < n_visits_total % programs) for i in range(programs)
    ]
    q = t_visit / 4  # one event per quarter of the visit

    def at(k: int, length: float = 0.0) -> float:
        lo = k * q + min(30.0, q / 4)
        return float(rng.uniform(lo, max(lo, (k + 1) * q - min(30.0, q / 4) - length)))

    out = []
    for p, n_visits in enumerate(per_program):
        program = 2000 + p
        pool = [stars[(5 * p + j) % len(stars)] for j in range(7)]
        injections, sinusoids, quiet = [], [], []
        for v in range(1, n_visits + 1):
            star = pool[(v - 1) % len(pool)]
            if v % 3 == 0:
                quiet.append(v)
                continue
            dur = float(np.exp(rng.uniform(np.log(5), np.log(60))))
            injections.append(
                sim.FluxDrop(at(0, dur), dur, float(rng.uniform(0.005, 0.03)), visit=v)
            )
            jump = float(np.exp(rng.uniform(np.log(0.02), np.log(0.2))))
            ang = rng.uniform(0, 2 * np.pi)
            injections.append(
                sim.CentroidJump(at(1), jump * math.cos(ang), jump * math.sin(ang), visit=v)
            )
            frac = float(rng.uniform(0.02, 0.10))
            injections.append(sim.PsfWidthChange(at(2), frac_x=frac, frac_y=frac / 2, visit=v))
            if v % 3 == 2:
                injections.append(sim.HgaMove(at(3, 60.0), duration_s=60.0, visit=v))
            if v % 3 == 1:
                z = float(rng.uniform(3, 10))
                amp = z * per_frame_noise(star.fgs_mag) * math.sqrt(2.0 / frames_per_visit)
                period = float(np.exp(rng.uniform(np.log(60), np.log(600))))
                injections.append(
                    sim.PeriodicSignal(period, amp, "flux", float(rng.uniform(0, 2 * np.pi)), 1, v)
                )
                sinusoids.append(
                    {"program": program, "visit": v, "period_s": period, "amplitude": amp, "z": z}
                )
        out.append(
            {
                "program": program,
                "n_visits": n_visits,
                "stars": pool,
                "injections": injections,
                "sinusoids": sinusoids,
                "quiet_visits": quiet,
                "start_mjd": 59918.0 + 2.0 * p,
            }
        )
    return stars, variable, out


# --- scoring (pure functions of tables; tests/test_simulate_bench.py checks them) ---------


def fit_pulls(
    fits: pl.DataFrame,
    truth: pl.DataFrame,
    parameters=PULL_PARAMETERS,
    amplitude_edges=AMPLITUDE_EDGES,
) -> pl.DataFrame:
    """Std of (fit - truth) / fit error per parameter and bin of the true amplitude.

    ``fits``: ``file_name, frame, status, <p>, <p>_err``; ``truth``: the simulator's per-frame
    truth (``file_name, frame, amplitude, <p>, cr_pixel, n_nan``). Converged frames (status 0)
    with a finite positive error and no cosmic ray or NaN pixel. Rows: ``parameter, bin, n,
    pull_std, pull_mad`` (1.4826 MAD: the same, robust to a few wild frames)."""
    t = truth.filter((pl.col("cr_pixel") < 0) & (pl.col("n_nan") == 0)).select(
        "file_name", "frame", pl.col("amplitude").alias("true_amplitude"), *parameters
    )
    t = t.rename({p: f"{p}_true" for p in parameters})
    j = fits.filter(pl.col("status") == 0).join(t, on=["file_name", "frame"], how="inner")
    edges = list(amplitude_edges)
    labels = [_amp_label(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    rows = []
    for p in parameters:
        err = pl.col(f"{p}_err")
        sub = j.filter(err.is_finite() & (err > 0)).with_columns(
            ((pl.col(p) - pl.col(f"{p}_true")) / err).alias("pull")
        )
        amp = sub["true_amplitude"].to_numpy()
        pull = sub["pull"].to_numpy()
        b = np.digitize(amp, edges[1:-1])
        for i, label in enumerate([*labels, "all"]):
            x = pull if label == "all" else pull[b == i]
            x = x[np.isfinite(x)]
            if x.size < 2:
                continue
            mad = 1.4826 * float(np.median(np.abs(x - np.median(x))))
            rows.append(
                {
                    "parameter": p,
                    "bin": label,
                    "n": int(x.size),
                    "pull_std": float(np.std(x)),
                    "pull_mad": mad,
                }
            )
    return pl.DataFrame(rows)


def _amp_label(lo: float, hi: float) -> str:
    def f(v: float) -> str:
        return "inf" if not np.isfinite(v) else f"{v:.0e}".replace("e+0", "e")

    return f"{f(lo)}-{f(hi)}"


def false_peak_rates(
    peaks: pl.DataFrame, series: pl.DataFrame, levels=FAP_LEVELS
) -> dict[str, float | int]:
    """Share of pure-noise ``series`` (``program, visit, parameter``) whose best peak has
    FAP below each level: ``fap<L`` counts any peak, ``fap<L_unflagged`` only peaks not labelled
    ``instrumental`` (or ``pointing``). A series without peaks has none below any level."""
    keys = ["program", "visit", "parameter"]
    pk = peaks.join(series.select(keys), on=keys, how="semi")
    flagged = pl.col("instrumental").fill_null(False)
    if "pointing" in pk.columns:
        flagged = flagged | pl.col("pointing").fill_null(False)
    best = pk.group_by(keys).agg(
        pl.col("fap").min().alias("best"),
        pl.col("fap").filter(~flagged).min().alias("best_unflagged"),
    )
    s = series.select(keys).unique().join(best, on=keys, how="left")
    out: dict = {"series": s.height}
    for lv in levels:
        out[f"fap<{lv:g}"] = float((s["best"].fill_null(1.0) < lv).mean()) if s.height else 0.0
        out[f"fap<{lv:g}_unflagged"] = (
            float((s["best_unflagged"].fill_null(1.0) < lv).mean()) if s.height else 0.0
        )
    # per parameter: series and how many have a best peak below each level (any peak)
    out["by_parameter"] = {
        p: {"series": g.height, **{f"fap<{lv:g}": int((g["best"] < lv).sum()) for lv in levels}}
        for (p,), g in s.with_columns(pl.col("best").fill_null(1.0))
        .sort("parameter")
        .group_by("parameter", maintain_order=True)
    }
    return out


def observable(events: pl.DataFrame, files: pl.DataFrame, edge_s: float = EDGE_S) -> pl.Series:
    """Per event row: does its start lie in a fine-guide file of its visit, ``edge_s`` inside it
    (and, for a flux drop, its end too)? Events in a gap cannot be found and are not scored."""
    fg = files.filter(pl.col("mode") == "fg")
    e = edge_s / 86400.0
    ok = []
    for ev in events.iter_rows(named=True):
        f = fg.filter(
            (pl.col("program") == ev["program"])
            & (pl.col("visit") == ev["visit"])
            & (pl.col("data_start_mjd") + e <= ev["start_mjd"])
            & (pl.col("data_end_mjd") - e >= ev["start_mjd"])
        )
        if ev["kind"] == "flux_drop" and f.height:
            f = f.filter(pl.col("data_end_mjd") - e >= ev["end_mjd"])
        ok.append(f.height > 0)
    return pl.Series("observable", ok, dtype=pl.Boolean)


def score_events(
    events: pl.DataFrame, anomalies: pl.DataFrame, window_s: float = WINDOW_S
) -> pl.DataFrame:
    """One row per injected event (``kind`` in EXPECTED): found when an anomaly of its program
    and visit whose ``kinds`` hold the expected kind starts within ``window_s`` of it."""
    w = window_s / 86400.0
    rows = []
    for ev in events.iter_rows(named=True):
        want = EXPECTED[ev["kind"]]
        cand = anomalies.filter(
            (pl.col("program") == ev["program"])
            & (pl.col("visit") == ev["visit"])
            & pl.col("kinds").list.contains(want)
            & ((pl.col("start_mjd") - ev["start_mjd"]).abs() < w)
        )
        found = cand.height > 0
        err = float((cand["start_mjd"] - ev["start_mjd"]).abs().min() * 86400) if found else None
        amp = {
            "flux_drop": ev.get("depth"),
            "centroid_jump": math.hypot(ev.get("dx") or 0, ev.get("dy") or 0),
            "psf_width_change": ev.get("frac_x"),
            "hga_move": ev.get("jitter_px"),
        }[ev["kind"]]
        rows.append(
            {
                "kind": ev["kind"],
                "program": ev["program"],
                "visit": ev["visit"],
                "gs_id": ev.get("gs_id"),
                "start_mjd": ev["start_mjd"],
                "amplitude": amp,
                "duration_s": ev.get("duration_s"),
                "found": found,
                "timing_error_s": err,
            }
        )
    schema = {"kind": pl.String, "found": pl.Boolean, "timing_error_s": pl.Float64}
    return pl.DataFrame(rows) if rows else pl.DataFrame(schema=schema)


def _diff_noise(v: np.ndarray) -> float:
    """Per-frame white noise: 1.4826 MAD of the frame-to-frame differences / sqrt 2."""
    d = np.diff(v[np.isfinite(v)])
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0)) if d.size else np.nan


def _scale_noise(t_mjd, v, width: int, exclude: tuple[float, float], box: bool) -> float:
    """Robust std (1.4826 MAD) of a filter's output over a visit's series: the mean of a box of
    ``width`` frames minus the mean of its two flanks of the same length (``box``), or the mean
    of ``width`` frames after a point minus the ``width`` before (a step); within each run of
    frames without a gap, starts every width/4 frames, leaving out those touching ``exclude``
    (MJD interval, the injection)."""
    ok = np.isfinite(v)
    t_mjd, v = t_mjd[ok], v[ok]
    cuts = np.concatenate(([0], np.flatnonzero(np.diff(t_mjd) * 86400.0 > 1.0) + 1, [v.size]))
    out = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        x, tt = v[a:b], t_mjd[a:b]
        n = x.size
        if n < 3 * width + 1:
            continue
        cs = np.concatenate(([0.0], np.cumsum(x)))
        i = np.arange(width, n - 2 * width + 1, max(1, width // 4))
        if box:
            m = (cs[i + width] - cs[i]) / width
            f = (cs[i] - cs[i - width] + cs[i + 2 * width] - cs[i + width]) / (2 * width)
            d = m - f
            lo, hi = tt[i - width], tt[np.minimum(i + 2 * width, n - 1)]
        else:
            d = (cs[i + width] - 2 * cs[i] + cs[i - width]) / width
            lo, hi = tt[i - width], tt[np.minimum(i + width, n - 1)]
        keep = (hi < exclude[0]) | (lo > exclude[1])
        out.append(d[keep])
    d = np.concatenate(out) if out else np.empty(0)
    if d.size < 5:
        return np.nan
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


STEP_WINDOWS_FRAMES = (8, 31, 125, 500, 2000)


def event_snr(scored: pl.DataFrame, series: pl.DataFrame) -> pl.Series:
    """Signal-to-noise of each scored injection against the noise of its own visit's series at
    the event's scale (``series``: program, visit, time_mjd, flux_opt, x_mean, y_mean, x_stddev;
    red noise included, the injection left out): a drop's depth over the scatter of a box as
    long as the drop minus its flanks; a jump's size over the scatter of the step filter at the
    window where it stands out most (0.5-128 s); an HGA move's extra jitter RMS over the
    per-frame centroid noise; a PSF step's fraction over the 32-s step scatter."""
    out = []
    for ev in scored.iter_rows(named=True):
        w = series.filter((pl.col("program") == ev["program"]) & (pl.col("visit") == ev["visit"]))
        w = w.sort("time_mjd")
        t = w["time_mjd"].to_numpy()
        if w.height < 1000:
            out.append(None)
            continue
        start = ev["start_mjd"]
        if ev["kind"] == "flux_drop":
            dur = ev["duration_s"] or 0.0
            f = w["flux_opt"].to_numpy()
            f = f / np.nanmedian(f)
            width = max(2, int(round(dur / CADENCE_S)))
            ex = (start - 2 * dur / 86400, start + 3 * dur / 86400)
            out.append(ev["amplitude"] / _scale_noise(t, f, width, ex, box=True))
        elif ev["kind"] == "hga_move":
            noise = 0.5 * (
                _diff_noise(w["x_mean"].to_numpy()) + _diff_noise(w["y_mean"].to_numpy())
            )
            out.append(ev["amplitude"] / noise)
        else:
            ex = (start - 130 / 86400, start + 130 / 86400)
            if ev["kind"] == "psf_width_change":
                f = w["x_stddev"].to_numpy()
                out.append(ev["amplitude"] / _scale_noise(t, f / np.nanmedian(f), 500, ex, False))
                continue
            best = 0.0
            for width in STEP_WINDOWS_FRAMES:
                noise = 0.5 * sum(
                    _scale_noise(t, w[c].to_numpy(), width, ex, box=False)
                    for c in ("x_mean", "y_mean")
                )
                if np.isfinite(noise) and noise > 0:
                    best = max(best, ev["amplitude"] / noise)
            out.append(best or None)
    return pl.Series("snr", out, dtype=pl.Float64)


SNR_BINS = {
    "flux_drop": (0, 4, 6, 8, 12, np.inf),
    "centroid_jump": (0, 4, 6, 8, 12, np.inf),
    "psf_width_change": (0, 6, 8, 12, np.inf),
    "hga_move": (0, 1.5, 2, 3, np.inf),
}
"""Bins of ``event_snr`` per injection kind in the recall-against-S/N table."""


def false_alarms(
    anomalies: pl.DataFrame, events: pl.DataFrame, window_s: float = WINDOW_S
) -> pl.DataFrame:
    """Anomalies that touch no injected event (any kind but periodic ones, +-``window_s``)
    of their program and visit."""
    w = window_s / 86400.0
    touched = np.zeros(anomalies.height, dtype=bool)
    a_start, a_end = anomalies["start_mjd"].to_numpy(), anomalies["end_mjd"].to_numpy()
    a_prog, a_visit = anomalies["program"].to_numpy(), anomalies["visit"].to_numpy()
    for ev in events.iter_rows(named=True):
        if ev["kind"] in ("periodic_signal", "variable_star"):
            continue
        touched |= (
            (a_prog == ev["program"])
            & (a_visit == ev["visit"])
            & (a_start <= ev["end_mjd"] + w)
            & (a_end >= ev["start_mjd"] - w)
        )
    return anomalies.filter(~pl.Series(touched))


def score_sinusoids(sinusoids: list[dict], peaks: pl.DataFrame) -> pl.DataFrame:
    """Each injected flux sinusoid: detected when a flux/flux_opt peak of its visit with FAP <
    1 %, not blamed on the pointing, lies within 3 % of its period (``found``: within 1 %)."""
    rows = []
    for s in sinusoids:
        cand = peaks.filter(
            (pl.col("program") == s["program"])
            & (pl.col("visit") == s["visit"])
            & pl.col("parameter").is_in(["flux", "flux_opt"])
            & (pl.col("fap") < 0.01)
        )
        if "pointing" in cand.columns:
            cand = cand.filter(~pl.col("pointing").fill_null(False))
        rel = (cand["period_s"] / s["period_s"] - 1).abs()
        best = float(rel.min()) if cand.height else None
        rows.append(
            {
                **s,
                "detected": best is not None and best < 0.03,
                "found": best is not None and best < 0.01,
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame(schema={"detected": pl.Boolean})


def white_noise_reference(
    n: int, z_edges: list[float], trials: int, seed: int, n_peaks: int = 5
) -> list[tuple[str, int, float, float]]:
    """The sinusoid test on white noise alone (one visit of ``n`` frames with a 30-s gap):
    the ceiling any detector reaches. (bin label, trials, detected within 3 %, within 1 %)."""
    from fgsarchive.analysis.periodogram import periodogram_series

    rng = np.random.default_rng(seed)
    t = np.arange(n) * CADENCE_S
    t[n // 2 :] += 30.0
    out = []
    for lo, hi in zip(z_edges[:-1], z_edges[1:], strict=True):
        det = hit = 0
        for _ in range(trials):
            z = rng.uniform(lo, hi)
            period = float(np.exp(rng.uniform(np.log(60), np.log(600))))
            y = z * np.sqrt(2.0 / n) * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3))
            y += rng.normal(0.0, 1.0, n)
            pk = periodogram_series(t, y, n_peaks=n_peaks, fmax_hz=0.5 / CADENCE_S).peaks
            rel = (pk.filter(pl.col("fap") < 0.01)["period_s"] / period - 1).abs()
            best = float(rel.min()) if rel.len() else None
            det += best is not None and best < 0.03
            hit += best is not None and best < 0.01
        out.append((f"{lo:g}-{hi:g}", trials, det / trials, hit / trials))
    return out


def debug_misses(scored: pl.DataFrame, an: pl.DataFrame, n_near: int = 4) -> None:
    """Print each missed injection and the anomalies of its visit nearest to it in time."""
    misses = scored.filter(~pl.col("found")).sort("kind", "amplitude", descending=[False, True])
    print(f"\n--- {misses.height} missed injections (nearest anomalies of the same visit)")
    for m in misses.iter_rows(named=True):
        dur = f"{m['duration_s']:.1f} s" if m["duration_s"] is not None else "to end"
        print(
            f"MISS {m['kind']} prog {m['program']} visit {m['visit']} {m['gs_id']} "
            f"amp {m['amplitude']:.4g} dur {dur} start_mjd {m['start_mjd']:.7f}"
        )
        near = (
            an.filter((pl.col("program") == m["program"]) & (pl.col("visit") == m["visit"]))
            .with_columns(((pl.col("start_mjd") - m["start_mjd"]) * 86400.0).alias("dt_s"))
            .sort(pl.col("dt_s").abs())
            .head(n_near)
        )
        for a in near.iter_rows(named=True):
            print(
                f"    dt {a['dt_s']:+9.2f} s  dur {a['duration_s']:7.2f} s  {a['kind']:<20} "
                f"amp {a['amplitude']:+.4g}  sig {a['significance']:.1f}  "
                f"kinds {a['kinds']}  params {a['parameters']}"
            )
        if near.is_empty():
            print("    (no anomaly in this visit)")


# --- one run: simulate, ingest, fit, analyse, score ----------------------------------------


def run_one(args, noise: str, seed: int, work: Path) -> dict:
    """Simulate one archive with ``noise`` and ``seed``, run the pipeline, score it."""
    from fgsarchive import simulate as sim
    from fgsarchive.analysis.runner import run_anomalies, run_periodograms, run_variables
    from fgsarchive.db import Database
    from fgsarchive.fit.runner import fit_archive
    from fgsarchive.ingest import ingest_directory

    stars, variable, programs = plan(args.hours, args.programs, args.frames_per_file, seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    reuse = getattr(args, "reuse", False) and (work / "archive.duckdb").exists()
    for p in programs if not reuse else []:
        sim.simulate_program(
            work / "products",
            program=p["program"],
            n_observations=1,
            n_visits=p["n_visits"],
            files_per_visit=2,
            frames_per_file=args.frames_per_file,
            guide_period_frames=args.guide_period_frames,
            n_guide_stars=len(p["stars"]),
            stars=p["stars"],
            start_mjd=p["start_mjd"],
            seed=seed + p["program"],
            injections=p["injections"],
            variable_stars=[
                sim.VariableStar(
                    star=variable, kind="sinusoid", period_s=3000.0, amplitude=0.01, t0_mjd=59918.0
                )
            ]
            if any(s.gs_id == variable for s in p["stars"])
            else [],
            include_other_products=False,
            correlated_noise=noise,
            workers=args.workers,
        )
    timings["simulate"] = time.perf_counter() - t0
    db = Database(work / "archive.duckdb")
    t0 = time.perf_counter()
    if reuse:  # the kept archive of an earlier run (--keep): analyses only
        with db.reader() as con:
            n_frames = int(con.sql("SELECT count(*) FROM frames").fetchall()[0][0])
    else:
        n_frames = ingest_directory(db, work / "products", workers=args.workers).n_frames
        timings["ingest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit_archive(db, workers=args.workers)
        timings["fit"] = time.perf_counter() - t0
    truth = sim.read_truth(work / "products" / "truth")
    t0 = time.perf_counter()
    try:
        from fgsarchive.telemetry import derive_events

        derive_events(db)
    except ImportError:
        pass
    quiet = lambda s: None  # noqa: E731
    if getattr(args, "anomaly_detector", None):  # another revision's, for before/after
        from bench_anomaly_recall import load_baseline

        import fgsarchive.analysis.runner as analysis_runner

        analysis_runner.detect_anomalies = load_baseline(args.anomaly_detector)
    anomalies = run_anomalies(db, min_sigma=args.min_sigma, on_warning=quiet)
    timings["anomalies"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if getattr(args, "anomalies_only", False):
        peaks = pl.DataFrame(
            schema={
                "program": pl.Int64,
                "visit": pl.Int64,
                "parameter": pl.String,
                "fap": pl.Float64,
                "instrumental": pl.Boolean,
                "period_s": pl.Float64,
            }
        )
        variability = pl.DataFrame(schema={"gs_id": pl.String, "rank": pl.Int64})
    else:
        peaks = run_periodograms(db, by="visit", on_warning=quiet)
        timings["periodograms"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        variability = run_variables(db, on_warning=quiet)
        timings["variables"] = time.perf_counter() - t0
    with db.reader() as con:
        guided_h = con.sql(
            "SELECT sum(data_end_mjd - data_start_mjd) * 24 FROM files WHERE product = 'fg'"
        ).fetchall()[0][0]
        cols = ", ".join(f"{p}, {p}_err" for p in PULL_PARAMETERS)
        fits = con.sql(f"SELECT file_name, frame, status, {cols} FROM fits").pl()
        frame_series = con.sql(
            "SELECT f.program, f.visit, fr.time_mjd, p.flux_opt, ft.x_mean, ft.y_mean, ft.x_stddev"
            " FROM frames fr JOIN files f USING (file_name)"
            " LEFT JOIN photometry p USING (file_name, frame)"
            " LEFT JOIN fits ft USING (file_name, frame) WHERE f.product = 'fg'"
        ).pl()

    t0 = time.perf_counter()
    pulls = fit_pulls(fits, truth.frames())
    # events: one row per event (its first file), scored when observable
    ev = truth.events.filter(pl.col("kind").is_in(list(EXPECTED))).unique(
        ["event_id", "program"], keep="first", maintain_order=True
    )
    ev = ev.filter(observable(ev, truth.files))
    scored = score_events(ev, anomalies)
    if scored.height:
        scored = scored.with_columns(event_snr(scored, frame_series))
    if args.debug_misses:
        print(f"\n=== {noise}, seed {seed}")
        debug_misses(scored, anomalies)
    fa = false_alarms(anomalies, truth.events)
    quiet_series = pl.DataFrame(
        [
            {"program": p["program"], "visit": v, "parameter": q}
            for p in programs
            for v in p["quiet_visits"]
            if p["stars"][(v - 1) % len(p["stars"])].gs_id != variable
            for q in FALSE_PEAK_PARAMETERS
        ],
        schema={"program": pl.Int64, "visit": pl.Int64, "parameter": pl.String},
    )
    fp = false_peak_rates(peaks, quiet_series)
    sins = score_sinusoids([s for p in programs for s in p["sinusoids"]], peaks)
    timings["score"] = time.perf_counter() - t0
    var_rank = variability.filter(pl.col("gs_id") == variable)["rank"].to_list()
    recall = {}
    for kind in EXPECTED:
        sub = scored.filter(pl.col("kind") == kind) if scored.height else scored
        recall[kind] = {
            "n": sub.height,
            "found": int(sub["found"].sum()) if sub.height else 0,
            "recall": float(sub["found"].mean()) if sub.height else None,
        }
    return {
        "noise": noise,
        "seed": seed,
        "hours_guided": float(guided_h),
        "frames": n_frames,
        "visits": sum(p["n_visits"] for p in programs),
        "guide_periods": int(truth.files.filter(pl.col("mode") == "fg")["guide_period"].len()),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "pulls": pulls.to_dicts(),
        "false_peaks": fp,
        "false_alarms": fa.height,
        "false_alarms_per_10h": fa.height / guided_h * 10.0,
        "false_alarm_kinds": fa.group_by("kind").len().sort("len", descending=True).rows(),
        "recall": recall,
        "events": scored.select("kind", "amplitude", "snr", "found", "timing_error_s").to_dicts()
        if scored.height
        else [],
        "sinusoids": {
            "n": sins.height,
            "found": int(sins["detected"].sum()) if sins.height else 0,
            "recall": float(sins["detected"].mean()) if sins.height else None,
            "rows": sins.to_dicts(),
        },
        "variable_rank": var_rank[0] if var_rank else None,
    }


# --- the report ------------------------------------------------------------------------------


def _mean_range(values: list, fmt: str) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "-"
    if len(v) == 1:
        return format(v[0], fmt)
    return f"{format(float(np.mean(v)), fmt)} ({format(min(v), fmt)}-{format(max(v), fmt)})"


def _pooled_recall(runs: list[dict], kind: str) -> str:
    n = sum(r["recall"][kind]["n"] for r in runs)
    k = sum(r["recall"][kind]["found"] for r in runs)
    return f"{k / n:.0%} ({k}/{n})" if n else "-"


def _pull(run: dict, parameter: str, bin_label: str = "all") -> float | None:
    for row in run["pulls"]:
        if row["parameter"] == parameter and row["bin"] == bin_label:
            return row["pull_std"]
    return None


def report(runs: list[dict]) -> str:
    """Markdown tables: one row per noise kind (mean over seeds, range in brackets)."""
    kinds = list(dict.fromkeys(r["noise"] for r in runs))
    lines = [
        "| noise | seeds | h guided | pull x_mean | pull y_mean | pull amplitude | pull x_stddev "
        "| false peaks FAP<0.01 | FAP<0.001 | unflagged FAP<0.01 | anomaly false alarms / 10 h "
        "| recall drop | jump | PSF | HGA | sinusoid z 3-10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in kinds:
        rs = [r for r in runs if r["noise"] == k]
        n_series = sum(r["false_peaks"]["series"] for r in rs)
        fp = {
            key: sum(r["false_peaks"][key] * r["false_peaks"]["series"] for r in rs)
            / max(n_series, 1)
            for key in ("fap<0.01", "fap<0.001", "fap<0.01_unflagged")
        }
        n_sin = sum(r["sinusoids"]["n"] for r in rs)
        k_sin = sum(r["sinusoids"]["found"] for r in rs)
        lines.append(
            f"| {k} | {len(rs)} | {sum(r['hours_guided'] for r in rs):.1f} | "
            + " | ".join(_mean_range([_pull(r, p) for r in rs], ".2f") for p in PULL_PARAMETERS)
            + f" | {fp['fap<0.01']:.1%} | {fp['fap<0.001']:.1%} | {fp['fap<0.01_unflagged']:.1%}"
            + f" (of {n_series}) | "
            + _mean_range([r["false_alarms_per_10h"] for r in rs], ".2f")
            + " | "
            + " | ".join(_pooled_recall(rs, kind) for kind in EXPECTED)
            + (f" | {k_sin / n_sin:.0%} ({k_sin}/{n_sin}) |" if n_sin else " | - |")
        )
    params = list(dict.fromkeys(p for r in runs for p in r["false_peaks"].get("by_parameter", {})))
    if params:
        lines += [
            "",
            "Quiet-visit series with a best peak at FAP < 0.01 (any label), per parameter, all seeds:",
            "",
            "| noise | " + " | ".join(params) + " |",
            "|---|" + "---|" * len(params),
        ]
        for k in kinds:
            cells = []
            for p in params:
                d = [r["false_peaks"]["by_parameter"].get(p) for r in runs if r["noise"] == k]
                n = sum(x["series"] for x in d if x)
                hit = sum(x["fap<0.01"] for x in d if x)
                cells.append(f"{hit}/{n}" if n else "-")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", "Recall against signal-to-noise (``event_snr``), all seeds:", ""]
    for kind, edges in SNR_BINS.items():
        labels = [
            f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">={lo:g}"
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
        lines += [f"| {kind} S/N | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for k in kinds:
            evs = [
                e
                for r in runs
                if r["noise"] == k
                for e in r.get("events", [])
                if e["kind"] == kind and e.get("snr") is not None
            ]
            cells = []
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                sel = [e["found"] for e in evs if lo <= e["snr"] < hi]
                cells.append(f"{np.mean(sel):.0%} ({sum(sel)}/{len(sel)})" if sel else "-")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    bins_ = list(dict.fromkeys(row["bin"] for r in runs for row in r["pulls"]))
    lines += [
        "",
        "Fit pulls (std of (fit - truth) / error) per true amplitude [DN/s], mean over seeds:",
        "",
        "| noise | amplitude | frames | " + " | ".join(PULL_PARAMETERS) + " |",
        "|---|---|---|" + "---|" * len(PULL_PARAMETERS),
    ]
    for k in kinds:
        rs = [r for r in runs if r["noise"] == k]
        for b in bins_:
            n = sum(
                row["n"]
                for r in rs
                for row in r["pulls"]
                if row["bin"] == b and row["parameter"] == PULL_PARAMETERS[0]
            )
            if not n:
                continue
            lines.append(
                f"| {k} | {b} | {n:,} | "
                + " | ".join(
                    _mean_range([_pull(r, p, b) for r in rs], ".2f") for p in PULL_PARAMETERS
                )
                + " |"
            )
    return "\n".join(lines)


def _gp_frames(text: str) -> tuple[int, int] | None:
    if text in ("0", "none", ""):
        return None
    lo, hi = (int(x) for x in text.split(","))
    return lo, hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--noise",
        default=DEFAULT_NOISE,
        help=f"comma-separated presets of simulate.NOISE_PRESETS (default {DEFAULT_NOISE})",
    )
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    ap.add_argument(
        "--hours", type=float, default=3.0, help="hours of fine guiding per run (default 3)"
    )
    ap.add_argument("--programs", type=int, default=2)
    ap.add_argument(
        "--frames-per-file",
        type=int,
        default=6000,
        help="a visit has 2x this many frames (default 6000: 12.8 min)",
    )
    ap.add_argument(
        "--guide-period-frames",
        type=_gp_frames,
        default=(2000, 15000),
        help="lo,hi: split visits into guide periods of lo-hi frames (default 2000,15000; "
        "0 = two guide periods of --frames-per-file)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--min-sigma", type=float, default=5.0)
    ap.add_argument(
        "--reference-trials",
        type=int,
        default=0,
        help="also run the sinusoid test on white noise alone, this many trials per z bin",
    )
    ap.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the simulated files and archives")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="re-analyse the archives an earlier run kept in --out (--keep) instead of simulating",
    )
    ap.add_argument(
        "--anomaly-detector",
        default=None,
        metavar="REV",
        help="run the anomaly search with fgsarchive/analysis/anomalies.py of git revision REV",
    )
    ap.add_argument(
        "--anomalies-only",
        action="store_true",
        help="skip periodograms and variability (their columns show nothing)",
    )
    ap.add_argument(
        "--debug-misses",
        action="store_true",
        help="print each missed injection (truth row) and the nearest anomalies of its visit",
    )
    args = ap.parse_args()
    from fgsarchive.simulate import NOISE_PRESETS

    kinds = [k.strip() for k in args.noise.split(",") if k.strip()]
    bad = [k for k in kinds if k not in NOISE_PRESETS]
    if bad:
        ap.error(f"unknown noise kind(s) {', '.join(bad)}; presets: {', '.join(NOISE_PRESETS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_science_"))
    runs = []
    started = time.perf_counter()
    for noise in kinds:
        for seed in seeds:
            work = root / f"{noise}-seed{seed}"
            if work.exists() and not args.reuse:
                shutil.rmtree(work)
            work.mkdir(parents=True, exist_ok=True)
            r = run_one(args, noise, seed, work)
            runs.append(r)
            print(
                f"{noise:>12} seed {seed}: {r['hours_guided']:.1f} h, {r['frames']:,} frames, "
                f"{r['guide_periods']} guide periods; "
                + ", ".join(f"{k} {v:.0f}" for k, v in r["timings_s"].items())
                + " s",
                flush=True,
            )
            if not args.keep and not args.reuse:
                shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(runs)} runs in {time.perf_counter() - started:.0f} s\n")
    print(report(runs))
    if args.reference_trials:
        ref = white_noise_reference(
            2 * args.frames_per_file, [3, 5, 7, 10], args.reference_trials, seeds[0]
        )
        print(
            "\n| sinusoid z, on white noise alone (the ceiling) | trials | detected | within 1 % |"
        )
        print("|---|---|---|---|")
        for label, k, det, hit in ref:
            print(f"| {label} | {k} | {det:.0%} | {hit:.0%} |")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs}, indent=1, default=str))
        print(f"\nfigures of every run: {args.json}")
    if not args.keep and args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
