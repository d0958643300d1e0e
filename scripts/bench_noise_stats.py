"""Benchmark: false-alarm rates and recall of the periodogram and anomaly statistics on series of
pure noise of many kinds (white, AR(1), random walk, power law, a mixture), in gapped guide
periods of 2k-15k frames at 64 ms (``fgsarchive.testing.noise``), old rule beside new.

    PYTHONPATH=. python scripts/bench_noise_stats.py                 # ~10 min on 2 shared cores
    PYTHONPATH=. python scripts/bench_noise_stats.py --series 100 --hours 5 --seeds 1 2 3
    PYTHONPATH=. python scripts/bench_noise_stats.py --skip anomalies --series 300 --seeds 1

Per seed and noise kind:
1. periodograms: share of pure-noise guide periods whose best peak has FAP < 0.01 and < 0.001,
   with Baluev's white-noise FAP (``significance="white"``, round 1), against the local
   continuum alone (``"local"``, round 2) and against the continuum fitted to the whole
   spectrum (``"continuum"``, the default), side by side on the same series;
2. anomalies: false alarms per 10 h of clean series (flux 0.3 %, centroid 0.01 px, width 1 %
   per frame, each with the kind's red part), each segment's own noise scale (round 1,
   ``noise_pooling=False``) and the pooled one (default);
3. recall of 1 % flux drops of 5-30 s, 0.05-px centroid jumps and 5 % PSF-width changes
   (one per guide period) with the new rule;
4. recall of sinusoids of 60-600 s in 12k-frame visits (guide periods of 2k-15k frames, 15-45-s
   gaps) per bin of z, the amplitude over its least-squares error against the noise at its
   frequency (``red_excess``), FAP < 0.01 within half a resolution element, by the three
   measures (Baluev's is the ideal detector on white noise, and meaningless on red).
Kinds held out while the constants were chosen are marked ``*`` (``HELD_OUT_KINDS``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fgsarchive.analysis.anomalies import detect_anomalies
from fgsarchive.analysis.periodogram import periodogram_series
from fgsarchive.testing.noise import (
    CADENCE_S,
    HELD_OUT_KINDS,
    NOISE_KINDS,
    gapped_series,
    make_noise,
    noisy_visit,
)

LEVELS = {"flux": (1e5, 0.003, True), "x_mean": (3.5, 0.01, False), "x_stddev": (0.64, 0.01, True)}
"""Series of the anomaly bench: (level, per-frame noise, noise relative to the level)."""
KIND_OF = {"flux": "flux_drop", "x_mean": "centroid_jump", "x_stddev": "psf_change"}


def false_peak_rates(kind: str, n_series: int, seed: int) -> dict[str, float]:
    """Shares of pure-noise guide periods with a best peak below FAP 0.01 / 0.001, by each
    measure: Baluev's white-noise FAP, the local continuum alone (round 2) and the default
    (the continuum fitted to the whole spectrum)."""
    rng = np.random.default_rng(seed)
    faps = {m: [] for m in MEASURES}
    for _ in range(n_series):
        s = gapped_series(kind, rng)
        for m in MEASURES:
            res = periodogram_series(s.time_s, s.values, n_peaks=1, significance=m)
            faps[m].append(res.peaks["fap"][0])
    out = {}
    for m, f in faps.items():
        f = np.asarray(f)
        out[f"{m}01"], out[f"{m}001"] = (f < 0.01).mean(), (f < 0.001).mean()
    return out


MEASURES = ("white", "local", "continuum")
"""significance= values compared: Baluev's white-noise FAP, the local continuum, the default."""


def guide_period_series(kind: str, rng: np.random.Generator):
    """(time_s, {name: values}) of one visit (2-4 guide periods of 2k-15k frames, each in 2-6
    segments) with the kind's noise in every series; one ``detect_anomalies`` call, as the
    archive makes per guide star and visit."""
    return noisy_visit(kind, rng, LEVELS)


