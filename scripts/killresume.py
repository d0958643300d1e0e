"""Kill-and-resume harness: SIGKILL ingest, fit, MAST ingest and the whole crawl chain, re-run, compare.

Usage: python scripts/killresume.py [--trials 20] [--seed 0] [--workdir DIR]
                                    [--modes ingest,fit,crawl,chain]
                                    [--frames-per-file 20000] [--keep]

For each mode an uninterrupted reference run is made first. Then every trial starts from the same
state as the reference (an empty archive for ``ingest`` and ``crawl``, the ingested archive for
``fit``), runs the command 1-3 times and SIGKILLs it after a random delay (seeded), then runs it once
to the end, and compares the archive with the reference: row counts and order-independent
checksums of files, frames, pointing, centroids, fits, quickfits and photometry
(``fgsarchive.maintenance.archive_checksums``), plus leftovers (staging debris, temporary files).

What is killed (seeded per kill): the whole process group (a job killed by its scheduler), only the
main process (its worker processes are orphaned and may still be writing), or one worker process
(the kernel's OOM killer picks the largest process, often a worker).

Modes:
  ingest  ``fgsarchive ingest --from DIR --no-fit`` (one corrupt file among the products)
  fit     ``fgsarchive fit``
  crawl   ``fgsarchive ingest PROGRAM`` (acquisition only: ``--no-fit --no-telemetry --no-stars
          --no-analyse``) against a MastTestServer on 127.0.0.1
  chain   ``fgsarchive crawl`` through the whole chain (download, ingest, fit, telemetry, events,
          catalog cross-match, analyses) against the same server, which also serves the
          simulator's EDB telemetry and Guide Star Catalog rows. Each trial kills one run during
          the fit and one during the analyses (a step is located by the summary line the step
          before it prints), then 0-1 more at random points; the archive is compared on the
          relations above plus telemetry, events, the catalog and the analyses' tables.

Prints one line per trial and a summary table; exits 1 when any trial's archive differs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RELATIONS = ("files", "frames", "pointing", "centroids", "fits", "quickfits", "photometry")
CHAIN_RELATIONS = (
    *RELATIONS,
    "telemetry",
    "telemetry_windows",
    "events",
    "guide_star_catalog",
    "anomalies",
    "periodogram_peaks",
    "variability",
)
# ``crawl`` mode: the acquisition only; ``chain`` mode: every step
ACQUIRE_ONLY = ("--no-fit", "--no-telemetry", "--no-stars", "--no-analyse")
# the simulated program starts at MJD 59918.0 (2022-12-05)
CHAIN_ARGV = ("crawl", "--since", "2022-12-04", "--until", "2022-12-07", "--window-days", "1")
# a kill during step X waits for the line the step before X prints (pipeline order)
STEP_BEFORE = {"fit": "MAST listed", "analyse": "stars:"}
KILL_WHAT = ("group", "main", "worker")
PROGRAM = 1534
ORPHAN_WAIT_S = 10.0
MAX_ATTEMPTS = 6
HANG_S = 120  # a run still alive this long after a worker was killed is hung


# --- data ------------------------------------------------------------------------------------------
def make_products(folder: Path, *, frames_per_file: int = 20_000, seed: int = 3) -> Path:
    """A small program (2 obs x 2 visits, segments, track/acq products) plus one corrupt file."""
    from fgsarchive.simulate import simulate_program

    marker = folder / f".done-{frames_per_file}-{seed}-v2"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    prog = simulate_program(
        folder,
        program=PROGRAM,
        n_observations=2,
        n_visits=2,
        files_per_visit=2,
        frames_per_file=frames_per_file,
        segment_frames=max(frames_per_file * 2 // 3, 1),
        n_guide_stars=2,
        seed=seed,
        include_other_products=True,
    )
    # What the loopback EDB and GSC serve (chain mode), from the simulator's truth.
    from fgsarchive.telemetry import DEFAULT_MNEMONICS
    from fgsarchive.testing.serve import products_span, simulated_catalog, simulated_edb

    edb = simulated_edb(prog.telemetry, *products_span(folder))
    for name in DEFAULT_MNEMONICS:  # on the real EDB too: empty here
        edb.setdefault(name, ([], []))
    (folder / ".server.json").write_text(
        json.dumps({"edb": edb, "catalog": simulated_catalog(prog.stars)}, default=str)
    )
    # One file that fails to ingest: a fine-guide file cut in half, under its own name.
    victim = prog.fg_files[0]
    bad = victim.with_name(re.sub(r"_gs-fg_\d{13}", "_gs-fg_2099001000000", victim.name))
    data = victim.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    shutil.rmtree(folder / "truth", ignore_errors=True)
    marker.write_text("ok")
    return folder


# --- comparing archives ------------------------------------------------------------------------------
def signature(db_path: Path, relations: tuple[str, ...] = RELATIONS) -> dict[str, tuple[int, int]]:
    """Row count and checksum of every relation (absent ones count as (0, 0))."""
    from fgsarchive.db import Database
    from fgsarchive.maintenance import archive_checksums

    return archive_checksums(Database(db_path), relations)


def leftovers(db_path: Path) -> list[str]:
    """Staging debris and temporary files left in the parts folder."""
    root = Path(str(db_path) + ".parts")
    found = []
    staging = root / "_staging"
    if staging.is_dir():
        found += [f"_staging/{p.name}" for p in staging.iterdir()]
    found += [str(p.relative_to(root)) for p in root.rglob(".*.tmp")]
    found += [p.name for p in db_path.parent.glob(f".{db_path.name}.*.tmp*")]  # killed publishes
    return sorted(found)


def copy_archive(src: Path, dst: Path) -> None:
    shutil.copy2(src, dst)
    wal = Path(str(src) + ".wal")
    if wal.exists():
        shutil.copy2(wal, Path(str(dst) + ".wal"))
    shutil.copytree(Path(str(src) + ".parts"), Path(str(dst) + ".parts"))


def remove_archive(db_path: Path) -> None:
    for p in (db_path, Path(str(db_path) + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(Path(str(db_path) + ".parts"), ignore_errors=True)


# --- running and killing -----------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def run_to_end(argv: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )


def run_and_kill(
    argv: list[str], env: dict, delay: float, what: str, after: str | None = None
) -> dict:
    """Start ``argv`` in its own session, SIGKILL ``what`` after ``delay`` s (counted from when
    ``after`` appears on its stderr, if given: the line the step before the target prints)."""
    import psutil

    # stderr to a file, not a pipe: orphaned workers keep a pipe open after the main process died
    errfile = tempfile.NamedTemporaryFile()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=errfile, start_new_session=True
    )
    if after is not None:
        seen = Path(errfile.name)
        while proc.poll() is None and after not in seen.read_text(errors="replace"):
            time.sleep(0.01)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    outcome = {"delay_s": round(delay, 3), "what": what, "finished_first": proc.poll() is not None}
    if after is not None:
        outcome["after"] = after
    if proc.poll() is None:
        if what == "group":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        elif what == "main":
            proc.kill()
        else:  # a worker, if there is one now; else the main process
            kids = _descendants(proc.pid)
            # forkserver / resource tracker are not workers: prefer the busiest child
            target = proc.pid
            best = -1.0
            for pid in kids:
                with contextlib.suppress(psutil.Error):
                    cpu = sum(psutil.Process(pid).cpu_times()[:2])
                    if cpu > best:
                        best, target = cpu, pid
            outcome["killed_pid_is_main"] = target == proc.pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
    try:
        proc.wait(timeout=HANG_S)
    except subprocess.TimeoutExpired:  # a killed worker left the main process hanging
        outcome["hung"] = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    outcome["exit"] = proc.returncode
    if what in ("group", "main") and proc.returncode != -signal.SIGKILL:
        outcome["finished_first"] = True  # it ended on its own just before the kill
    errfile.seek(0)
    err = errfile.read().decode(errors="replace").strip()
    errfile.close()
    outcome["stderr"] = err.splitlines()[-1][:300] if err else ""
    # Orphans (main-only kill): the session's other processes. Let them finish on their own, as
    # they would on a real machine, but never for more than ORPHAN_WAIT_S, then kill them.
    end = time.monotonic() + ORPHAN_WAIT_S
    while time.monotonic() < end and _session_alive(proc.pid):
        time.sleep(0.05)
    if _session_alive(proc.pid):
        outcome["orphans_left"] = len(_session_pids(proc.pid))  # still alive: a leak
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return outcome


def _session_pids(sid: int) -> list[int]:
    import psutil

    pids = []
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(p.pid) == sid:
                pids.append(p.pid)
    return pids


def _session_alive(sid: int) -> bool:
    return bool(_session_pids(sid))


# --- the modes -------------------------------------------------------------------------------------
@dataclass
class Mode:
    name: str
    argv: list[str]
    start: Path | None  # archive to start each trial from (None: empty)
    reference: dict = field(default_factory=dict)
    ref_seconds: float = 0.0
    ref_exit: int = 0
    relations: tuple[str, ...] = RELATIONS
    step_seconds: dict[str, float] = field(default_factory=dict)  # chain: from the steps line


@dataclass
class TrialResult:
    mode: str
    trial: int
    kills: list[dict]
    final_exit: int
    match: bool
    diff: dict
    leftovers: list[str]
    final_stderr: str = ""


def code_fingerprint() -> str:
    """Hash of fgsarchive's code and SQL: a reference is only valid for the code that made it."""
    import hashlib

    import fgsarchive

    digest = hashlib.sha1()
    root = Path(fgsarchive.__file__).parent
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.sql")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fgsarchive", "--quiet", *args]


