"""Scale benchmark: grow one archive to 5M, 10M and 20M frames; fit, analyses, a crawl, queries.

Usage: python scripts/bench_scale.py [--sizes 5M,10M,20M | --frames 20000000 | --quick]
                                     [--workdir DIR] [--keep] [--frames-per-file 10000]
                                     [--programs 100] [--workers 2] [--crawl-frames-per-file 25000]
                                     [--no-crawl] [--no-queries]

One archive is grown to each size in turn (``--sizes``, cumulative frames; ``--frames N`` is
``N/4,N/2,N``; ``--quick`` is 0.25M,0.5M,1M with 20 programs). At each size:

1. the frames added are simulated (``simulate_archive``, varied program sizes), ingested
   (``fgsarchive ingest --from DIR --no-fit``) and fitted (``fgsarchive fit --workers N``):
   *fit of the frames added*;
2. a full analyse from scratch: ``run_all_analyses(db, full=True, workers=N)``, the call behind
   ``fgsarchive analyse --full --workers N`` (``full`` and ``workers`` only when the function has
   them; without ``full``, the plain call, which then recomputes everything), in a subprocess
   timed twice: its wall (start-up included) and the call alone: *analyse from scratch*, and
   *analyses / fit*, the analyse's wall seconds per frame over the fit's (the fit of the frames
   added; at the first size they are the same frames);
3. the analyses again: *nothing new* (target <= 2 s at the largest size, the call);
4. 1 % of the size is added as one new program (simulated, ingested, fitted), then analysed:
   *+1 % analyse*; the same FITS are ingested, fitted and analysed in a separate archive holding
   only them: *1 % alone* (target: +1 % <= 2x the 1 % alone, the calls);
5. five cross-program queries (``scripts/sql/bench_*.sql``) through ``Archive(path).sql``;
6. at the largest size only: one new program crawled from the loopback MAST server
   (``MastTestServer``) through the whole chain (``pipeline.update_archive(FromCrawl(...))``, the
   call behind ``fgsarchive crawl``): seconds per step.

Every stage runs in its own subprocess. Its peak memory is reported twice: ``ru_maxrss`` from
``wait4`` (the largest single process of the stage's tree that was waited for) and the largest sum of
RSS over the whole process tree, sampled every 0.1 s with psutil. Each size's figures are printed as
soon as they are known (a partial run is useful) and everything is written to
``<workdir>/results.json`` after every size. At the end: the stage table, the queries, the figures
against their targets, the size on disk. The workdir (FITS files included) is deleted unless
``--keep``. The disk is checked first; if it is short, the sizes are scaled down (and said so).
Subprocess wall times include Python's start-up and imports (``startup`` stage: the import of the
CLI and the analyses alone). The machine is shared: timings are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
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
    summary["args"] = {
        "out_dir": out_dir,
        "programs": programs,
        "frames": frames,
        "seed": seed,
        "start_mjd": start_mjd,
        "frames_per_file": frames_per_file,
    }
    (Path(out_dir) / "simulated.json").write_text(json.dumps(summary))
    # The per-frame truth is not needed here and would cost ~100 B/frame of disk.
    shutil.rmtree(Path(out_dir) / "truth" / "frames", ignore_errors=True)
    for prog in Path(out_dir, "truth", "programs").glob("*/frames"):
        shutil.rmtree(prog, ignore_errors=True)


def bench_query(name: str) -> str:
    """The text of the benchmark query ``scripts/sql/<name>.sql``."""
    return (BENCH_SQL / f"{name}.sql").read_text()


def stage_analyse(db_path: str, out_json: str, workers: int, full: bool) -> None:
    """Time ``run_all_analyses`` alone (imports excluded), with ``workers`` / ``full`` if it has them."""
    import inspect

    from fgsarchive.analysis.incremental import run_all_analyses
    from fgsarchive.db import Database

    params = inspect.signature(run_all_analyses).parameters
    kwargs: dict = {"on_warning": lambda text: None}
    if "workers" in params:
        kwargs["workers"] = workers
    if full and "full" in params:
        kwargs["full"] = True
    t = time.perf_counter()
    result = run_all_analyses(Database(db_path), **kwargs)
    seconds = time.perf_counter() - t
    units = getattr(result, "units", None)
    shown = {k: v for k, v in kwargs.items() if k != "on_warning"}
    Path(out_json).write_text(
        json.dumps(
            {
                "seconds": seconds,
                "kwargs": shown,
                "units": None if units is None else str(units)[:300],
                "parts_s": {k: round(v, 2) for k, v in getattr(units, "seconds", {}).items()},
            }
        )
    )


def stage_startup() -> None:
    """What every CLI stage pays before working: the imports of the CLI and the analyses."""
    import fgsarchive.analysis.runner  # noqa: F401
    import fgsarchive.cli  # noqa: F401


def stage_crawl(
    db_path: str, out_json: str, program: int, start_mjd: float, frames_per_file: int, workers: int
) -> None:
    """Crawl one new simulated program from the loopback MAST server through the whole chain."""
    from fgsarchive.db import Database
    from fgsarchive.mast import MastClient, MastConfig
    from fgsarchive.pipeline import FromCrawl, update_archive
    from fgsarchive.simulate import simulate_program
    from fgsarchive.telemetry import DEFAULT_MNEMONICS
    from fgsarchive.testing.mast_server import MastTestServer
    from fgsarchive.testing.serve import products_span, simulated_catalog, simulated_edb

    work = Path(out_json).parent / f"crawl{program}"
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    sim = simulate_program(
        work / "products",
        program=program,
        n_observations=1,
        n_visits=2,
        frames_per_file=frames_per_file,
        include_other_products=True,
        start_mjd=start_mjd,
        seed=program,
    )
    simulate_s = time.perf_counter() - t
    span = products_span(sim.out_dir)
    edb = simulated_edb(sim.telemetry, *span)
    for name in DEFAULT_MNEMONICS:
        edb.setdefault(name, ([], []))
    source = FromCrawl(
        since_mjd=float(int(span[0]) - 1),
        until_mjd=float(int(span[1]) + 2),
        window_days=1.0,
        cache_dir=work / "cache",
    )
    with MastTestServer(
        products_dir=sim.out_dir, telemetry=edb, catalog=simulated_catalog(sim.stars)
    ) as srv:
        config = MastConfig(mast_url=srv.url, gsc_url=srv.url, poll_interval_s=0.02)
        with MastClient(config) as client:
            # The archive was built offline (``ingest --from``: no telemetry, no catalog). A
            # scheduled crawl's archive is current before the new program arrives: bring the
            # earlier spans' telemetry, events, stars and analyses current first (not timed as
            # the crawl; their time is reported as ``prepare_s``).
            t = time.perf_counter()
            update_archive(
                Database(db_path),
                None,
                steps=("telemetry", "events", "stars", "analyse"),
                client=client,
                workers=workers,
            )
            prepare_s = time.perf_counter() - t
            requests_before = srv.stats["requests"]
            report = update_archive(Database(db_path), source, client=client, workers=workers)
        requests = srv.stats["requests"] - requests_before
    steps = {
        name: {
            "seconds": st.seconds,
            "counts": dict(st.counts),
            "skipped": st.skipped,
            "error": st.error,
        }
        for name, st in report.steps.items()
    }
    frames = report.steps["ingest"].counts.get("frames", 0) if "ingest" in report.steps else 0
    Path(out_json).write_text(
        json.dumps(
            {
                "program": program,
                "frames": frames,
                "files": len(sim.fg_files),
                "simulate_s": simulate_s,
                "prepare_s": prepare_s,
                "total_s": report.seconds,
                "requests": requests,
                "steps": steps,
            }
        )
    )
    shutil.rmtree(work, ignore_errors=True)


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


def parse_sizes(text: str) -> list[int]:
    """``"5M,10M,20M"`` (or ``250k``, plain integers) -> cumulative frame counts, increasing."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        scale = {"k": 1_000, "m": 1_000_000}.get(item[-1:], 1)
        sizes.append(int(float(item.rstrip("km")) * scale))
    if not sizes or any(b <= a for a, b in zip([0, *sizes], sizes, strict=False)):
        raise SystemExit(f"--sizes must be increasing positive frame counts (got {text!r})")
    return sizes


