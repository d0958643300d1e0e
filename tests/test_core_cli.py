"""The CLI as users call it: one-line errors, exit codes, read-only query, resumable ingest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fgsarchive import __version__
from fgsarchive.cli import app
from fgsarchive.db import Database
from fgsarchive.maintenance import archive_checksums

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def archive(products, tmp_path):
    path = tmp_path / "a.duckdb"
    result = invoke("ingest", "--from", products, "--db", path, "--no-fit")
    assert result.exit_code == 0, result.output
    return path


def test_version_and_help():
    assert invoke("--version").output.strip() == f"fgsarchive {__version__}"
    for cmd in ([], ["ingest"], ["query"], ["status"], ["demo"]):
        result = invoke(*cmd, "-h")
        assert result.exit_code == 0 and "Usage" in result.output
    proc = subprocess.run(
        [sys.executable, "-m", "fgsarchive", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_status_json_counts(archive):
    result = invoke("status", "--json", "--db", archive)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["programs"][0]["program"] == 1534
    assert info["tables"]["frames"] == info["programs"][0]["n_frames"] > 0


def test_query_formats(archive, tmp_path):
    sql = "SELECT file_name, count(*) AS n FROM frames GROUP BY 1 ORDER BY 1"
    as_json = json.loads(invoke("query", sql, "--json", "--db", archive).output)
    assert as_json and all(row["n"] > 0 for row in as_json)
    as_csv = invoke("query", sql, "--format", "csv", "--db", archive).output.splitlines()
    assert as_csv[0] == '"file_name","n"' and len(as_csv) == len(as_json) + 1
    out = tmp_path / "q.parquet"
    assert invoke("query", sql, "--format", "parquet", "--out", out, "--db", archive).exit_code == 0
    assert pq.read_table(out).num_rows == len(as_json)
    pixels = json.loads(
        invoke(
            "query", "SELECT pixels[1] AS p FROM frames LIMIT 1", "--json", "--db", archive
        ).output
    )
    assert isinstance(pixels[0]["p"], float)


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("DELETE FROM files", "read-only"),
        ("INSERT INTO files (file_name, status) VALUES ('x', 'y')", "read-only"),
        ("COPY files TO '/tmp/stolen.csv'", "read-only"),
        ("ATTACH '/tmp/other.duckdb'", "read-only"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
        ("SELECT 1; DROP TABLE files", "one SQL statement"),
        ("SELEC nonsense", "SQL error"),
        ("SELECT * FROM no_such_table", "no_such_table"),
    ],
)
def test_query_refuses_writes_and_outside_files(archive, sql, words):
    before = archive_checksums(Database(archive))
    result = invoke("query", sql, "--db", archive)
    assert result.exit_code == 2
    assert words.lower() in result.output.lower()
    lines = result.output.strip().splitlines()
    # one line, except that a SQL error keeps DuckDB's hints and LINE pointer below it
    assert len(lines) == 1 or (lines[0].startswith("error: SQL error:") and len(lines) <= 4)
    assert archive_checksums(Database(archive)) == before


def test_bad_inputs_are_one_line_errors(tmp_path, products):
    cases = [
        (["ingest", "--from", tmp_path / "missing", "--db", tmp_path / "x.duckdb"], 2, "missing"),
        (["ingest", "--db", tmp_path / "x.duckdb"], 2, "--from"),
        (["status", "--db", tmp_path / "none.duckdb"], 3, "no archive"),
        (
            ["ingest", "--from", products, "--db", "/proc/version/a.duckdb", "--no-fit"],
            3,
            "a.duckdb",
        ),
        (
            ["ingest", "--from", products, "--workers", "0", "--db", tmp_path / "x.duckdb"],
            2,
            "workers",
        ),
        (["query", "SELECT 1", "--format", "xml", "--db", tmp_path / "x.duckdb"], 2, "csv"),
    ]
    for args, code, words in cases:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert words in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_no_archive_exits_3_everywhere(tmp_path):
    """Every command that needs an archive names the missing path and exits 3 (ExitCode.ARCHIVE)."""
    missing = tmp_path / "none.duckdb"
    for args in (["status"], ["events"], ["stars"], ["telemetry"], ["fit"], ["query", "SELECT 1"]):
        result = invoke(*args, "--db", missing)
        assert result.exit_code == 3, (args, result.output)
        assert "no archive" in result.output and str(missing) in result.output, (
            args,
            result.output,
        )
        assert len(result.output.strip().splitlines()) == 1, (args, result.output)
    assert not missing.exists()


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_lock_timeout_is_a_usage_error(archive, value, monkeypatch):
    """A malformed FGSARCHIVE_LOCK_TIMEOUT: one line naming the variable, exit 2 (not a traceback)."""
    monkeypatch.setenv("FGSARCHIVE_LOCK_TIMEOUT", value)
    result = invoke("status", "--db", archive)
    assert result.exit_code == 2, result.output
    assert "FGSARCHIVE_LOCK_TIMEOUT" in result.output and "Traceback" not in result.output


def test_failed_file_gives_nonzero_exit_and_names_it(products, tmp_path):
    bad = products / "jw01534001001_gs-fg_2022338000000_cal.fits"
    bad.write_text("garbage")
    result = invoke("ingest", "--from", products, "--db", tmp_path / "a.duckdb", "--no-fit")
    assert result.exit_code == 1
    assert bad.name in result.output.splitlines()[-1]


def test_sigkilled_ingest_resumes_to_the_same_archive(products, tmp_path):
    """Kill `fgsarchive ingest` at a few points; the re-run equals an uninterrupted run."""
    reference = tmp_path / "ref.duckdb"
    assert invoke("ingest", "--from", products, "--db", reference, "--no-fit").exit_code == 0
    expected = archive_checksums(Database(reference))
    env = {**os.environ, "FGSARCHIVE_DB": str(tmp_path / "killed.duckdb")}
    cmd = [
        sys.executable,
        "-m",
        "fgsarchive",
        "-q",
        "ingest",
        "--from",
        str(products),
        "--no-fit",
        "--workers",
        "2",
    ]
    for delay in (0.6, 1.0, 1.4):
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert archive_checksums(Database(tmp_path / "killed.duckdb")) == expected


def test_migrate_command_on_a_current_archive(archive):
    result = invoke("migrate", "--db", archive)
    assert result.exit_code == 0 and "up to date" in result.output


@pytest.mark.slow
def test_demo_runs_every_step_and_prints_it(tmp_path):
    """``fgsarchive demo`` (printing in cli/demo.py, steps in fgsarchive.demo) on a small program."""
    db = tmp_path / "demo.duckdb"
    result = invoke("demo", "--frames", 8000, "--workdir", tmp_path / "work", "--db", db)
    assert result.exit_code == 0, result.output
    for step in ("1/5 simulate", "2/5 ingest", "3/5 fit", "4/5 analyse", "5/5 summary"):
        assert step in result.output
    assert "8,000 frames fitted" in result.output and "variability:" in result.output
    with Database(db).reader() as con:
        assert con.execute("SELECT count(*) FROM fits").fetchall() == [(8000,)]
