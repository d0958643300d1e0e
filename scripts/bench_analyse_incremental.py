"""Incremental ``analyse``: from scratch, nothing new, and after ~1 % new frames, against the fit.

Usage: python scripts/bench_analyse_incremental.py [--frames 1000000] [--workers 2]
                                                   [--new-fraction 0.01] [--workdir DIR] [--keep]
                                                   [--no-old]

Simulates an archive of ``--frames`` x (1 - new fraction) frames (``simulate_archive``), ingests and
fits it (timed: the fit), then, side by side on the same frames and ``--workers``:

* the analyses as they ran before units (``run_anomalies``, ``run_periodograms(by="visit")``,
  ``run_variables``: three reads of every frame; skipped with ``--no-old``);
* ``run_all_analyses(full=True)``: every unit from scratch (one read of each unit's frames);
* ``run_all_analyses()`` again: nothing new;
* a new program of ``--new-fraction`` of the frames ingested and fitted, then analysed;
* that new program alone in its own archive, analysed (what ``--new-fraction`` costs by itself).

Prints the figures and the ratios (analyse / fit, incremental / alone). The machine may be shared:
the figures are noisy, the ratios measured in one run are what to compare.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--new-fraction", type=float, default=0.01)
    parser.add_argument("--frames-per-file", type=int, default=10_000)
    parser.add_argument("--programs", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-old", action="store_true", help="skip the pre-unit analyses")
    args = parser.parse_args()

    from fgsarchive.analysis.incremental import run_all_analyses
    from fgsarchive.analysis.runner import (
        run_anomalies,
        run_periodograms,
        run_variables,
    )
    from fgsarchive.db import Database
    from fgsarchive.fit.runner import fit_archive
    from fgsarchive.ingest import ingest_directory
    from fgsarchive.simulate import simulate_archive

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fgs-bench-analyse-"))
    work.mkdir(parents=True, exist_ok=True)
    quiet = lambda _text: None  # noqa: E731
    try:
        n_new = max(int(args.frames * args.new_fraction), args.frames_per_file // 4)
        n_base = args.frames - n_new
        base = simulate_archive(
            work / "base",
            programs=args.programs,
            total_frames=n_base,
            seed=1,
            frames_per_file=args.frames_per_file,
            workers=args.workers,
        )
        new = simulate_archive(
            work / "new",
            programs=[99001],
            total_frames=n_new,
            seed=2,
            frames_per_file=args.frames_per_file,
            start_mjd=59918.0 + 400.0,
            workers=args.workers,
        )
        db = Database(work / "archive.duckdb")
        ingest_directory(db, work / "base", workers=args.workers)
        t_fit, fit = _timed(lambda: fit_archive(db, workers=args.workers))
        rows = [("fit (base)", fit.frames, t_fit)]
        if not args.no_old:
            from fgsarchive.telemetry import derive_events

            derive_events(db)
            t_old, _ = _timed(
                lambda: (
                    run_anomalies(db, on_warning=quiet),
                    run_periodograms(db, by="visit", on_warning=quiet),
                    run_variables(db, on_warning=quiet),
                )
            )
            rows.append(("analyses before units (3 reads)", fit.frames, t_old))
        t_full, full = _timed(
            lambda: run_all_analyses(db, workers=args.workers, full=True, on_warning=quiet)
        )
        rows.append(
            (f"analyse from scratch ({full.units.units_computed} units)", fit.frames, t_full)
        )
        t_none, none = _timed(lambda: run_all_analyses(db, workers=args.workers, on_warning=quiet))
        rows.append((f"analyse, nothing new ({none.units.units_computed} units)", 0, t_none))
        ingest_directory(db, work / "new", workers=args.workers)
        t_fit_new, fit_new = _timed(lambda: fit_archive(db, workers=args.workers))
        rows.append(("fit (new program)", fit_new.frames, t_fit_new))
        t_inc, inc = _timed(lambda: run_all_analyses(db, workers=args.workers, on_warning=quiet))
        rows.append(
            (f"analyse after new frames ({inc.units.units_computed} units)", fit_new.frames, t_inc)
        )
        alone = Database(work / "alone.duckdb")
        ingest_directory(alone, work / "new", workers=args.workers)
        fit_archive(alone, workers=args.workers)
        t_alone, _ = _timed(lambda: run_all_analyses(alone, workers=args.workers, on_warning=quiet))
        rows.append(("analyse the new program alone", fit_new.frames, t_alone))

        print(
            f"\narchive: {base.n_frames + new.n_frames:,} frames ({new.n_frames:,} new), "
            f"--workers {args.workers}"
        )
        print(f"{'step':<48} {'frames':>12} {'s':>8} {'frames/s':>10}")
        for name, frames, s in rows:
            rate = f"{frames / s:,.0f}" if frames and s > 0 else "-"
            print(f"{name:<48} {frames:>12,} {s:>8.2f} {rate:>10}")
        print("\nratios (same run, same frames):")
        print(f"  analyse from scratch / fit          {t_full / t_fit:6.2f}  (target <= 1.0)")
        if not args.no_old:
            print(f"  analyse from scratch / before units {t_full / t_old:6.2f}")
        print(f"  nothing new / from scratch          {t_none / t_full:6.3f}  ({t_none:.2f} s)")
        print(f"  after new frames / new alone        {t_inc / t_alone:6.2f}  (target <= 2)")
        print(
            "  seconds of the from-scratch analyse: "
            + ", ".join(f"{k} {v:.1f}" for k, v in full.units.seconds.items())
        )
        print("  (worker seconds are summed over workers; the machine may be shared: noisy)")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
