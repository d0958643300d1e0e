"""Science benchmark: are injected signals found by ingest + fit + analyses on a simulated archive?

    python scripts/bench_science.py                 # ~24 h of guiding (1.35M frames), a few minutes on 2 cores
    python scripts/bench_science.py --hours 8       # quicker
    python scripts/bench_science.py --hours 40 --out /tmp/bench_science --keep
    python scripts/bench_science.py --debug-misses  # also list each miss and the nearest anomalies

Simulates ``--programs`` programs (``--hours`` of fine guiding in all, visits of 2 guide periods
of ``--frames-per-file`` frames at 64 ms) guided by a pool of 21 guide stars (FGS mag 12.5-15.3)
that recur across programs: 20 constant and one 1 % variable (sinusoid, P = 50 min). Each visit
gets, at random times at least 60 s from its file edges:

* a flux drop of 0.5-3 % lasting 5-60 s (log-uniform),
* a centroid jump of 0.02-0.2 px (log-uniform, random direction), to the end of the visit,
* a PSF-width step of 2-10 % in x_stddev (half that in y_stddev), to the end of the visit,
* every third visit a 60-s high-gain-antenna move (extra 0.03-px pointing jitter),
* every other visit a flux sinusoid of period 60-600 s (log-uniform) whose amplitude is
  z = 3-10 times its own least-squares uncertainty ``sigma sqrt(2 / N)`` (sigma: the star's
  expected per-frame noise of the summed flux, N: frames of the visit) -- from undetectable to
  clear, so the recall curve crosses the false-alarm threshold;
* the other visits an x-centroid sinusoid of period 60-600 s and amplitude 0.001-0.08 px
  (log-uniform; 0.01 px is the RMS of the simulated red pointing wander), scored by its
  amplitude over the visit's per-frame (white) x_mean noise.

Then: ingest (2 workers), fit (Gaussian, moments, photometry), derive events (offline),
anomalies, periodograms by visit, variables -- exactly what ``fgsarchive analyse`` runs. Scores:

* anomalies: an injection is found when an anomaly of the same visit whose ``kinds`` contain the
  expected kind (flux_drop, centroid_jump, psf_change, jitter_burst) starts within 5 s of it;
  timing error = |anomaly start - injected start|; a false alarm is an anomaly that touches no
  injection (+-5 s) of any kind, counted per 10 h of guided data;
* sinusoids: detected when the visit's flux or flux_opt periodogram (top 5 peaks each) has a peak
  with FAP < 1 %, not blamed on the pointing (``pointing``), within 3 % of the injected period,
  and "within 1 %" when that peak is within 1 %; next to it, the same test on white noise alone
  (``white_noise_reference``: the ceiling any detector reaches over the full frequency grid);
  false detections: quiet visits (no sinusoid, not the variable star) whose flux shows a peak
  with FAP < 1 % not labelled instrumental;
* the variable star's rank among the 21 (1 = most variable).

Prints one table per kind (recall by amplitude bin) and writes ``summary.json`` to ``--out``.
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
GAP_MIN_S, GAP_MAX_S = 15.0, 45.0  # guide_gap_s 30 s +-50 %
EDGE_S = 60.0
CSIN_MIN_PX, CSIN_MAX_PX = 0.001, 0.08  # centroid sinusoid amplitudes (x), log-uniform
WINDOW_S = 5.0
EXPECTED = {
    "flux_drop": "flux_drop",
    "centroid_jump": "centroid_jump",
    "psf_width_change": "psf_change",
    "hga_move": "jitter_burst",
}


def per_frame_noise(fgs_mag: float) -> float:
    """Expected relative noise of a frame's summed flux (the simulator's noise model)."""
    from fgsarchive.simulate import amplitude_from_mag

    amp = float(amplitude_from_mag(fgs_mag))
    flux = 2 * math.pi * amp * 0.57 * 0.62  # DN/s in the PSF
    sky = 64 * 3000.0
    k = 2.0 * CADENCE_S / 2  # gain x exposure (cadence / 2) [e- per DN/s]
    return math.sqrt((flux + sky) * k + 64 * 12.0**2) / (flux * k)


def plan(args, rng):
    """Stars, programs and injections."""
    from fgsarchive import simulate as sim

    stars = sim.make_guide_stars(21, seed=args.seed, center=(80.8, -69.5))
    variable = stars[0].gs_id
    frames_per_visit = 2 * args.frames_per_file
    n_visits_total = max(args.programs, round(args.hours * 3600 / (frames_per_visit * CADENCE_S)))
    per_program = [
        n_visits_total // args.programs + (i < n_visits_total % args.programs)
        for i in range(args.programs)
    ]
    t_file = args.frames_per_file * CADENCE_S
    programs = []
    for p, n_visits in enumerate(per_program):
        program = 2000 + p
        pool = [stars[(5 * p + j) % len(stars)] for j in range(7)]
        injections, truth_sin, truth_csin = [], [], []
        # centroid sinusoids from a generator of their own: the other injections stay as they were
        rng_c = np.random.default_rng([args.seed, program])
        for v in range(1, n_visits + 1):
            star = pool[(v - 1) % len(pool)]
            # file 2 starts between f2_min and f2_max seconds after the visit's fine-guide start
            f2_min, f2_max, half = t_file + GAP_MIN_S, t_file + GAP_MAX_S, t_file / 2

            def when(lo, hi, length=0.0):
                return float(rng.uniform(lo, hi - length))

            depth = float(rng.uniform(0.005, 0.03))
            dur = float(np.exp(rng.uniform(np.log(5), np.log(60))))
            injections.append(
                sim.FluxDrop(
                    start_s=when(EDGE_S, half - 30, dur), duration_s=dur, depth=depth, visit=v
                )
            )
            jump = float(np.exp(rng.uniform(np.log(0.02), np.log(0.2))))
            ang = rng.uniform(0, 2 * np.pi)
            injections.append(
                sim.CentroidJump(
                    time_s=when(half + 30, t_file - EDGE_S),
                    dx=jump * math.cos(ang),
                    dy=jump * math.sin(ang),
                    visit=v,
                )
            )
            frac = float(rng.uniform(0.02, 0.10))
            injections.append(
                sim.PsfWidthChange(
                    time_s=when(f2_max + EDGE_S, f2_max + half),
                    frac_x=frac,
                    frac_y=frac / 2,
                    visit=v,
                )
            )
            if v % 3 == 0:
                injections.append(
                    sim.HgaMove(
                        start_s=when(f2_max + half + 30, f2_min + t_file - EDGE_S, 60.0),
                        duration_s=60.0,
                        visit=v,
                    )
                )
            if v % 2 == 0:
                z = float(rng.uniform(3, 10))
                amp = z * per_frame_noise(star.fgs_mag) * math.sqrt(2.0 / frames_per_visit)
                quantity, truth, gen = "flux", truth_sin, rng
            else:
                amp = float(np.exp(rng_c.uniform(np.log(CSIN_MIN_PX), np.log(CSIN_MAX_PX))))
                quantity, truth, gen = "x", truth_csin, rng_c
            period = float(np.exp(gen.uniform(np.log(60), np.log(600))))
            injections.append(
                sim.PeriodicSignal(
                    period_s=period,
                    amplitude=amp,
                    quantity=quantity,
                    observation=1,
                    visit=v,
                    phase=float(gen.uniform(0, 2 * np.pi)),
                )
            )
            truth.append({"program": program, "visit": v, "period_s": period, "amplitude": amp})
            if quantity == "flux":
                truth[-1]["z"] = z
        programs.append(
            {
                "program": program,
                "n_visits": n_visits,
                "stars": pool,
                "injections": injections,
                "sinusoids": truth_sin,
                "centroid_sinusoids": truth_csin,
                "start_mjd": 59918.0 + 2.0 * p,
            }
        )
    return stars, variable, programs


def white_noise_reference(
    n: int, z_edges: list[float], trials: int, seed: int, n_peaks: int = 5
) -> list[tuple[str, int, float, float]]:
    """The same sinusoid test on white noise alone: the ceiling any detector reaches.

    ``n`` frames at 64 ms (one visit, two files with a 30-s gap), a sinusoid of period 60-600 s
    and amplitude ``z * sqrt(2 / n)`` (unit noise), z uniform in each bin of ``z_edges``.
    Returns (bin label, trials, detected within 3 % at FAP < 1 %, within 1 %) per bin.
    """
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


def score_centroid_sinusoids(
    db, programs, peaks: pl.DataFrame, jitter_lines: pl.DataFrame
) -> pl.DataFrame:
    """Each injected x sinusoid: its z against the visit's per-frame (white) x_mean noise, and
    whether the visit's x_mean periodogram has a peak with FAP < 1 % within 3 % (1 %) of it;
    ``blended``: within one resolution element (1 / visit length) of the program's own
    minutes-scale pointing line, which no periodogram of that visit can tell apart from it."""
    from fgsarchive.analysis.detrend import diff_noise

    rows = []
    for p in programs:
        for s in p["centroid_sinusoids"]:
            with db.reader() as con:
                x = (
                    con.sql(
                        "SELECT g.x_mean FROM fits g JOIN files f USING (file_name) "
                        f"WHERE f.program = {int(s['program'])} AND f.visit = {int(s['visit'])} "
                        "AND f.product = 'fg' AND g.status = 0 ORDER BY f.data_start_mjd, g.frame"
                    )
                    .pl()["x_mean"]
                    .to_numpy()
                )
            sigma = diff_noise(x[np.isfinite(x)])
            z = s["amplitude"] / (sigma * math.sqrt(2.0 / max(1, x.size)))
            per_frame = s["amplitude"] / sigma
            cand = peaks.filter(
                (pl.col("program") == s["program"])
                & (pl.col("visit") == s["visit"])
                & (pl.col("parameter") == "x_mean")
                & (pl.col("fap") < 0.01)
            )
            rel = (cand["period_s"] / s["period_s"] - 1).abs()
            best = float(rel.min()) if cand.height else None
            lines = jitter_lines.filter(
                (pl.col("program") == s["program"]) & (pl.col("period_s") > 10)
            )["frequency_hz"].to_numpy()
            visit_s = x.size * CADENCE_S
            blended = bool(np.any(np.abs(lines - 1.0 / s["period_s"]) < 1.0 / visit_s))
            rows.append(
                {
                    **s,
                    "z": z,
                    "per_frame_sigmas": per_frame,
                    "blended": blended,
                    "detected": best is not None and best < 0.03,
                    "found": best is not None and best < 0.01,
                }
            )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def bins(values, edges):
    return np.digitize(values, edges[1:-1])


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


def simulate_ingest_fit(args, work: Path, variable: str, programs: list, timings: dict) -> int:
    """Simulate the programs into ``work/products``, ingest and fit them; the frame count."""
    from fgsarchive import simulate as sim
    from fgsarchive.db import Database
    from fgsarchive.fit.runner import fit_archive
    from fgsarchive.ingest import ingest_directory

    t0 = time.perf_counter()
    for p in programs:
        sim.simulate_program(
            work / "products",
            program=p["program"],
            n_observations=1,
            n_visits=p["n_visits"],
            files_per_visit=2,
            frames_per_file=args.frames_per_file,
            n_guide_stars=len(p["stars"]),
            stars=p["stars"],
            start_mjd=p["start_mjd"],
            seed=args.seed + p["program"],
            injections=p["injections"],
            variable_stars=[
                sim.VariableStar(
                    star=variable, kind="sinusoid", period_s=3000.0, amplitude=0.01, t0_mjd=59918.0
                )
            ]
            if any(s.gs_id == variable for s in p["stars"])
            else [],
            include_other_products=False,
            workers=args.workers,
        )
    timings["simulate"] = time.perf_counter() - t0
    db = Database(work / "archive.duckdb")
    t0 = time.perf_counter()
    rep = ingest_directory(db, work / "products", workers=args.workers)
    timings["ingest"] = time.perf_counter() - t0
    n_frames = rep.n_frames
    t0 = time.perf_counter()
    fit_archive(db, workers=args.workers)
    timings["fit"] = time.perf_counter() - t0
    return n_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--hours", type=float, default=24.0, help="hours of fine guiding in all (default 24)"
    )
    ap.add_argument("--programs", type=int, default=4)
    ap.add_argument(
        "--frames-per-file", type=int, default=12_000, help="frames per guide period (2 per visit)"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-sigma", type=float, default=5.0)
    ap.add_argument(
        "--reference-trials",
        type=int,
        default=40,
        help="sinusoids per z bin in the white-noise reference (the detection ceiling)",
    )
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the simulated files and archive")
    ap.add_argument(
        "--analyse-only",
        action="store_true",
        help="re-run only the analyses and the scoring on the archive a --keep run left in --out",
    )
    ap.add_argument(
        "--debug-misses",
        action="store_true",
        help="print each missed injection (truth row) and the nearest anomalies of its visit",
    )
    args = ap.parse_args()

    from fgsarchive import simulate as sim
    from fgsarchive.analysis.archive_io import run_anomalies, run_periodograms, run_variables
    from fgsarchive.db import Database

    if args.analyse_only and (args.out is None or not (args.out / "archive.duckdb").exists()):
        ap.error("--analyse-only needs --out with the archive of an earlier --keep run")
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_science_"))
    if work.exists() and args.out is not None and not args.analyse_only:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    stars, variable, programs = plan(args, rng)
    timings: dict[str, float] = {}
    if not args.analyse_only:
        n_frames = simulate_ingest_fit(args, work, variable, programs, timings)
    db = Database(work / "archive.duckdb")
    if args.analyse_only:
        with db.reader() as con:
            n_frames = int(con.sql("SELECT count(*) FROM frames").fetchall()[0][0])
    truth = sim.read_truth(work / "products" / "truth")
    t0 = time.perf_counter()
    try:
        from fgsarchive.telemetry import derive_events

        derive_events(db)
    except ImportError:
        pass
    timings["events"] = time.perf_counter() - t0
    quiet = lambda s: None  # noqa: E731
    t0 = time.perf_counter()
    anomalies = run_anomalies(db, min_sigma=args.min_sigma, on_warning=quiet)
    timings["anomalies"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    peaks = run_periodograms(db, by="visit", on_warning=quiet)
    timings["periodograms"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    variability = run_variables(db, on_warning=quiet)
    timings["variables"] = time.perf_counter() - t0
    with db.reader() as con:
        guided_h = con.sql(
            "SELECT sum(data_end_mjd - data_start_mjd) * 24 FROM files WHERE product = 'fg'"
        ).fetchall()[0][0]

    # --- score the anomalies
    inj = truth.events.filter(pl.col("kind").is_in(list(EXPECTED))).unique(
        ["event_id", "program"], keep="first"
    )
    an = anomalies.with_row_index("aid")
    rows = []
    w = WINDOW_S / 86400.0
    for ev in inj.iter_rows(named=True):
        want = EXPECTED[ev["kind"]]
        cand = an.filter(
            (pl.col("program") == ev["program"])
            & (pl.col("visit") == ev["visit"])
            & pl.col("kinds").list.contains(want)
            & ((pl.col("start_mjd") - ev["start_mjd"]).abs() < w)
        )
        found = cand.height > 0
        err = float((cand["start_mjd"] - ev["start_mjd"]).abs().min() * 86400) if found else None
        amp = {
            "flux_drop": ev["depth"],
            "centroid_jump": math.hypot(ev["dx"] or 0, ev["dy"] or 0),
            "psf_width_change": ev["frac_x"],
            "hga_move": ev["jitter_px"],
        }[ev["kind"]]
        rows.append(
            {
                "kind": ev["kind"],
                "program": ev["program"],
                "visit": ev["visit"],
                "gs_id": ev["gs_id"],
                "start_mjd": ev["start_mjd"],
                "amplitude": amp,
                "duration_s": ev["duration_s"],
                "found": found,
                "timing_error_s": err,
            }
        )
    scored = pl.DataFrame(rows)
    if args.debug_misses:
        debug_misses(scored, an)
    # anomalies touching any injection (any kind, +-5 s) are not false alarms
    touched = np.zeros(an.height, dtype=bool)
    a_start, a_end = an["start_mjd"].to_numpy(), an["end_mjd"].to_numpy()
    a_prog, a_visit = an["program"].to_numpy(), an["visit"].to_numpy()
    all_inj = truth.events.filter(pl.col("kind") != "variable_star")
    for ev in all_inj.iter_rows(named=True):
        if ev["kind"] == "periodic_signal":
            continue
        hit = (
            (a_prog == ev["program"])
            & (a_visit == ev["visit"])
            & (a_start <= ev["end_mjd"] + w)
            & (a_end >= ev["start_mjd"] - w)
        )
        touched |= hit
    false_alarms = an.filter(~pl.Series(touched))
    fa_per_10h = false_alarms.height / guided_h * 10.0

    # --- sinusoids
    sin_rows = []
    for p in programs:
        for s in p["sinusoids"]:
            cand = peaks.filter(
                (pl.col("program") == s["program"])
                & (pl.col("visit") == s["visit"])
                & pl.col("parameter").is_in(["flux", "flux_opt"])
                & (pl.col("fap") < 0.01)
                & ~pl.col("pointing").fill_null(False)
            )
            rel = (cand["period_s"] / s["period_s"] - 1).abs()
            best = float(rel.min()) if cand.height else None
            sin_rows.append(
                {
                    **s,
                    "detected": best is not None and best < 0.03,
                    "found": best is not None and best < 0.01,
                    "period_error": best if best is not None and best < 0.03 else None,
                }
            )
    sins = pl.DataFrame(sin_rows) if sin_rows else pl.DataFrame()

    var_rank = variability.filter(pl.col("gs_id") == variable)["rank"].to_list()
    summary = {
        "hours_guided": round(guided_h, 2),
        "frames": n_frames,
        "programs": len(programs),
        "visits": sum(p["n_visits"] for p in programs),
        "stars": len(stars),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "false_alarms": false_alarms.height,
        "false_alarms_per_10h": round(fa_per_10h, 2),
        "false_alarm_kinds": false_alarms.group_by("kind")
        .len()
        .sort("len", descending=True)
        .rows(),
        "variable_rank": var_rank[0] if var_rank else None,
        "variable_top": variability.head(3)
        .select("rank", "gs_id", "score", "rms_ppm", "excess")
        .rows(),
    }
    print(
        f"\n{summary['hours_guided']:.1f} h guided, {n_frames:,} frames, {summary['visits']} visits, "
        f"{len(programs)} programs, {len(stars)} stars"
    )
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print("\n| kind | amplitude bin | injected | recall | median / max timing error (s) |")
    print("|---|---|---|---|---|")
    edges = {
        "flux_drop": [0.005, 0.01, 0.02, 0.0301],
        "centroid_jump": [0.02, 0.05, 0.1, 0.201],
        "psf_width_change": [0.02, 0.04, 0.07, 0.101],
        "hga_move": [0.0, 1.0],
    }
    unit = {
        "flux_drop": "depth",
        "centroid_jump": "px",
        "psf_width_change": "frac",
        "hga_move": "jitter px",
    }
    per_kind = {}
    for kind, e in edges.items():
        sub = scored.filter(pl.col("kind") == kind)
        if sub.is_empty():
            continue
        b = bins(sub["amplitude"].to_numpy(), np.asarray(e))
        for i in range(len(e) - 1):
            part = sub.filter(pl.Series(b == i))
            if part.is_empty():
                continue
            errs = part["timing_error_s"].drop_nulls()
            label = (
                f"{e[i]:g}-{min(e[i + 1], e[-1]):.3g} {unit[kind]}"
                if kind != "hga_move"
                else "60 s, 0.03 px"
            )
            print(
                f"| {EXPECTED[kind]} | {label} | {part.height} | {part['found'].mean():.0%} | "
                + (f"{errs.median():.2f} / {errs.max():.2f}" if errs.len() else "-")
                + " |"
            )
        errs = sub["timing_error_s"].drop_nulls()
        per_kind[kind] = {
            "n": sub.height,
            "recall": round(float(sub["found"].mean()), 3),
            "timing_median_s": round(float(errs.median()), 3) if errs.len() else None,
            "timing_max_s": round(float(errs.max()), 3) if errs.len() else None,
        }
        print(
            f"| {EXPECTED[kind]} | all | {sub.height} | {sub['found'].mean():.0%} | "
            + (f"{errs.median():.2f} / {errs.max():.2f}" if errs.len() else "-")
            + " |"
        )
    summary["anomalies"] = per_kind
    if sins.height:
        print(
            "\n| sinusoid z (amplitude / its uncertainty) | injected | detected (peak within 3 %, FAP < 1 %) "
            "| period within 1 % | median period error of the detected |"
        )
        print("|---|---|---|---|---|")
        zb = bins(sins["z"].to_numpy(), np.array([3, 5, 7, 10.01]))
        for i, label in enumerate(("3-5", "5-7", "7-10")):
            part = sins.filter(pl.Series(zb == i))
            if part.is_empty():
                continue
            errs = part["period_error"].drop_nulls()
            print(
                f"| {label} | {part.height} | {part['detected'].mean():.0%} | {part['found'].mean():.0%} | "
                + (f"{errs.median():.2%}" if errs.len() else "-")
                + " |"
            )
        summary["sinusoids"] = {
            "n": sins.height,
            "detected": round(float(sins["detected"].mean()), 3),
            "within_1pct": round(float(sins["found"].mean()), 3),
        }
    csin = score_centroid_sinusoids(db, programs, peaks, truth.jitter_lines)
    if csin.height:
        print(
            "\n| centroid (x) sinusoid amplitude / per-frame (white) x_mean noise | injected "
            "| amplitude (px) | detected (x_mean peak within 3 %, FAP < 1 %) | period within 1 % "
            "| of those not blended with the pointing's own line: injected, detected, within 1 % |"
        )
        print("|---|---|---|---|---|---|")
        edges = [0.0, 1.0, 3.0, 5.0, 10.0, np.inf]
        sb = bins(csin["per_frame_sigmas"].to_numpy(), np.array(edges))
        for i in range(len(edges) - 1):
            part = csin.filter(pl.Series(sb == i))
            if part.height:
                clear = part.filter(~pl.col("blended"))
                print(
                    f"| {edges[i]:g}-{edges[i + 1]:g} | {part.height} "
                    f"| {part['amplitude'].min():.3f}-{part['amplitude'].max():.3f} "
                    f"| {part['detected'].mean():.0%} | {part['found'].mean():.0%} "
                    + (
                        f"| {clear.height}, {clear['detected'].mean():.0%}, "
                        f"{clear['found'].mean():.0%} |"
                        if clear.height
                        else "| 0 |"
                    )
                )
        summary["centroid_sinusoids"] = csin.select(
            "program",
            "visit",
            "period_s",
            "amplitude",
            "z",
            "per_frame_sigmas",
            "blended",
            "detected",
            "found",
        ).rows(named=True)
    if sins.height:
        ref = white_noise_reference(
            2 * args.frames_per_file, [3, 5, 7, 10], args.reference_trials, args.seed
        )
        print(
            "\n| sinusoid z, on white noise alone (the ceiling) | trials | detected | within 1 % |"
        )
        print("|---|---|---|---|")
        for label, k, det, hit in ref:
            print(f"| {label} | {k} | {det:.0%} | {hit:.0%} |")
        summary["sinusoids_white_noise_reference"] = [
            {"z": label, "trials": k, "detected": round(det, 3), "within_1pct": round(hit, 3)}
            for label, k, det, hit in ref
        ]
    # visits with no injected sinusoid and not the variable star: any flux peak with FAP < 1 %
    # (not labelled instrumental) is a false detection
    with_sin = {(s["program"], s["visit"]) for p in programs for s in p["sinusoids"]}
    quiet_visits = (
        peaks.filter(
            pl.col("parameter").is_in(["flux", "flux_opt"]) & (pl.col("gs_id") != variable)
        )
        .group_by("program", "visit")
        .agg(((pl.col("fap") < 0.01) & ~pl.col("instrumental").fill_null(False)).any().alias("hit"))
        .filter(
            ~pl.struct("program", "visit").map_elements(
                lambda r: (r["program"], r["visit"]) in with_sin, return_dtype=pl.Boolean
            )
        )
    )
    if quiet_visits.height:
        summary["sinusoid_false_detections"] = {
            "visits": quiet_visits.height,
            "with_a_peak_fap_below_1pct": int(quiet_visits["hit"].sum()),
        }
        print(
            f"visits without a sinusoid (nor the variable star) whose flux shows a peak with "
            f"FAP < 1 %: {int(quiet_visits['hit'].sum())} of {quiet_visits.height}"
        )
    print(
        f"\nfalse alarms: {false_alarms.height} in {guided_h:.1f} h = {fa_per_10h:.2f} per 10 h "
        f"({', '.join(f'{k} {n}' for k, n in summary['false_alarm_kinds']) or 'none'})"
    )
    print(
        f"variable star (1 %, P = 50 min) rank: {summary['variable_rank']} of {variability.height}"
    )
    (work / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"summary: {work / 'summary.json'}")
    if not args.keep and args.out is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