def prepare_modes(
    workdir: Path, products: Path, modes: list[str], env: dict, server_url: str | None
) -> dict[str, Mode]:
    """Reference runs: ingest (then fit on a copy), and crawl when asked."""
    out: dict[str, Mode] = {}
    ref_db = workdir / "ref" / "ingest.duckdb"
    ref_db.parent.mkdir(parents=True, exist_ok=True)
    remove_archive(ref_db)
    t = time.perf_counter()
    done = run_to_end(cli("ingest", "--from", str(products), "--no-fit", "--db", str(ref_db)), env)
    ingest_s = time.perf_counter() - t
    ingest_sig = signature(ref_db)
    if "ingest" in modes:
        out["ingest"] = Mode(
            "ingest",
            ["ingest", "--from", str(products), "--no-fit"],
            None,
            ingest_sig,
            ingest_s,
            done.returncode,
        )
    if "fit" in modes:
        fit_db = workdir / "ref" / "fit.duckdb"
        remove_archive(fit_db)
        copy_archive(ref_db, fit_db)
        t = time.perf_counter()
        fdone = run_to_end(cli("fit", "--db", str(fit_db)), env)
        out["fit"] = Mode(
            "fit", ["fit"], ref_db, signature(fit_db), time.perf_counter() - t, fdone.returncode
        )
    if "crawl" in modes and server_url:
        crawl_db = workdir / "ref" / "crawl.duckdb"
        remove_archive(crawl_db)
        cache = workdir / "ref" / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        t = time.perf_counter()
        cdone = run_to_end(
            cli(
                "ingest", str(PROGRAM), *ACQUIRE_ONLY, "--cache", str(cache), "--db", str(crawl_db)
            ),
            env,
        )
        out["crawl"] = Mode(
            "crawl",
            ["ingest", str(PROGRAM), *ACQUIRE_ONLY],
            None,
            signature(crawl_db),
            time.perf_counter() - t,
            cdone.returncode,
        )
        if cdone.returncode not in (0, 1):
            print(
                f"crawl reference run failed ({cdone.returncode}): {cdone.stderr.strip()}",
                flush=True,
            )
    if "chain" in modes and server_url:
        chain_db = workdir / "ref" / "chain.duckdb"
        remove_archive(chain_db)
        cache = workdir / "ref" / "chain-cache"
        shutil.rmtree(cache, ignore_errors=True)
        t = time.perf_counter()
        chdone = run_to_end(cli(*CHAIN_ARGV, "--cache", str(cache), "--db", str(chain_db)), env)
        out["chain"] = Mode(
            "chain",
            list(CHAIN_ARGV),
            None,
            signature(chain_db, CHAIN_RELATIONS),
            time.perf_counter() - t,
            chdone.returncode,
            CHAIN_RELATIONS,
            step_seconds(chdone.stderr),
        )
        if chdone.returncode not in (0, 1):
            print(
                f"chain reference run failed ({chdone.returncode}): {chdone.stderr.strip()}",
                flush=True,
            )
    return out