def plan_increments(sizes: list[int], n_programs: int) -> list[tuple[int, int]]:
    """(frames added, programs) of each step of growing the archive to ``sizes`` (cumulative)."""
    added = [b - a for a, b in zip([0, *sizes[:-1]], sizes, strict=True)]
    return [(n, max(1, round(n_programs * n / sizes[-1]))) for n in added]


def fmt_frames(n: int) -> str:
    """5000000 -> '5M', 250000 -> '250k'."""
    if n >= 1_000_000 and n % 10_000 == 0:
        return f"{n / 1e6:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1e3:g}k"
    return str(n)


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


ANALYSE_NOTHING_NEW_TARGET_S = 2.0
ONE_PERCENT_TARGET = 2.0
ANALYSES_OVER_FIT_TARGET = 1.0
ONE_PERCENT = 0.01


def analyse_options() -> dict[str, bool]:
    """Which of ``--full`` and ``--workers`` this tree's ``fgsarchive analyse`` has."""
    out = subprocess.run(
        [sys.executable, "-m", "fgsarchive", "analyse", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        cwd=REPO,
        check=False,
    ).stdout
    return {"full": "--full" in out, "workers": "--workers" in out}


class Bench:
    """Runs the stages, keeps their rows and the figures, prints and saves as it goes."""

    def __init__(self, opts, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.db_path = workdir / "archive.duckdb"
        self.log_path = workdir / "stages.log"
        self.py = sys.executable
        self.me = str(Path(__file__).resolve())
        self.cli = [self.py, "-m", "fgsarchive", "--quiet"]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.stage_rows: list[list[object]] = []
        self.query_rows: list[list[object]] = []
        self.figures: list[dict] = []  # one per size
        self.crawl: dict | None = None
        self.results: dict = {"increments": [], "figures": self.figures}
        self.analyse = analyse_options()
        self.results["analyse_options"] = self.analyse

    # --- stages ---
    def stage(self, name: str, argv: list[str], frames: int | None, total: int) -> dict:
        s = run_stage(name, argv, self.log_path, self.env)
        s["frames"] = frames
        s["frames_total"] = total
        per_s = frames / s["seconds"] if frames else None
        self.stage_rows.append(
            [
                name,
                f"{total:,}" if total else "",
                f"{s['seconds']:.1f}",
                f"{per_s:,.0f}" if per_s else "",
                f"{s['ru_maxrss_mb']:.0f}",
                f"{s['tree_rss_peak_mb']:.0f}",
                s["exit_code"],
            ]
        )
        print("  " + "  ".join(str(c) for c in self.stage_rows[-1]), flush=True)
        if s["exit_code"] != 0:
            print(f"  !! {name} exited {s['exit_code']}: see {self.log_path}", flush=True)
        return s

    def py_stage(self, stage: str, args: dict) -> list[str]:
        return [self.py, self.me, "--stage", stage, "--args", json.dumps(args)]

    def simulate(self, out_dir: Path, programs: list[int], frames: int, seed: int, mjd: float):
        """Simulate, unless ``out_dir`` already holds this very simulation (a ``--simulate-only``
        run ahead, or a re-run with --keep); the summary and the stage (None when skipped)."""
        marker = out_dir / "simulated.json"
        args = {
            "out_dir": str(out_dir),
            "programs": programs,
            "frames": frames,
            "seed": seed,
            "start_mjd": mjd,
            "frames_per_file": self.opts.frames_per_file,
        }
        stage = None
        done = marker.exists() and json.loads(marker.read_text()).get("args") == args
        if not done:
            shutil.rmtree(out_dir, ignore_errors=True)
            stage = self.stage(
                f"simulate {out_dir.name}", self.py_stage("simulate", args), frames, 0
            )
        else:
            print(f"  simulate {out_dir.name}: done before (reused)", flush=True)
        return json.loads(marker.read_text()), stage

    def ingest_fit(self, label: str, fits_dir: Path, db: Path, frames: int, total: int):
        w = ["--workers", str(self.opts.workers)]
        ingest = self.stage(
            f"ingest {label}",
            [*self.cli, "ingest", "--from", str(fits_dir), "--no-fit", *w, "--db", str(db)],
            frames,
            total,
        )
        fit = self.stage(f"fit {label}", [*self.cli, "fit", *w, "--db", str(db)], frames, total)
        return ingest, fit

    def analyse_stage(self, label: str, db: Path, total: int, *, full: bool) -> dict:
        """``run_all_analyses`` (the call behind ``fgsarchive analyse``) in a subprocess, with the
        fit's ``--workers`` and ``full`` when it has them: wall seconds (start-up included) and
        ``call_s``, the call alone."""
        out = self.workdir / "analyse.json"
        out.unlink(missing_ok=True)
        args = {
            "db_path": str(db),
            "out_json": str(out),
            "workers": self.opts.workers,
            "full": full,
        }
        st = self.stage(label, self.py_stage("analyse", args), None, total)
        done = json.loads(out.read_text()) if out.exists() else {}
        st["call_s"] = done.get("seconds", float("nan"))
        st["analyse"] = done
        print(f"    (the call: {st['call_s']:.2f} s; {done.get('kwargs')})", flush=True)
        if done.get("parts_s"):
            # unit stages (read ... variables) are summed over the workers; the rest are walls
            print(f"    (its parts, s: {done['parts_s']})", flush=True)
        return st

    # --- one size ---
    def grow(self, k: int, size: int, added: int, programs: list[int], fits_bytes: list[int]):
        print(f"\n=== size {k}: {fmt_frames(size)} frames ({added:,} added) ===", flush=True)
        stages: list[dict] = []
        fig: dict = {"size": size, "frames_added": added}
        sim, st = self.simulate(
            self.workdir / "fits" / f"inc{k}", programs, added, k, 59918.0 + 400.0 * (k - 1)
        )
        stages += [st] if st else []
        fits_bytes[0] += sim["fits_bytes"]
        size += sim["frames"] - added  # what the simulator wrote (whole frames per file)
        added = sim["frames"]
        fig.update(size=size, frames_added=added)
        if self.opts.simulate_only:
            psim, _ = self.simulate(
                self.workdir / "fits" / f"plus{k}",
                [9000 + k],
                max(self.opts.frames_per_file, int(size * ONE_PERCENT)),
                100 + k,
                59918.0 + 400.0 * (k - 1) + 300.0,
            )
            return size + psim["frames"]
        ingest, fit = self.ingest_fit(
            str(k), self.workdir / "fits" / f"inc{k}", self.db_path, added, size
        )
        stages += [ingest, fit]
        fig["fit_added_s"] = fit["seconds"]
        fig["fit_added_frames_per_s"] = added / fit["seconds"]

        full = self.analyse_stage(f"analyse full {k}", self.db_path, size, full=True)
        stages.append(full)
        fig["analyse_full_s"] = full["seconds"]
        fig["analyse_full_frames_per_s"] = size / full["seconds"]
        fig["analyses_over_fit"] = (full["seconds"] / size) / (fit["seconds"] / added)
        fig["analyse_full_ok"] = full["exit_code"] == 0

        again = self.analyse_stage(f"analyse nothing new {k}", self.db_path, size, full=False)
        stages.append(again)
        fig["analyse_nothing_new_s"] = again["call_s"]
        fig["analyse_nothing_new_wall_s"] = again["seconds"]

        # +1 %: one new program, added to the archive, and alone in an archive of its own
        small = max(self.opts.frames_per_file, int(size * ONE_PERCENT))
        pdir = self.workdir / "fits" / f"plus{k}"
        program = 9000 + k
        psim, st = self.simulate(pdir, [program], small, 100 + k, 59918.0 + 400.0 * (k - 1) + 300.0)
        stages += [st] if st else []
        fits_bytes[0] += psim["fits_bytes"]
        size_plus = size + psim["frames"]
        stages += list(self.ingest_fit(f"+1% {k}", pdir, self.db_path, psim["frames"], size_plus))
        plus = self.analyse_stage(f"analyse +1% {k}", self.db_path, size_plus, full=False)
        stages.append(plus)
        alone_db = self.workdir / f"alone{k}.duckdb"
        with contextlib.suppress(FileNotFoundError):
            alone_db.unlink()
        shutil.rmtree(Path(str(alone_db) + ".parts"), ignore_errors=True)
        stages += list(
            self.ingest_fit(f"alone {k}", pdir, alone_db, psim["frames"], psim["frames"])
        )
        alone = self.analyse_stage(f"analyse 1% alone {k}", alone_db, psim["frames"], full=True)
        stages.append(alone)
        alone_db.unlink(missing_ok=True)
        shutil.rmtree(Path(str(alone_db) + ".parts"), ignore_errors=True)
        fig["one_percent_frames"] = psim["frames"]
        fig["analyse_plus_1pct_s"] = plus["call_s"]
        fig["analyse_1pct_alone_s"] = alone["call_s"]
        fig["plus_over_alone"] = plus["call_s"] / alone["call_s"]
        fig["analyse_plus_1pct_wall_s"] = plus["seconds"]
        fig["analyse_1pct_alone_wall_s"] = alone["seconds"]
        fig["plus_over_alone_wall"] = plus["seconds"] / alone["seconds"]
        fig["analyse_full_call_s"] = full["call_s"]
        size = size_plus
        fig["size_after"] = size

        queries = {}
        if not self.opts.no_queries:
            qjson = self.workdir / f"queries{k}.json"
            qargs = {"db_path": str(self.db_path), "out_json": str(qjson)}
            stages.append(self.stage(f"queries {k}", self.py_stage("queries", qargs), None, size))
            queries = json.loads(qjson.read_text()) if qjson.exists() else {}
            self.add_query_rows(size, queries)

        archive_bytes = dir_bytes(self.db_path) + dir_bytes(
            Path(str(self.db_path) + ".parts"), "*.parquet"
        )
        by_dataset = {
            d.name: dir_bytes(d, "*.parquet")
            for d in sorted(Path(str(self.db_path) + ".parts").iterdir())
            if d.is_dir()
        }
        self.figures.append(fig)
        self.results["increments"].append(
            {
                "increment": k,
                "frames_added": added + psim["frames"],
                "files_added": sim["files"] + psim["files"],
                "frames_total": size,
                "programs": [*programs, program],
                "stages": stages,
                "queries": queries,
                "fits_bytes_total": fits_bytes[0],
                "archive_bytes": archive_bytes,
                "duckdb_bytes": dir_bytes(self.db_path),
                "parts_bytes_by_dataset": by_dataset,
            }
        )
        print(
            f"archive {archive_bytes / 1e9:.2f} GB (DuckDB {dir_bytes(self.db_path) / 1e6:.1f} MB) "
            f"for {fits_bytes[0] / 1e9:.2f} GB of FITS ({archive_bytes / fits_bytes[0]:.2f}x)",
            flush=True,
        )
        self.save()
        print(self.figures_table(), flush=True)
        return size

    def crawl_new_program(self, size: int, start_mjd: float) -> None:
        out = self.workdir / "crawl.json"
        out.unlink(missing_ok=True)
        args = {
            "db_path": str(self.db_path),
            "out_json": str(out),
            "program": 9900,
            "start_mjd": start_mjd,
            "frames_per_file": self.opts.crawl_frames_per_file,
            "workers": self.opts.workers,
        }
        print(f"\n=== crawl of one new program at {fmt_frames(size)} frames ===", flush=True)
        st = self.stage("crawl (whole chain)", self.py_stage("crawl", args), None, size)
        self.crawl = json.loads(out.read_text()) if out.exists() else {"error": st["exit_code"]}
        self.crawl["archive_frames"] = size
        self.crawl["stage"] = st
        self.results["crawl"] = self.crawl
        self.save()
        print(self.figures_table(), flush=True)

    def add_query_rows(self, size: int, queries: dict) -> None:
        for key, q in queries.items():
            if "median_s" in q:
                self.query_rows.append(
                    [
                        f"{size:,}",
                        NAMES[key],
                        q["sql"],
                        f"{q['first_s']:.3f}",
                        f"{q['median_s']:.3f}",
                        q["rows"],
                        "yes" if q["median_s"] < QUERY_TARGET_S else "NO",
                    ]
                )
            else:
                self.query_rows.append(
                    [f"{size:,}", NAMES[key], "", "", "", "", q.get("skipped") or q.get("error")]
                )

    def save(self) -> None:
        (self.workdir / "results.json").write_text(json.dumps(self.results, indent=1))

    # --- the figures against their targets ---
    def figures_table(self) -> str:
        figs = self.figures
        heads = ["figure", *(fmt_frames(f["size"]) for f in figs), "target", "met (largest)"]

        def row(label, key, fmt, target="", ok=None):
            cells = [fmt(f[key]) if f.get(key) is not None else "" for f in figs]
            met = "" if ok is None or not figs else ("yes" if ok(figs[-1][key]) else "NO")
            return [label, *cells, target, met]

        def secs(v):
            return f"{v:.1f}"

        def rate(v):
            return f"{v:,.0f}"

        full_name = "analyse --full" if self.analyse["full"] else "analyse (recomputes all)"
        rows = [
            row("fit of the frames added (CLI), s", "fit_added_s", secs),
            row("  frames/s", "fit_added_frames_per_s", rate),
            row(f"{full_name} from scratch, s", "analyse_full_s", secs),
            row("  the call alone, s", "analyse_full_call_s", secs),
            row("  frames/s", "analyse_full_frames_per_s", rate),
            row(
                "analyses / fit (s per frame, both walls)",
                "analyses_over_fit",
                lambda v: f"{v:.2f}",
                f"<= {ANALYSES_OVER_FIT_TARGET:.1f}",
                lambda v: v <= ANALYSES_OVER_FIT_TARGET,
            ),
            row(
                "analyse, nothing new: the call, s",
                "analyse_nothing_new_s",
                lambda v: f"{v:.2f}",
                f"<= {ANALYSE_NOTHING_NEW_TARGET_S:.0f} s",
                lambda v: v <= ANALYSE_NOTHING_NEW_TARGET_S,
            ),
            row("  wall (start-up included), s", "analyse_nothing_new_wall_s", secs),
            row("+1 %: frames added", "one_percent_frames", lambda v: f"{v:,}"),
            row("+1 %: analyse, the call, s", "analyse_plus_1pct_s", secs),
            row("  the 1 % alone (own archive), s", "analyse_1pct_alone_s", secs),
            row(
                "  +1 % / alone (calls)",
                "plus_over_alone",
                lambda v: f"{v:.2f}",
                f"<= {ONE_PERCENT_TARGET:.0f}x",
                lambda v: v <= ONE_PERCENT_TARGET,
            ),
            row("  +1 % / alone (walls)", "plus_over_alone_wall", lambda v: f"{v:.2f}"),
        ]
        if self.crawl and "steps" in self.crawl:
            c = self.crawl
            blank = [""] * (len(figs) - 1)
            rows.append(
                [
                    f"crawl of a new program ({c['frames']:,} frames) at "
                    f"{fmt_frames(c['archive_frames'])}, s",
                    *blank,
                    f"{c['total_s']:.1f}",
                    "",
                    "",
                ]
            )
            if "prepare_s" in c:
                rows.append(
                    [
                        "  (untimed, before: earlier spans' telemetry, events, stars, analyses), s",
                        *blank,
                        f"{c['prepare_s']:.1f}",
                        "",
                        "",
                    ]
                )
            for name, st in c["steps"].items():
                note = st["error"] or st["skipped"] or ""
                rows.append(
                    [f"  {name}", *blank, f"{st['seconds']:.1f}", "", note[:40] if note else ""]
                )
        elif self.crawl:
            rows.append(["crawl of a new program", "failed: see stages.log"])
        head = (
            "\n=== figures (wall: the stage's subprocess, start-up included; the call: "
            "run_all_analyses alone) ==="
        )
        return head + "\n" + fmt_table(heads, [r + [""] * (len(heads) - len(r)) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="cumulative frames, e.g. 5M,10M,20M (the default)")
    parser.add_argument("--frames", type=int, help="largest size N: sizes N/4, N/2, N")
    parser.add_argument("--quick", action="store_true", help="sizes 0.25M,0.5M,1M; 20 programs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fgsarchive-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the workdir (FITS and archive)")
    parser.add_argument("--programs", type=int, default=None, help="over all sizes (default 100)")
    parser.add_argument("--frames-per-file", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--crawl-frames-per-file", type=int, default=25_000)
    parser.add_argument("--no-crawl", action="store_true")
    parser.add_argument("--no-queries", action="store_true")
    parser.add_argument(
        "--simulate-only",
        action="store_true",
        help="only write the FITS of every step into the workdir (a later run reuses them)",
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.stage:  # inside a stage subprocess
        kwargs = json.loads(opts.args)
        {
            "simulate": stage_simulate,
            "queries": stage_queries,
            "crawl": stage_crawl,
            "startup": stage_startup,
            "analyse": stage_analyse,
        }[opts.stage](**kwargs)
        return

    if opts.quick:
        sizes = [250_000, 500_000, 1_000_000]
    elif opts.sizes:
        sizes = parse_sizes(opts.sizes)
    elif opts.frames:
        sizes = [opts.frames // 4, opts.frames // 2, opts.frames]
    else:
        sizes = [5_000_000, 10_000_000, 20_000_000]
    n_programs = opts.programs or (20 if opts.quick else 100)
    workdir: Path = opts.workdir
    # the largest size, its 1 % additions (also in archives of their own) and the crawl
    extra = int(sum(sizes) * ONE_PERCENT * 2) + 4 * opts.crawl_frames_per_file
    room = check_disk(workdir, sizes[-1] + extra)
    if room < sizes[-1] + extra:
        scale = room / (sizes[-1] + extra)
        sizes = [int(s * scale) // 1000 * 1000 for s in sizes]
        print(f"sizes scaled down to {', '.join(fmt_frames(s) for s in sizes)}", flush=True)
    bench = Bench(opts, workdir)
    if not opts.simulate_only:  # a fresh archive (FITS of an earlier run may be reused)
        bench.db_path.unlink(missing_ok=True)
        Path(str(bench.db_path) + ".wal").unlink(missing_ok=True)
        shutil.rmtree(Path(str(bench.db_path) + ".parts"), ignore_errors=True)
    bench.results.update(
        {"sizes": sizes, "programs": n_programs, "workers": opts.workers, "started": time.time()}
    )
    opts_text = ", ".join(k for k, v in bench.analyse.items() if v) or "neither"
    print(
        f"sizes {', '.join(fmt_frames(s) for s in sizes)}; workers {opts.workers}; "
        f"`fgsarchive analyse` has --full/--workers: {opts_text}",
        flush=True,
    )
    print("  " + "  ".join(STAGE_COLUMNS), flush=True)
    startup = bench.stage("startup (imports)", bench.py_stage("startup", {}), None, 0)
    bench.results["startup_s"] = startup["seconds"]
    next_program = 1000
    size = 0
    fits_bytes = [0]
    for k, (added, n_progs) in enumerate(plan_increments(sizes, n_programs), start=1):
        programs = list(range(next_program, next_program + n_progs))
        next_program += n_progs
        # the archive also holds the earlier 1 % additions: grow it to the planned size
        added = max(opts.frames_per_file, sizes[k - 1] - size)
        size = bench.grow(k, size + added, added, programs, fits_bytes)
    if opts.simulate_only:
        print(f"simulated {size:,} frames into {workdir / 'fits'}")
        return
    if not opts.no_crawl:
        bench.crawl_new_program(size, 59918.0 + 400.0 * len(sizes) + 100.0)

    print("\n=== stages ===")
    print(fmt_table(STAGE_COLUMNS, bench.stage_rows))
    if bench.query_rows:
        print(
            f"\n=== queries (Archive.sql, {QUERY_REPEATS} runs: first and median; "
            f"target < {QUERY_TARGET_S} s) ==="
        )
        print(
            fmt_table(
                ["frames", "query", "sql", "first s", "median s", "rows", "< 2 s"], bench.query_rows
            )
        )
    print("\n=== size on disk ===")
    for inc in bench.results["increments"]:
        print(
            f"{inc['frames_total']:>12,} frames: archive {inc['archive_bytes'] / 1e9:6.2f} GB, "
            f"FITS {inc['fits_bytes_total'] / 1e9:6.2f} GB, "
            f"ratio {inc['archive_bytes'] / inc['fits_bytes_total']:.2f}, "
            f"{inc['archive_bytes'] / inc['frames_total']:.0f} B/frame"
        )
    print(bench.figures_table())
    print(f"\nstart-up of a CLI stage (imports only): {startup['seconds']:.2f} s")
    print(f"results: {workdir / 'results.json'}")
    if not opts.keep:
        shutil.rmtree(workdir / "fits", ignore_errors=True)
        bench.db_path.unlink(missing_ok=True)
        shutil.rmtree(Path(str(bench.db_path) + ".parts"), ignore_errors=True)


if __name__ == "__main__":
    main()
