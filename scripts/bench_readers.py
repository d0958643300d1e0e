"""Readers beside writers (issue 14): ingest alone, beside a held reader, beside a polling reader;
opening the archive and counting frames from a plain DuckDB client; publication cost; a move and
a copy. Prints the figures side by side.

Usage: ``python scripts/bench_readers.py [--frames 1000000] [--ingest-frames 300000] [--workdir DIR]
[--count-only]``

Every writer and reader runs in its own process (``fgsarchive ingest`` via the CLI; plain clients
are ``python -c`` with duckdb only). Timings on a shared 2-core machine vary by about +-30 %: the
three ingests run back to back on the same input and are best compared as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fgsarchive.db import Database
from fgsarchive.simulate import simulate_archive

CONSISTENT = (
    "SELECT (SELECT count(*) FROM frames), "
    "(SELECT coalesce(sum(n_frames), 0) FROM files WHERE status = 'ingested' "
    "AND file_name IN (SELECT DISTINCT file_name FROM frames)), "
    "(SELECT count(*) FROM files)"
)
HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM files").fetchall()[0][0], flush=True)
sys.stdin.readline()
"""
POLLER = """
import json, sys, time, duckdb
path, query = sys.argv[1], sys.argv[2]
reads = failed = inconsistent = 0
errors = []
stop = time.monotonic() + 3600
while True:
    try:
        with open(sys.argv[3]) as f:
            if f.read().strip() == "stop":
                break
    except FileNotFoundError:
        pass
    try:
        with duckdb.connect(path, read_only=True) as con:
            n_files = con.execute("SELECT count(*) FROM files").fetchall()[0][0]
            if n_files:
                frames, promised, _ = con.execute(query).fetchall()[0]
                inconsistent += frames != promised
        reads += 1
    except Exception as exc:
        failed += 1
        errors.append(str(exc).splitlines()[0][:200])
    time.sleep(0.3)
print(json.dumps({"reads": reads, "failed": failed, "inconsistent": inconsistent, "errors": errors[:3]}))
"""
COUNT = """
import sys, time, duckdb
t0 = time.perf_counter()
con = duckdb.connect(sys.argv[1], read_only=True)
t1 = time.perf_counter()
n = con.execute("SELECT count(*) FROM frames").fetchall()[0][0]
t2 = time.perf_counter()
print(n, t1 - t0, t2 - t1)
"""


def _ingest(source: Path, db_path: Path) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "fgsarchive", "--quiet", "ingest", "--from", str(source)]
    cmd += ["--no-fit", "--workers", "2", "--db", str(db_path)]
    env = {**os.environ, "FGSARCHIVE_LOCK_TIMEOUT": "30"}
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        print(f"ingest failed ({out.returncode}): {out.stderr.strip()[-300:]}")
    return time.perf_counter() - started, out.returncode


def _empty_archive(path: Path) -> Database:
    db = Database(path)
    db.initialise()
    return db


def ingest_beside_readers(source: Path, work: Path) -> None:
    print("\n== ingest of the same files, alone and beside readers (separate processes)")
    rows = []
    alone_s, rc = _ingest(source, _empty_archive(work / "alone" / "a.duckdb").path)
    rows.append(("alone", alone_s, rc, "-"))

    db = _empty_archive(work / "held" / "a.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    holder.stdout.readline()  # the reader holds the archive open from here on
    held_s, rc = _ingest(source, db.path)
    holder.communicate("\n")
    rows.append(("beside a reader held open", held_s, rc, "held for the whole ingest"))

    db = _empty_archive(work / "poll" / "a.duckdb")
    flag = work / "poll" / "stop"
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, str(db.path), CONSISTENT, str(flag)],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    poll_s, rc = _ingest(source, db.path)
    flag.write_text("stop")
    polled = json.loads(poller.communicate()[0])
    rows.append(
        (
            "beside a reader polling every 0.3 s",
            poll_s,
            rc,
            f"{polled['reads']} reads, {polled['failed']} failed, "
            f"{polled['inconsistent']} inconsistent {polled['errors'] or ''}",
        )
    )
    print(f"{'run':<38} {'wall s':>7} {'x alone':>8} {'exit':>5}  readers")
    for name, seconds, code, note in rows:
        print(f"{name:<38} {seconds:7.2f} {seconds / alone_s:8.2f} {code:5d}  {note}")