def step_seconds(stderr: str) -> dict[str, float]:
    """``{step: seconds}`` from the ``steps: ingest 3.9 s, fit 1.4 s, ...`` line of a chain run."""
    for line in stderr.splitlines():
        if line.startswith("steps: "):
            return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+) ([\d.]+) s", line)}
    return {}


def expected_exits(mode: Mode) -> set[int]:
    """Exit codes a trial's final run may end with: the reference's; for ``chain`` also 0 when the
    reference exited 1 (the corrupt file): ``crawl`` gives a file up after it failed in
    ``fgsarchive.crawl.MAX_ATTEMPTS`` runs, and the killed runs count."""
    if mode.name == "chain" and mode.ref_exit == 1:
        return {0, 1}
    return {mode.ref_exit}


def run_trial(mode: Mode, trial: int, rng: random.Random, workdir: Path, env: dict) -> TrialResult:
    tdir = workdir / "trials" / f"{mode.name}-{trial:03d}"
    shutil.rmtree(tdir, ignore_errors=True)
    tdir.mkdir(parents=True)
    db = tdir / "archive.duckdb"
    if mode.start is not None:
        copy_archive(mode.start, db)
    extra = ["--cache", str(tdir / "cache")] if mode.name in ("crawl", "chain") else []
    argv = cli(*mode.argv, *extra, "--db", str(db))
    kills = []
    wanted = rng.randint(1, 3)
    if mode.name == "chain":
        # one kill during the fit, one during the analyses (each located by the line the step
        # before it prints, delay drawn within the step's reference duration), then 0-1 at random
        for step in ("fit", "analyse"):
            seconds = mode.step_seconds.get(step, 1.0)
            kill = run_and_kill(
                argv, env, rng.uniform(0.0, seconds * 0.9), rng.choice(KILL_WHAT), STEP_BEFORE[step]
            )
            kill["step"] = step
            kills.append(kill)
        wanted = len(kills) + rng.randint(0, 1)
    # 1-3 kills at random points of the run (start-up included: imports take ~1 s); a run that
    # finished before its kill does not count, up to MAX_ATTEMPTS runs.
    for _ in range(MAX_ATTEMPTS):
        if sum(not k["finished_first"] for k in kills) >= wanted:
            break
        delay = rng.uniform(0.0, mode.ref_seconds * 1.1)
        kills.append(run_and_kill(argv, env, delay, rng.choice(KILL_WHAT)))
    final = run_to_end(argv, env)
    sig = signature(db, mode.relations)
    diff = {
        r: {"got": sig[r], "want": mode.reference[r]}
        for r in mode.relations
        if sig[r] != mode.reference[r]
    }
    stderr = final.stderr.strip().splitlines()[-1][:300] if final.stderr.strip() else ""
    result = TrialResult(
        mode.name,
        trial,
        kills,
        final.returncode,
        not diff and final.returncode in expected_exits(mode),
        diff,
        leftovers(db),
        stderr,
    )
    if result.match and not os.environ.get("KILLRESUME_KEEP_TRIALS"):
        shutil.rmtree(tdir, ignore_errors=True)
    return result


