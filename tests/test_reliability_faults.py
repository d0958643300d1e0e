"""Faults: MAST misbehaving (5xx, drops, resets, truncated and slow bodies) and a full disk.

In every case the command says what happened in one line, the archive and the cache stay
consistent (no half-ingested file, no corrupt cached file taken for complete), and re-running the
same command ends with the archive a fault-free run makes: no file is lost.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fgsarchive import storage
from fgsarchive.cli import app
from fgsarchive.db import Database
from fgsarchive.maintenance import archive_checksums
from fgsarchive.testing.mast_server import FaultPlan, MastTestServer

RELATIONS = ("files", "frames", "pointing", "centroids")
runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reference(products: Path, tmp_path: Path) -> dict:
    db = tmp_path / "reference.duckdb"
    result = invoke("ingest", "--from", products, "--db", db, "--no-fit", "--workers", "1")
    assert result.exit_code == 0, result.output
    return archive_checksums(Database(db), RELATIONS)


def test_download_faults_then_reruns_end_with_the_fault_free_archive(products, tmp_path):
    reference = _reference(products, tmp_path)
    faults = FaultPlan(
        seed=5,
        probabilities={
            "503": 0.25,
            "500": 0.1,
            "drop": 0.25,
            "truncate": 0.2,
            "reset": 0.1,
            "slow": 0.05,
        },
        retry_after="0",
        slow_s=0.05,
        partial_fraction=0.3,
    )
    db, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    originals = {p.name: _sha(p) for p in products.rglob("*_cal.fits")}
    runs = []
    with MastTestServer(products, faults=faults, checksums=True, executing_polls=0) as srv:
        env = {
            "FGSARCHIVE_MAST_URL": srv.url,
            "FGSARCHIVE_MAST_RETRIES": "1",
            "FGSARCHIVE_MAST_BACKOFF": "0.01",
            "FGSARCHIVE_MAST_POLL": "0.01",
        }
        for _ in range(8):
            result = invoke(
                "ingest",
                "1534",
                "--products",
                "all",
                "--db",
                db,
                "--cache",
                cache,
                "--no-fit",
                "--no-telemetry",  # the download faults are the subject: acquisition only
                "--no-stars",
                "--no-analyse",
                "--workers",
                "2",
                env=env,
            )
            runs.append(result.exit_code)
            errors = [line for line in result.output.splitlines() if line.startswith("error:")]
            assert len(errors) <= 1 and "Traceback" not in result.output, result.output
            assert result.exit_code in (0, 1, 4), result.output
            # consistent after every run: whatever the cache holds complete is byte-identical,
            # and whatever the archive says is ingested has all its frames
            for path in cache.rglob("*_cal.fits"):
                with Database(db).reader() as con:
                    state = con.execute(
                        "SELECT status FROM files WHERE file_name = $f", {"f": path.name}
                    ).fetchall()
                if state == [("ingested",)]:
                    assert _sha(path) == originals[path.name], path.name
            if result.exit_code == 0:
                break
        faults_injected = sum(srv.stats["faults"].values())
    assert runs[-1] == 0, runs
    assert len(runs) > 1, "the faults were too gentle to fail a first run"
    assert faults_injected > 10
    assert archive_checksums(Database(db), RELATIONS) == reference  # no file lost
    assert {p.name: _sha(p) for p in cache.rglob("*_cal.fits")} == originals
    assert not list(cache.rglob("*.part"))
    print(f"\n{faults_injected} faults injected; runs {runs}; files lost 0")


def test_disk_full_while_staging_fails_those_files_and_a_rerun_completes(
    products, tmp_path, monkeypatch
):
    reference = _reference(products, tmp_path)
    real = storage.write_parquet_atomic
    fg = sorted(p.name[:-5] for p in products.rglob("*_gs-fg_*_cal.fits"))
    victims = set(fg[::2])  # half the fine-guide files find the disk full, at their last table

    def full_disk(path, *args, **kwargs):
        if path.parent.name in victims and path.name == "centroids.parquet":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *args, **kwargs)

    db = tmp_path / "a.duckdb"
    monkeypatch.setattr(storage, "write_parquet_atomic", full_disk)
    result = invoke("ingest", "--from", products, "--db", db, "--no-fit", "--workers", "1")
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert "No space left on device" in last and "failed to ingest" in last
    archive = Database(db)
    with archive.reader() as con:
        failed = con.execute("SELECT count(*) FROM files WHERE status = 'failed'").fetchall()[0][0]
        orphans = con.execute(
            "SELECT count(*) FROM frames WHERE file_name NOT IN "
            "(SELECT file_name FROM files WHERE status = 'ingested')"
        ).fetchall()[0][0]
    assert failed == len(victims) and orphans == 0
    assert not list(archive.parts.root.rglob(".*.tmp"))
    staging = archive.parts.root / "_staging"
    assert not staging.exists() or not any(staging.iterdir())
    result = invoke("ingest", "--from", products, "--db", db, "--no-fit", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert archive_checksums(archive, RELATIONS) == reference


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): the disk-full test is skipped")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder: Path) -> Path:
    filler = folder / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb") as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * (1 << 16))
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_really_full_disk_ingest_commit_and_fit(products, tmp_path):
    """A tmpfs that fills up: staging, the DuckDB commit and the fit each say so; reruns complete."""
    reference = _reference(products, tmp_path)
    with tmpfs(tmp_path / "small", "64m") as disk:
        db = disk / "a.duckdb"
        assert invoke("ingest", "--from", products, "--db", db, "--no-fit").exit_code == 0
        filler = _fill(disk)
        # the commit of a forced re-ingest cannot be written: exit 3, one line, nothing changed
        result = invoke("ingest", "--from", products, "--db", db, "--no-fit", "--force")
        print("\nforced re-ingest on a full disk:", result.exit_code, result.output.strip()[-300:])
        assert result.exit_code == 3, result.output
        assert "No space left on device" in result.output
        assert result.output.count("error:") == 1
        # the fit cannot write its parts
        result = invoke("fit", "--db", db, "--what", "quick")
        print("fit on a full disk:", result.exit_code, result.output.strip()[-300:])
        assert result.exit_code == 1 and "No space left on device" in result.output
        assert not list(disk.rglob(".*.tmp"))
        filler.unlink()
        result = invoke("ingest", "--from", products, "--db", db, "--no-fit")
        assert result.exit_code == 0, result.output
        assert archive_checksums(Database(db), RELATIONS) == reference
        result = invoke("fit", "--db", db, "--what", "quick")
        assert result.exit_code == 0, result.output
        with Database(db).reader() as con:
            assert con.execute("SELECT count(*) FROM quickfits").fetchall() == [
                (reference["frames"][0],)
            ]