def anomaly_rates(kind: str, hours: float, seed: int) -> dict[str, float]:
    """False alarms per 10 h (old, new) on clean series, and recall of injected events (new)."""
    rng = np.random.default_rng(seed)
    frames, fa_old, fa_new = 0, 0, 0
    while frames * CADENCE_S < hours * 3600:
        t, series = guide_period_series(kind, rng)
        frames += t.size
        t_mjd = 60000.0 + t / 86400.0
        fa_old += detect_anomalies(t_mjd, series, noise_pooling=False, workers=1).height
        fa_new += detect_anomalies(t_mjd, series, workers=1).height
    per10 = 10.0 / (frames * CADENCE_S / 3600)
    hits = {k: [0, 0] for k in KIND_OF}
    n_inj = max(30, int(hours * 6))
    for i in range(n_inj):
        name = list(KIND_OF)[i % 3]
        t, series = guide_period_series(kind, rng)
        seg = np.concatenate(([0], np.flatnonzero(np.diff(t) > 10 * CADENCE_S) + 1, [t.size]))
        k = int(np.argmax(np.diff(seg)))
        a, b = int(seg[k]), int(seg[k + 1])
        if b - a < 1200:
            continue
        level, _, relative = LEVELS[name]
        if name == "flux":
            dur = int(round(rng.uniform(5, 30) / CADENCE_S))
            i0 = int(rng.integers(a + 200, b - 200 - dur))
            series[name][i0 : i0 + dur] -= 0.01 * level
            t0, t1 = t[i0], t[i0 + dur - 1]
        else:
            i0 = int(rng.integers(a + 300, b - 300))
            step = 0.05 * (level if relative else 1.0) * rng.choice([-1, 1])
            series[name][i0:] += step
            t0 = t1 = t[i0]
        an = detect_anomalies(60000.0 + t / 86400.0, series, workers=1)
        hits[name][1] += 1
        for r in an.iter_rows(named=True):
            s0 = (r["start_mjd"] - 60000.0) * 86400.0
            s1 = (r["end_mjd"] - 60000.0) * 86400.0
            if KIND_OF[name] in r["kinds"] and s0 - 3 <= t1 and s1 + 3 >= t0:
                hits[name][0] += 1
                break
    out = {"fa_old": fa_old * per10, "fa_new": fa_new * per10, "hours": frames * CADENCE_S / 3600}
    for name, (h, n) in hits.items():
        out[f"recall_{name}"] = h / n if n else float("nan")
    return out


Z_BINS = ((3, 5), (5, 7), (7, 10), (10, 15))


def visit_series(kind: str, rng: np.random.Generator, n_frames: int = 12000):
    """(time_s, noise) of a visit of ``n_frames`` frames in guide periods of 2k-15k frames
    (log-uniform) with 15-45-s gaps, as the science bench simulates."""
    parts, t0, left = [], 0.0, n_frames
    while left > 0:
        n = min(int(np.exp(rng.uniform(np.log(2000), np.log(15000)))), left)
        left -= n
        parts.append(t0 + np.arange(n) * CADENCE_S)
        t0 = parts[-1][-1] + rng.uniform(15.0, 45.0)
    t = np.concatenate(parts)
    idx = np.round(t / CADENCE_S).astype(int)
    return t, make_noise(kind, int(idx[-1]) + 1, rng)[idx]


def red_excess(kind: str, rng: np.random.Generator, n_visits: int = 20):
    """Function of frequency (Hz): the kind's mean periodogram over ``n_visits`` noise visits
    (conditioned as the archive does: per-segment median) over its white level -- how much more
    amplitude a sinusoid needs there to be as significant as on white noise."""
    fb = np.geomspace(5e-4, 8.0, 120)
    acc = np.zeros(fb.size - 1)
    cnt = np.zeros(fb.size - 1)
    for _ in range(n_visits):
        t, y = visit_series(kind, rng)
        res = periodogram_series(t, y, n_peaks=0, significance="white")
        f, pw = res.frequency_hz(), res.power[0]
        white = np.median(pw[f > 2.0]) / np.log(2.0)
        k = np.searchsorted(fb, f) - 1
        ok = (k >= 0) & (k < acc.size)
        np.add.at(acc, k[ok], pw[ok] / white)
        np.add.at(cnt, k[ok], 1)
    fc = np.sqrt(fb[:-1] * fb[1:])[cnt > 0]
    ratio = np.maximum((acc / np.maximum(cnt, 1))[cnt > 0], 1.0)
    return lambda freq: float(np.exp(np.interp(np.log(freq), np.log(fc), np.log(ratio))))