def start_server(products: Path):
    from fgsarchive.testing.mast_server import MastTestServer

    served = products / ".server.json"
    data = json.loads(served.read_text()) if served.exists() else {}
    edb = {k: (list(t), list(v)) for k, (t, v) in data.get("edb", {}).items()}
    server = MastTestServer(products_dir=products, telemetry=edb, catalog=data.get("catalog"))
    server.start()
    return server


def run(
    trials: int,
    seed: int,
    workdir: Path,
    modes: list[str],
    frames_per_file: int,
    verbose: bool = True,
) -> list[TrialResult]:
    products = make_products(workdir / "products", frames_per_file=frames_per_file)
    env = {**os.environ, "FGSARCHIVE_LOCK_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"}
    server = None
    url = None
    if "crawl" in modes or "chain" in modes:
        try:
            import fgsarchive.crawl  # noqa: F401

            server = start_server(products)
            url = server.url
            env.update(
                {
                    "FGSARCHIVE_MAST_URL": url,
                    "FGSARCHIVE_GSC_URL": url,
                    "FGSARCHIVE_MAST_RETRIES": "2",
                    "FGSARCHIVE_MAST_BACKOFF": "0.05",
                    "FGSARCHIVE_MAST_POLL": "0.05",
                }
            )
        except ImportError:
            print("note: fgsarchive.crawl is missing: crawl mode skipped", flush=True)
    results: list[TrialResult] = []
    try:
        prepared = prepare_modes(workdir, products, modes, env, url)
        for name, mode in prepared.items():
            if verbose:
                print(
                    f"reference {name}: {mode.ref_seconds:.1f} s, exit {mode.ref_exit}, "
                    + ", ".join(f"{r} {mode.reference[r][0]:,}" for r in mode.relations)
                    + (f"; steps {mode.step_seconds}" if mode.step_seconds else ""),
                    flush=True,
                )
        rng = random.Random(seed)
        code = code_fingerprint()
        for name in modes:
            if name not in prepared:
                continue
            for trial in range(trials):
                if code_fingerprint() != code:  # someone edited fgsarchive meanwhile
                    print("note: fgsarchive's code changed: new reference runs", flush=True)
                    prepared = prepare_modes(workdir, products, modes, env, url)
                    code = code_fingerprint()
                result = run_trial(prepared[name], trial, rng, workdir, env)
                if not result.match and code_fingerprint() != code:
                    result.diff["note"] = "fgsarchive's code changed during this trial"
                results.append(result)
                if verbose:
                    kills = "; ".join(
                        f"{k['what']}@"
                        + (f"{k['step']}+" if k.get("step") else "")
                        + f"{k['delay_s']:.2f}s"
                        + (" (done before)" if k["finished_first"] else "")
                        + (f" exit {k['exit']}" if not k["finished_first"] else "")
                        + (" HUNG" if k.get("hung") else "")
                        + (f" {k['orphans_left']} orphans" if k.get("orphans_left") else "")
                        for k in result.kills
                    )
                    status = "ok" if result.match else f"MISMATCH {json.dumps(result.diff)}"
                    print(
                        f"{name} #{trial:02d}: kills [{kills}] -> final exit {result.final_exit}"
                        f" {status}"
                        + (f" leftovers {result.leftovers}" if result.leftovers else "")
                        + (f" | {result.final_stderr}" if not result.match else ""),
                        flush=True,
                    )
    finally:
        if server is not None:
            server.stop()
    return results


