"""Readers while a writer runs: `fgsarchive query` and `Archive.sql` loops never fail.

DuckDB lets one process hold the file read-write, and shares one database instance (and its
settings) between the connections of a process. Measured here before the fixes in db.py: two
`Archive.sql` calls at once in one process failed ("Cannot change configuration option
allowed_directories - the configuration has been locked", 115 of 118 calls), and a writer opened
in a process that had a reader open failed at once ("different configuration") instead of waiting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fgsarchive.archive import Archive
from fgsarchive.db import Database, run_user_query
from fgsarchive.errors import QueryError
from fgsarchive.ingest import ingest_paths

QUERY = "SELECT count(*) AS n, coalesce(sum(n_frames), 0) AS frames FROM files"


class Readers:
    """Reader loops: ``api`` threads calling Archive.sql, ``cli`` threads running `fgsarchive query`."""

    def __init__(self, db_path: Path, *, api: int = 2, cli: int = 1, pause_s: float = 0.0) -> None:
        self.db_path = db_path
        self.pause_s = pause_s
        self.ok = 0
        self.failures: list[str] = []
        self.frames_seen: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._api, daemon=True) for _ in range(api)]
        self._threads += [threading.Thread(target=self._cli, daemon=True) for _ in range(cli)]
        self.env = {**os.environ, "FGSARCHIVE_LOCK_TIMEOUT": "120"}

    def __enter__(self) -> Readers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _record(self, ok: bool, what: str, frames: int | None = None) -> None:
        with self._lock:
            if ok:
                self.ok += 1
                if frames is not None:
                    self.frames_seen.append(frames)
            else:
                self.failures.append(what)

    def _api(self) -> None:
        arc = Archive(self.db_path)
        while not self._stop.is_set():
            if self.db_path.exists():
                try:
                    frames = int(arc.sql(QUERY)["frames"][0])
                    self._record(True, "", frames)
                except Exception as exc:  # every failure is counted, whatever it is
                    self._record(False, f"api {type(exc).__name__}: {exc}"[:300])
            time.sleep(self.pause_s or 0.001)

    def _cli(self) -> None:
        while not self._stop.is_set():
            if self.db_path.exists():
                cmd = [
                    sys.executable,
                    "-m",
                    "fgsarchive",
                    "query",
                    QUERY,
                    "--format",
                    "csv",
                    "--db",
                    str(self.db_path),
                ]
                out = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
                self._record(
                    out.returncode == 0, f"cli {out.returncode}: {out.stderr.strip()[:300]}"
                )
            time.sleep(self.pause_s or 0.001)


def _ingest_cli(products: Path, db_path: Path) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [
        sys.executable,
        "-m",
        "fgsarchive",
        "--quiet",
        "ingest",
        "--from",
        str(products),
        "--no-fit",
        "--workers",
        "2",
        "--db",
        str(db_path),
    ]
    started = time.perf_counter()
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "FGSARCHIVE_LOCK_TIMEOUT": "120"}
    )
    return time.perf_counter() - started, out


def test_readers_never_fail_while_ingest_writes(products, tmp_path):
    alone_s, alone = _ingest_cli(products, tmp_path / "alone.duckdb")
    assert alone.returncode == 0, alone.stderr
    db_path = tmp_path / "busy.duckdb"
    with Readers(db_path) as readers:
        busy_s, busy = _ingest_cli(products, db_path)
        time.sleep(0.5)  # a few reads of the finished archive
    assert busy.returncode == 0, busy.stderr
    assert readers.failures == [], readers.failures[:5]
    assert readers.ok > 5
    # readers see whole commits only: frame totals never go down
    assert readers.frames_seen == sorted(readers.frames_seen)
    print(
        f"\ningest alone {alone_s:.1f} s, with readers {busy_s:.1f} s "
        f"({busy_s / alone_s:.1f}x); {readers.ok} reads, {len(readers.failures)} failed"
    )


def test_readers_never_fail_while_fit_writes(products, tmp_path):
    db = Database(tmp_path / "a.duckdb")
    ingest_paths(db, sorted(products.rglob("*_cal.fits")), workers=2)
    cmd = [
        sys.executable,
        "-m",
        "fgsarchive",
        "--quiet",
        "fit",
        "--workers",
        "2",
        "--db",
        str(db.path),
    ]
    with Readers(db.path, api=2, cli=1) as readers:
        out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert readers.failures == [], readers.failures[:5]
    assert readers.ok > 5


def test_sandboxed_queries_in_threads_of_one_process(products, tmp_path):
    """Two sandboxed readers of one file in one process share DuckDB's instance and its settings."""
    db = Database(tmp_path / "a.duckdb")
    ingest_paths(db, sorted(products.rglob("*_gs-fg_*_cal.fits"))[:2], workers=1)
    with db.reader(sandbox=True) as first:
        out = run_user_query(db, "SELECT count(*) AS n FROM frames").to_pylist()  # a second one
        assert first.execute("SELECT count(*) FROM files").fetchall() == [(2,)]
    assert out[0]["n"] > 0
    errors: list[BaseException] = []

    def loop() -> None:
        for _ in range(20):
            try:
                run_user_query(db, "SELECT count(*) FROM frames")
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_sandbox_still_holds_when_instances_are_shared(products, tmp_path):
    db = Database(tmp_path / "a.duckdb")
    ingest_paths(db, sorted(products.rglob("*_gs-fg_*_cal.fits"))[:1], workers=1)
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with db.reader() as plain:  # an unsandboxed connection of this process is open
        assert plain.execute(f"SELECT count(*) FROM read_csv('{secret}')").fetchall() == [(1,)]
        with pytest.raises(QueryError, match="(?i)disabled|not allowed|permission"):
            run_user_query(db, f"SELECT * FROM read_csv('{secret}')")


def test_a_writer_never_waits_for_a_reader_of_its_own_process(products, tmp_path):
    """Writers work on the private writer database and publish snapshots: a reader held open in
    the same process keeps the snapshot it opened, and the writer finishes meanwhile."""
    db = Database(tmp_path / "a.duckdb")
    paths = sorted(products.rglob("*_gs-fg_*_cal.fits"))
    ingest_paths(db, paths[:1], workers=1)
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            ingest_paths(db, paths[1:2], workers=1)
        except BaseException as exc:
            errors.append(exc)
        done.set()

    with db.reader() as held:
        writer = threading.Thread(target=write)
        writer.start()
        assert done.wait(timeout=120)  # finished while the reader is held
        assert held.execute("SELECT count(*) FROM files").fetchall() == [(1,)]
    writer.join(timeout=60)
    assert errors == []
    with db.reader() as con:
        assert con.execute("SELECT count(*) FROM files").fetchall() == [(2,)]