def sinusoid_recall(kind: str, n_series: int, seed: int, periods=(60.0, 600.0)):
    """Recall per z bin of a sinusoid of log-uniform period in ``periods`` in a 12k-frame
    visit: a peak with FAP < 0.01 within half a resolution element of its frequency, by each
    measure of ``MEASURES``. z is the amplitude over its least-squares error against the noise
    at the sinusoid's frequency: ``sigma sqrt(2 / N) sqrt(S(f) / W)`` (``red_excess``; 1 on
    white noise), so the red rows read like the white one."""
    rng = np.random.default_rng(seed)
    excess = red_excess(kind, rng) if kind != "white" else (lambda _f: 1.0)
    out = {}
    for lo, hi in Z_BINS:
        hits = dict.fromkeys(MEASURES, 0)
        for _ in range(n_series):
            t, y = visit_series(kind, rng)
            z = rng.uniform(lo, hi)
            period = np.exp(rng.uniform(*np.log(periods)))
            amp = z * np.sqrt(2.0 / t.size) * np.sqrt(excess(1.0 / period))
            y = y + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 7))
            for m in MEASURES:
                pk = periodogram_series(t, y, n_peaks=3, significance=m).peaks
                near = (pk["frequency_hz"] - 1.0 / period).abs() * t[-1] < 0.5
                hits[m] += bool(((pk["fap"] < 0.01) & near).any())
        out[(lo, hi)] = {m: h / n_series for m, h in hits.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--series", type=int, default=200, help="pure-noise periodograms per kind")
    ap.add_argument("--hours", type=float, default=10.0, help="hours of clean series per kind")
    ap.add_argument("--sine-series", type=int, default=40, help="series per z bin")
    ap.add_argument("--kinds", nargs="+", default=list(NOISE_KINDS))
    ap.add_argument(
        "--sine-kinds", nargs="+", default=["white", "ar1-10%-20s", "random-walk", "mixture"]
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["peaks", "anomalies", "sines"])
    args = ap.parse_args()
    started = time.perf_counter()
    mark = {k: ("*" if k in HELD_OUT_KINDS else " ") for k in args.kinds}
    if "peaks" not in args.skip:
        print(f"== periodogram: share of {args.series} pure-noise guide periods with best-peak FAP")
        print("kind            seed  Baluev<0.01 <0.001 | local<0.01 <0.001 | fitted<0.01 <0.001")
        for kind in args.kinds:
            for seed in args.seeds:
                r = false_peak_rates(kind, args.series, seed)
                print(
                    f"{kind:14s}{mark[kind]} {seed:4d}  {r['white01']:10.1%} {r['white001']:6.1%} |"
                    f" {r['local01']:9.1%} {r['local001']:6.1%} |"
                    f" {r['continuum01']:10.1%} {r['continuum001']:6.1%}",
                    flush=True,
                )
    if "anomalies" not in args.skip:
        print(f"== anomalies: false alarms per 10 h ({args.hours:g} h clean per kind and seed)")
        print("kind            seed  own-scale  pooled | recall drop / jump / width (pooled)")
        for kind in args.kinds:
            for seed in args.seeds:
                r = anomaly_rates(kind, args.hours, seed)
                print(
                    f"{kind:14s}{mark[kind]} {seed:4d}  {r['fa_old']:9.2f} {r['fa_new']:7.2f} |"
                    f" {r['recall_flux']:.0%} / {r['recall_x_mean']:.0%} /"
                    f" {r['recall_x_stddev']:.0%}"
                )
    if "sines" not in args.skip:
        print(
            f"== sinusoids, 60-600 s in 12k-frame visits: recall (FAP < 0.01, within half a"
            f" resolution element), {args.sine_series} per z bin; Baluev / local / fitted"
        )
        for kind in args.sine_kinds:
            for seed in args.seeds[:1]:
                r = sinusoid_recall(kind, args.sine_series, seed)
                cells = "  ".join(
                    f"z {lo}-{hi}: {v['white']:.0%}/{v['local']:.0%}/{v['continuum']:.0%}"
                    for (lo, hi), v in r.items()
                )
                print(f"{kind:14s}{mark.get(kind, ' ')} {seed:4d}  {cells}", flush=True)
    print(f"({time.perf_counter() - started:.0f} s; * = held out while the constants were chosen)")


if __name__ == "__main__":
    main()