def plain_count(db_path: Path, runs: int = 3) -> list[tuple[int, float, float]]:
    out = []
    for _ in range(runs):
        res = subprocess.run(
            [sys.executable, "-c", COUNT, str(db_path)], capture_output=True, text=True, cwd="/"
        )
        if res.returncode:
            raise RuntimeError(res.stderr.strip().splitlines()[-1])
        n, open_s, count_s = res.stdout.split()
        out.append((int(n), float(open_s), float(count_s)))
    return out


def publication_cost(db: Database, runs: int = 5) -> tuple[float, float, int]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        db.publish()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), db.path.stat().st_size


def big_archive(work: Path, frames: int) -> Database:
    print(f"\n== a plain client at {frames:,} frames")
    source = work / f"sim{frames}"
    t0 = time.perf_counter()
    simulate_archive(source, programs=8, total_frames=frames, seed=3, workers=2)
    t1 = time.perf_counter()
    db = Database(work / f"big{frames}" / "a.duckdb")
    seconds, rc = _ingest(source, db.path)
    print(f"simulate {t1 - t0:.1f} s, ingest {seconds:.1f} s (exit {rc})")
    shutil.rmtree(source, ignore_errors=True)
    counts = plain_count(db.path)
    print("plain duckdb.connect(read_only=True) + SELECT count(*) FROM frames, new process, cwd /:")
    for n, open_s, count_s in counts:
        print(f"  {n:,} frames: open {open_s * 1000:.1f} ms, count {count_s * 1000:.1f} ms")
    best, median, size = publication_cost(db)
    with db.reader() as con:
        n_files = con.execute("SELECT count(*) FROM files").fetchall()[0][0]
    print(
        f"publication of a snapshot ({n_files} files, public file {size / 1e6:.1f} MB): "
        f"best {best * 1000:.0f} ms, median {median * 1000:.0f} ms"
    )
    return db


def move_and_copy(db: Database, work: Path) -> None:
    print("\n== a move and a copy")
    folder = db.path.parent
    frames = plain_count(db.path, 1)[0][0]
    moved_folder = work / "moved"
    shutil.move(folder, moved_folder)
    moved = moved_folder / db.path.name
    try:
        plain_count(moved, 1)
        before = "read (WRONG)"
    except RuntimeError as exc:
        before = f"error: {str(exc)[:160]}"
    print(f"plain client after the move, before any fgsarchive command: {before}")
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "fgsarchive", "status", "--db", str(moved)],
        capture_output=True,
        text=True,
    )
    relink_s = time.perf_counter() - t0
    after = plain_count(moved, 1)[0][0]
    print(
        f"`fgsarchive status` at the new place: exit {out.returncode}, {relink_s:.2f} s "
        f"(re-link included); then the plain client reads {after:,} frames (was {frames:,})"
    )
    copy_folder = work / "copy"
    t0 = time.perf_counter()
    shutil.copytree(moved_folder, copy_folder)
    copy_s = time.perf_counter() - t0
    copy = copy_folder / db.path.name
    try:
        plain_count(copy, 1)
        before = "read (WRONG: the original's parts)"
    except RuntimeError as exc:
        before = f"error: {str(exc)[:160]}"
    print(f"plain client on a copy ({copy_s:.1f} s to copy), before any command: {before}")
    subprocess.run(
        [sys.executable, "-m", "fgsarchive", "status", "--db", str(copy)], capture_output=True
    )
    ids = [
        (p / (db.path.name + ".parts") / "_archive_id").read_text().strip()
        for p in (moved_folder, copy_folder)
    ]
    print(
        f"after `fgsarchive status` on the copy: reads {plain_count(copy, 1)[0][0]:,} frames; "
        f"archive ids original {ids[0][:8]}..., copy {ids[1][:8]}... ({'differ' if ids[0] != ids[1] else 'SAME'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frames", type=int, default=1_000_000, help="frames of the plain-client archive"
    )
    parser.add_argument(
        "--ingest-frames", type=int, default=300_000, help="frames ingested beside readers"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--count-only", action="store_true", help="only the plain-client count (for 20M frames)"
    )
    opts = parser.parse_args()
    work = Path(opts.workdir or tempfile.mkdtemp(prefix="bench_readers_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if opts.count_only:
            big_archive(work, opts.frames)
            return
        source = work / "sim"
        simulate_archive(
            source,
            programs=4,
            total_frames=opts.ingest_frames,
            seed=1,
            frames_per_file=5000,
            workers=2,
        )
        ingest_beside_readers(source, work)
        db = big_archive(work, opts.frames)
        move_and_copy(db, work)
    finally:
        if opts.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
