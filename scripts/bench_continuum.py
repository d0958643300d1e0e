"""Benchmark: the per-series work of a periodogram after its kernel, now and at an older commit.

    PYTHONPATH=. taskset -c 1 python scripts/bench_continuum.py              # vs b74d062
    PYTHONPATH=. python scripts/bench_continuum.py --baseline HEAD~3 --repeat 5

1. ``noise_continuum`` (and its parts ``local_continuum``, ``fitted_continuum``) of 9 series
   sharing one grid of 44,000 frequencies (5 samples per peak: a 17.5k-frame unit to Nyquist),
   white, AR(1) and random-walk spectra with a few lines: ms per series.
2. ``decorrelate_pointing`` of a 30,000-frame unit of 3 files, frame by frame with the widths
   (the periodogram's conditioning) and on 64-frame bins (the anomaly search): ms per call.

The baseline is the same functions read from ``git show <commit>:<file>`` and run in this
process side by side (same data, same machine load); each figure is the best CPU time
(process_time) of ``--repeat``.
The outputs are compared too (largest relative difference). Timings on a shared machine are
noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from fgsarchive.analysis import detrend, periodogram

ROOT = Path(__file__).resolve().parents[1]


def load_baseline(commit: str, rel: str, name: str):
    """The module ``rel`` as of ``commit`` (its relative imports made absolute), or None."""
    try:
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:{rel}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"baseline {commit}:{rel} unavailable ({exc}); showing the current figures only")
        return None
    src = src.replace("from .", "from fgsarchive.analysis.")
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def spectra(nf: int = 44_000, k: int = 9, seed: int = 0):
    """k seeded noise periodograms on one grid (white, AR(1), random walk; a few lines)."""
    rng = np.random.default_rng(seed)
    f0, df, bpr = 1 / 1120.0, 1 / (5 * 1120.0), 5.0
    f = f0 + df * np.arange(nf)
    shapes = (np.ones(nf), 1 + 300 / (1 + (f / 0.02) ** 2), 1 + 0.05 * (f0 / f) ** 2 * 1e3)
    out = []
    for i in range(k):
        p = shapes[i % 3] * rng.exponential(size=nf)
        p[rng.integers(0, nf, 3)] *= 200.0
        out.append(p / p.sum())
    return out, f0, df, bpr


def unit_rows(n_files: int = 3, per_file: int = 10_000, seed: int = 1) -> pl.DataFrame:
    """A unit's frames: pointing wander and PSF widths, a flux that depends on them."""
    rng = np.random.default_rng(seed)
    n = n_files * per_file
    x = 0.02 * np.cumsum(rng.normal(0, 0.01, n)) + 0.01 * np.sin(np.arange(n) / 7.0)
    y = 0.02 * np.cumsum(rng.normal(0, 0.01, n))
    sx = 0.64 + 0.002 * rng.normal(size=n)
    sy = 0.60 + 0.002 * rng.normal(size=n)
    flux = 1e5 * (1 - 0.3 * x**2 - 0.2 * y**2 + 0.05 * (sx - 0.64)) + rng.normal(0, 30, n)
    return pl.DataFrame(
        {
            "file_name": np.repeat([f"f{i}.fits" for i in range(n_files)], per_file),
            "x_mean": x,
            "y_mean": y,
            "x_stddev": sx,
            "y_stddev": sy,
            "flux_opt": flux,
        }
    )


def best_ms(fn, repeat: int) -> float:
    """Best CPU time (process_time: the machine's other load does not count) of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return 1e3 * min(times)


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="b74d062", help="commit to compare with")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    old_pg = load_baseline(args.baseline, "fgsarchive/analysis/periodogram.py", "old_periodogram")
    old_dt = load_baseline(args.baseline, "fgsarchive/analysis/detrend.py", "old_detrend")

    series, f0, df, bpr = spectra()
    print(f"== continuum: {len(series)} series x {series[0].size:,} frequencies, ms per series ==")
    print(f"{'function':<18} {args.baseline:>10} {'now':>10} {'speed-up':>9} {'max rel diff':>13}")
    for name in ("local_continuum", "fitted_continuum", "noise_continuum"):
        now = getattr(periodogram, name)
        now(series[0], f0, df, bpr)  # compile / warm up
        t_now = best_ms(lambda now=now: [now(p, f0, df, bpr) for p in series], args.repeat)
        t_now /= len(series)
        if old_pg is None:
            print(f"{name:<18} {'-':>10} {t_now:10.2f}")
            continue
        old = getattr(old_pg, name)
        old(series[0], f0, df, bpr)
        t_old = best_ms(lambda old=old: [old(p, f0, df, bpr) for p in series], args.repeat)
        t_old /= len(series)
        diff = max(
            rel_diff(old(p, f0, df, bpr)[i], now(p, f0, df, bpr)[i]) for p in series for i in (0, 1)
        )
        print(f"{name:<18} {t_old:10.2f} {t_now:10.2f} {t_old / t_now:8.1f}x {diff:13.2g}")

    rows = unit_rows()
    v = rows["flux_opt"].to_numpy()
    print(f"== decorrelate_pointing: {rows.height:,} frames in 3 files, ms per call ==")
    for label, kw in (
        ("frame by frame", {"widths": True, "bin_frames": 1}),
        ("64-frame bins", {}),
    ):
        now = detrend.decorrelate_pointing(rows, v, **kw)
        t_now = best_ms(lambda kw=kw: detrend.decorrelate_pointing(rows, v, **kw), args.repeat)
        if old_dt is None:
            print(f"{label:<18} {'-':>10} {t_now:10.2f}")
            continue
        old = old_dt.decorrelate_pointing(rows, v, **kw)
        t_old = best_ms(lambda kw=kw: old_dt.decorrelate_pointing(rows, v, **kw), args.repeat)
        diff = float(np.max(np.abs(old - now)) / np.std(old))
        print(
            f"{label:<18} {t_old:10.2f} {t_now:10.2f} {t_old / t_now:8.1f}x "
            f"{diff:13.2g} (of the series' std)"
        )


if __name__ == "__main__":
    main()
