"""Scale benchmark: simulate ~100 programs, ingest, fit and analyse up to 20M frames in three steps.

Usage: python scripts/bench_scale.py [--frames 20000000] [--workdir /tmp/fgsarchive-scale] [--keep]
                                     [--frames-per-file 10000] [--programs 100] [--workers 2]

The archive is built in three increments (1/4, 1/4 and 1/2 of --frames: 5M, 10M and 20M frames with
the default). Each increment is simulated (``simulate_archive``, varied program sizes), ingested
(``fgsarchive ingest --from DIR --no-fit``), fitted (``fgsarchive fit``) and, when
``fgsarchive.analysis.runner.run_all_analyses`` exists, analysed; then five cross-program queries
(``scripts/sql/bench_*.sql``) are timed through ``Archive(path).sql`` (the sandboxed user path).

Every stage runs in its own subprocess. Its peak memory is reported twice: ``ru_maxrss`` from
``wait4`` (the largest single process of the stage's tree that was waited for) and the largest sum of
RSS over the whole process tree, sampled every 0.1 s with psutil.

Prints a table per stage and per query, the archive's size on disk against the FITS bytes, and writes
everything to ``<workdir>/results.json``. The workdir (FITS files included) is deleted at the end
unless ``--keep``. The disk is checked first; if it is short, --frames is scaled down (and said so).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FITS_BYTES_PER_FRAME = 530  # SCI + ERR (256 B each) and the tables, measured on simulated files
ARCHIVE_BYTES_PER_FRAME = 400  # frames + fits + quickfits + photometry parts, roughly
TRUTH_BYTES_PER_FRAME = 100  # the simulator's per-frame truth Parquet
QUERY_TARGET_S = 2.0
STAGE_COLUMNS = [
    "stage",
    "frames in archive",
    "wall s",
    "frames/s",
    "ru_maxrss MB",
    "tree RSS peak MB",
    "exit",
]
QUERY_REPEATS = 3
#: The timed queries, one file each (``bench_<query>.sql``), run as a user would with Archive.sql.
BENCH_SQL = Path(__file__).resolve().parent / "sql"
NAMES = {
    "guide_star_summary": "per-guide-star summary, all frames",
    "visit_lightcurve": "binned light curve of one visit (10 s)",
    "anomalies_events": "anomalies joined with events",
    "top_variables": "top variable guide stars",
    "hga_frames": "frames within +-10 s of every HGA move",
}


# --- running a stage in a subprocess, with its peak memory -----------------------------------------
def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_stage(name: str, argv: list[str], log_path: Path, env: dict | None = None) -> dict:
    """Run ``argv``; return wall time, exit code, ru_maxrss (wait4) and the sampled tree-RSS peak."""
    import psutil

    started = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(f"\n=== {name}: {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            try:
                proc = psutil.Process(popen.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss(proc))
                stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(popen.pid, 0)
        stop.set()
        sampler.join()
        popen.returncode = os.waitstatus_to_exitcode(status)
    return {
        "stage": name,
        "seconds": time.perf_counter() - started,
        "exit_code": popen.returncode,
        "ru_maxrss_mb": usage.ru_maxrss / 1024.0,
        "tree_rss_peak_mb": peak[0] / 2**20,
    }


# --- stage bodies (run as `python bench_scale.py --stage NAME ...` in a subprocess) -----------------
def stage_simulate(
    out_dir: str,
    programs: list[int],
    frames: int,
    seed: int,
    start_mjd: float,
    frames_per_file: int,
) -> None:
    from fgsarchive.simulate import simulate_archive

    arch = simulate_archive(
        out_dir,
        programs=programs,
        total_frames=frames,
        seed=seed,
        start_mjd=start_mjd,
        frames_per_file=frames_per_file,
        include_other_products=False,
    )
    fits_bytes = sum(p.stat().st_size for p in arch.files)
    summary = {"files": len(arch.files), "frames": arch.n_frames, "fits_bytes": fits_bytes}
    (Path(out_dir) / "simulated.json").write_text(json.dumps(summary))
    # The per-frame truth is not needed here and would cost ~100 B/frame of disk.
    shutil.rmtree(Path(out_dir) / "truth" / "frames", ignore_errors=True)
    for prog in Path(out_dir, "truth", "programs").glob("*/frames"):
        shutil.rmtree(prog, ignore_errors=True)


def bench_query(name: str) -> str:
    """The text of the benchmark query ``scripts/sql/<name>.sql``."""
    return (BENCH_SQL / f"{name}.sql").read_text()


def stage_analyses(db_path: str) -> None:
    from fgsarchive.analysis.runner import run_all_analyses
    from fgsarchive.db import Database

    run_all_analyses(Database(db_path))


def stage_queries(db_path: str, out_json: str) -> None:
    """Time each bench query: first call (new connection, cold plan) and the median of repeats."""
    from fgsarchive.archive import Archive

    arc = Archive(db_path)
    tables = arc.tables()
    results: dict[str, dict] = {}

    def visit_params() -> dict:
        df = arc.sql(
            "SELECT program, observation, visit, sum(n_frames) AS n FROM files "
            "WHERE status = 'ingested' AND product = 'fg' GROUP BY ALL ORDER BY n DESC LIMIT 1"
        )
        row = df.row(0, named=True)
        return {
            "program": row["program"],
            "observation": row["observation"],
            "visit": row["visit"],
            "bin_s": 10.0,
        }

    hga_events = 0
    if "events" in tables:
        hga_events = int(
            arc.sql(
                "SELECT count(*) AS n FROM events WHERE kind IN ('hga_move', 'hga_motion_pointing')"
            )["n"][0]
        )
    plan = {
        "guide_star_summary": ("bench_guide_star_summary", lambda: {}, ["frames"]),
        "visit_lightcurve": ("bench_visit_lightcurve", visit_params, ["frames", "fits"]),
        "anomalies_events": (
            "bench_anomalies_events",
            lambda: {"pad_s": 30.0},
            ["anomalies", "events"],
        ),
        "top_variables": ("bench_top_variables", lambda: {"top": 20}, ["variability"]),
        "hga_frames": (
            "bench_hga_frames" if hga_events else "bench_hga_frames_pointing",
            lambda: {"pad_s": 10.0},
            ["frames", "events"] if hga_events else ["frames", "pointing"],
        ),
    }
    for key, (sql_name, params_fn, needs) in plan.items():
        missing = [t for t in needs if t not in tables]
        if missing:
            results[key] = {"skipped": f"no {', '.join(missing)} table in the archive"}
            continue
        params = params_fn()
        times, rows = [], 0
        try:
            for _ in range(QUERY_REPEATS):
                t = time.perf_counter()
                df = arc.sql(bench_query(sql_name), **params)
                times.append(time.perf_counter() - t)
                rows = df.height
        except Exception as exc:  # report, do not stop the benchmark
            results[key] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            continue
        results[key] = {
            "sql": sql_name,
            "first_s": times[0],
            "median_s": statistics.median(times),
            "rows": rows,
        }
    Path(out_json).write_text(json.dumps(results))


# --- the driver ----------------------------------------------------------------------------------
def dir_bytes(path: Path, pattern: str = "*") -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def plan_increments(total: int, n_programs: int) -> list[tuple[int, int]]:
    """(frames, programs) of the three increments: 1/4, 1/4, 1/2 of the total."""
    fractions = (0.25, 0.25, 0.5)
    frames = [int(total * f) for f in fractions]
    frames[-1] = total - sum(frames[:-1])
    progs = [max(1, round(n_programs * f)) for f in fractions]
    return list(zip(frames, progs, strict=True))


def check_disk(workdir: Path, frames: int) -> int:
    """Scale --frames down when the disk cannot hold FITS + archive + truth (plus 20 % margin)."""
    workdir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    per_frame = FITS_BYTES_PER_FRAME + ARCHIVE_BYTES_PER_FRAME + TRUTH_BYTES_PER_FRAME
    need = frames * per_frame * 1.2
    print(
        f"disk: {free / 1e9:.1f} GB free at {workdir}; {need / 1e9:.1f} GB needed for "
        f"{frames:,} frames",
        flush=True,
    )
    if need <= free:
        return frames
    scaled = int(free / (per_frame * 1.2)) // 1_000_000 * 1_000_000
    print(f"disk is short: scaling down to {scaled:,} frames", flush=True)
    if scaled < 1_000_000:
        raise SystemExit("not enough disk for even 1M frames")
    return scaled


def fmt_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fgsarchive-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the workdir (FITS and archive)")
    parser.add_argument("--programs", type=int, default=100)
    parser.add_argument("--frames-per-file", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.stage:  # inside a stage subprocess
        kwargs = json.loads(opts.args)
        {"simulate": stage_simulate, "analyses": stage_analyses, "queries": stage_queries}[
            opts.stage
        ](**kwargs)
        return

    workdir: Path = opts.workdir
    total = check_disk(workdir, opts.frames)
    db_path = workdir / "archive.duckdb"
    log_path = workdir / "stages.log"
    results: dict = {"frames_requested": opts.frames, "frames": total, "increments": []}
    py = sys.executable
    me = str(Path(__file__).resolve())
    cli = [py, "-m", "fgsarchive", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    have_analyses = importlib.util.find_spec("fgsarchive.analysis.runner") is not None
    if not have_analyses:
        print(
            "note: fgsarchive.analysis.runner.run_all_analyses does not exist yet: analyses skipped",
            flush=True,
        )
    next_program = 1000
    cumulative = 0
    fits_bytes = 0
    stage_rows: list[list[object]] = []
    query_rows: list[list[object]] = []
    for k, (frames, n_programs) in enumerate(plan_increments(total, opts.programs), start=1):
        inc_dir = workdir / "fits" / f"inc{k}"
        programs = list(range(next_program, next_program + n_programs))
        next_program += n_programs
        stages = []
        marker = inc_dir / "simulated.json"
        if not marker.exists():
            shutil.rmtree(inc_dir, ignore_errors=True)
            args = {
                "out_dir": str(inc_dir),
                "programs": programs,
                "frames": frames,
                "seed": k,
                "start_mjd": 59918.0 + 400.0 * (k - 1),
                "frames_per_file": opts.frames_per_file,
            }
            stages.append(
                run_stage(
                    f"simulate {k}",
                    [py, me, "--stage", "simulate", "--args", json.dumps(args)],
                    log_path,
                    env,
                )
            )
        sim = json.loads(marker.read_text())
        fits_bytes += sim["fits_bytes"]
        cumulative += sim["frames"]
        stages.append(
            run_stage(
                f"ingest {k}",
                [
                    *cli,
                    "ingest",
                    "--from",
                    str(inc_dir),
                    "--no-fit",
                    "--workers",
                    str(opts.workers),
                    "--db",
                    str(db_path),
                ],
                log_path,
                env,
            )
        )
        stages.append(
            run_stage(
                f"fit {k}",
                [*cli, "fit", "--workers", str(opts.workers), "--db", str(db_path)],
                log_path,
                env,
            )
        )
        have_analyses = importlib.util.find_spec("fgsarchive.analysis.runner") is not None
        if have_analyses:
            stages.append(
                run_stage(
                    f"analyses {k}",
                    [
                        py,
                        me,
                        "--stage",
                        "analyses",
                        "--args",
                        json.dumps({"db_path": str(db_path)}),
                    ],
                    log_path,
                    env,
                )
            )
        qjson = workdir / f"queries{k}.json"
        stages.append(
            run_stage(
                f"queries {k}",
                [
                    py,
                    me,
                    "--stage",
                    "queries",
                    "--args",
                    json.dumps({"db_path": str(db_path), "out_json": str(qjson)}),
                ],
                log_path,
                env,
            )
        )
        queries = json.loads(qjson.read_text()) if qjson.exists() else {}
        archive_bytes = dir_bytes(db_path) + dir_bytes(Path(str(db_path) + ".parts"), "*.parquet")
        by_dataset = {
            d.name: dir_bytes(d, "*.parquet")
            for d in sorted(Path(str(db_path) + ".parts").iterdir())
            if d.is_dir()
        }
        inc = {
            "increment": k,
            "frames_added": sim["frames"],
            "files_added": sim["files"],
            "frames_total": cumulative,
            "programs": programs,
            "stages": stages,
            "queries": queries,
            "fits_bytes_total": fits_bytes,
            "archive_bytes": archive_bytes,
            "duckdb_bytes": dir_bytes(db_path),
            "parts_bytes_by_dataset": by_dataset,
        }
        results["increments"].append(inc)
        for s in stages:
            per_s = (
                sim["frames"] / s["seconds"]
                if s["stage"].split()[0] in ("simulate", "ingest", "fit")
                else None
            )
            stage_rows.append(
                [
                    s["stage"],
                    f"{cumulative:,}",
                    f"{s['seconds']:.1f}",
                    f"{per_s:,.0f}" if per_s else "",
                    f"{s['ru_maxrss_mb']:.0f}",
                    f"{s['tree_rss_peak_mb']:.0f}",
                    s["exit_code"],
                ]
            )
        for key, q in queries.items():
            if "median_s" in q:
                query_rows.append(
                    [
                        f"{cumulative:,}",
                        NAMES[key],
                        q["sql"],
                        f"{q['first_s']:.3f}",
                        f"{q['median_s']:.3f}",
                        q["rows"],
                        "yes" if q["median_s"] < QUERY_TARGET_S else "NO",
                    ]
                )
            else:
                query_rows.append(
                    [
                        f"{cumulative:,}",
                        NAMES[key],
                        "",
                        "",
                        "",
                        "",
                        q.get("skipped") or q.get("error"),
                    ]
                )
        print(f"\n--- after increment {k}: {cumulative:,} frames ---", flush=True)
        print(
            fmt_table(
                STAGE_COLUMNS,
                stage_rows[-len(stages) :],
            ),
            flush=True,
        )
        print(
            f"archive {archive_bytes / 1e9:.2f} GB (DuckDB {inc['duckdb_bytes'] / 1e6:.1f} MB) "
            f"for {fits_bytes / 1e9:.2f} GB of FITS ({archive_bytes / fits_bytes:.2f}x); "
            + ", ".join(f"{d} {b / 1e9:.2f} GB" for d, b in by_dataset.items()),
            flush=True,
        )
        (workdir / "results.json").write_text(json.dumps(results, indent=1))

    print("\n=== stages ===")
    print(
        fmt_table(
            STAGE_COLUMNS,
            stage_rows,
        )
    )
    print(
        f"\n=== queries (Archive.sql, {QUERY_REPEATS} runs: first and median; "
        f"target < {QUERY_TARGET_S} s) ==="
    )
    print(fmt_table(["frames", "query", "sql", "first s", "median s", "rows", "< 2 s"], query_rows))
    print("\n=== size on disk ===")
    for inc in results["increments"]:
        print(
            f"{inc['frames_total']:>12,} frames: archive {inc['archive_bytes'] / 1e9:6.2f} GB, "
            f"FITS {inc['fits_bytes_total'] / 1e9:6.2f} GB, "
            f"ratio {inc['archive_bytes'] / inc['fits_bytes_total']:.2f}, "
            f"{inc['archive_bytes'] / inc['frames_total']:.0f} B/frame"
        )
    print(f"\nresults: {workdir / 'results.json'}")
    if not opts.keep:
        shutil.rmtree(workdir / "fits", ignore_errors=True)
        db_path.unlink(missing_ok=True)
        shutil.rmtree(Path(str(db_path) + ".parts"), ignore_errors=True)


if __name__ == "__main__":
    main()