def summary(results: list[TrialResult]) -> str:
    lines = [
        "mode     trials  kills  killed mid-run  hung  orphans left  mismatches  "
        "runs with leftovers"
    ]
    for mode in dict.fromkeys(r.mode for r in results):
        rs = [r for r in results if r.mode == mode]
        kills = [k for r in rs for k in r.kills]
        lines.append(
            f"{mode:<8} {len(rs):>6}  {len(kills):>5}  "
            f"{sum(not k['finished_first'] for k in kills):>14}  "
            f"{sum(bool(k.get('hung')) for k in kills):>4}  "
            f"{sum(k.get('orphans_left', 0) for k in kills):>12}  "
            f"{sum(not r.match for r in rs):>10}  {sum(bool(r.leftovers) for r in rs):>19}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--modes", default="ingest,fit,crawl,chain")
    parser.add_argument("--frames-per-file", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true")
    opts = parser.parse_args()
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="killresume-"))
    workdir.mkdir(parents=True, exist_ok=True)
    modes = [m.strip() for m in opts.modes.split(",") if m.strip()]
    started = time.perf_counter()
    results = run(opts.trials, opts.seed, workdir, modes, opts.frames_per_file)
    print()
    print(summary(results))
    print(f"\n{len(results)} trials in {time.perf_counter() - started:.0f} s; workdir {workdir}")
    if not opts.keep:
        shutil.rmtree(workdir / "trials", ignore_errors=True)
    sys.exit(0 if all(r.match for r in results) else 1)


if __name__ == "__main__":
    main()
