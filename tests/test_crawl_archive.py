"""`fgsarchive ingest PROGRAM` and `fgsarchive crawl` against the loopback MAST server.

Real path: MastClient -> MastTestServer on 127.0.0.1 -> cache -> ingest_paths -> DuckDB; server
statistics show what was (not) requested again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fgsarchive import crawl as crawl_module
from fgsarchive.crawl import ingest_programs, parse_date, parse_program, plan_crawl_windows
from fgsarchive.db import Database
from fgsarchive.errors import UsageError
from fgsarchive.mast import MastClient, MastConfig, MastUnavailableError
from fgsarchive.simulate import simulate_program
from fgsarchive.testing.mast_server import FaultPlan, MastTestServer

runner = CliRunner()
TOKEN = "tok-Zq81-very-secret-4417"
WRONG = "tok-WRONG-also-secret-9903"
FAST = {  # fast retries for the CLI (read by fgsarchive.crawl.mast_config)
    "FGSARCHIVE_MAST_BACKOFF": "0.01",
    "FGSARCHIVE_MAST_POLL": "0.01",
    "FGSARCHIVE_MAST_RETRIES": "4",
    "MAST_API_TOKEN": None,
    "FGSARCHIVE_CACHE": None,
}


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> Path:
    """Two programs in one products folder: 1534 (8 files, 2 fg) and 2079 (a day later, 4 files)."""
    root = tmp_path_factory.mktemp("crawl") / "products"
    a = simulate_program(
        root,
        program=1534,
        n_observations=1,
        n_visits=2,
        frames_per_file=2000,
        include_other_products=True,
        seed=3,
        files_subdir="01534",
    )
    b = simulate_program(
        root / "b",
        program=2079,
        n_observations=1,
        n_visits=1,
        frames_per_file=1500,
        include_other_products=True,
        start_mjd=59919.0,
        seed=4,
        files_subdir="02079",
    )
    assert len(a.files) == 8 and len(b.files) == 4
    return root


def originals(products: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in products.rglob("jw*_gs-*_cal.fits")
    }


def invoke(*args, env=None):
    merged = dict(FAST)
    merged.update(env or {})
    return runner.invoke(app(), [str(a) for a in args], env=merged)


def app():
    from fgsarchive.cli import app as cli_app

    return cli_app


def server_env(srv) -> dict[str, str]:
    return {"FGSARCHIVE_MAST_URL": srv.url, "FGSARCHIVE_GSC_URL": srv.url}


def query(db_path: Path, sql: str):
    with Database(db_path).reader() as con:
        return con.execute(sql).fetchall()


def fast_config(srv, **kw) -> MastConfig:
    base = dict(
        mast_url=srv.url, gsc_url=srv.url, backoff_s=0.01, poll_interval_s=0.01, max_retries=4
    )
    base.update(kw)
    return MastConfig(**base)


# --------------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("good,value", [("1534", 1534), ("01534", 1534), ("jw02079", 2079)])
def test_parse_program_accepts(good, value):
    assert parse_program(good) == value


@pytest.mark.parametrize("bad", ["abc", "-5", "123456", "0", "", "15 34", "1e3"])
def test_parse_program_rejects(bad):
    with pytest.raises(UsageError, match="malformed program id"):
        parse_program(bad)


def test_dates_and_windows():
    assert parse_date("2022-12-04") == pytest.approx(59917.0)
    assert parse_date("59917.25") == 59917.25
    with pytest.raises(UsageError):
        parse_date("yesterday")
    windows = plan_crawl_windows(59917.2, 59919.1, 1.0)
    assert windows == [(59917.0, 59918.0), (59918.0, 59919.0), (59919.0, 59920.0)]
    assert crawl_module._covered(59917.0, 59919.0, windows[:2])
    assert not crawl_module._covered(59917.0, 59920.5, windows)


@pytest.mark.parametrize("bad", ["abc", "-5", "123456"])
def test_cli_malformed_program_is_usage_error(bad, tmp_path):
    result = invoke("ingest", "--", bad, "--db", tmp_path / "a.duckdb", "--no-fit")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "a.duckdb").exists()


def test_cli_bad_products_and_obs(tmp_path):
    assert invoke("ingest", "1534", "--products", "some", "--db", tmp_path / "a").exit_code == 2
    assert invoke("ingest", "1534", "--obs", "0", "--db", tmp_path / "a").exit_code == 2


# --------------------------------------------------------------------------------------------------
# ingest PROGRAM end to end
# --------------------------------------------------------------------------------------------------


def test_ingest_program_end_to_end(products, tmp_path):
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    with MastTestServer(products, checksums=True) as srv:  # EXECUTING once per query, as MAST
        env = server_env(srv)
        result = invoke(
            "ingest",
            "1534",
            "--products",
            "fg",
            "--db",
            db_path,
            "--cache",
            cache,
            "--no-fit",
            env=env,
        )
        assert result.exit_code == 0, result.output
        assert "ingested 2" in result.output
        fg = query(db_path, "SELECT file_name, n_frames FROM files WHERE status = 'ingested'")
        assert len(fg) == 2 and all(n == 2000 for _, n in fg)
        assert query(db_path, "SELECT count(*) FROM frames")[0][0] == 4000

        # all products: the two fg files are not fetched again, the six others are
        result = invoke(
            "ingest",
            "1534",
            "--products",
            "all",
            "--db",
            db_path,
            "--cache",
            cache,
            "--no-fit",
            env=env,
        )
        assert result.exit_code == 0, result.output
        assert "2 already in the archive" in result.output
        by_file = srv.stats["by_file"]
        assert len(by_file) == 8 and set(by_file.values()) == {1}

        rows = query(
            db_path,
            "SELECT file_name, program, observation, visit, product, exp_type, state, "
            "local_path, row_json, checksum, file_size, gs_id FROM mast_files ORDER BY file_name",
        )
        assert len(rows) == 8  # MAST lists every row twice: deduplicated on the file name
        for (
            name,
            program,
            obs,
            visit,
            product,
            exp_type,
            state,
            path,
            raw,
            checksum,
            size,
            gs,
        ) in rows:
            assert visit in (1, 2)
            assert (program, obs, state) == (1534, 1, "ingested")
            assert product in ("acq1", "acq2", "track", "fg") and exp_type.startswith("FGS_")
            assert Path(path).is_file() and Path(path).parent == cache / "jw01534"
            assert Path(path).stat().st_size == size and checksum.startswith("sha256:")
            row = json.loads(raw)
            assert row["fileName"] == name and row["gdstarid"] == gs and "apername" in row
        assert query(db_path, "SELECT count(*) FROM files WHERE status = 'ingested'")[0][0] == 8

        # a third run asks MAST again but downloads nothing
        srv.reset_stats()
        result = invoke(
            "ingest",
            "1534",
            "--products",
            "all",
            "--db",
            db_path,
            "--cache",
            cache,
            "--no-fit",
            env=env,
        )
        assert result.exit_code == 0 and "8 already in the archive" in result.output
        assert srv.stats["by_endpoint"].get("download", 0) == 0


def test_ingest_obs_visit_filters(products, tmp_path):
    db_path = tmp_path / "a.duckdb"
    with MastTestServer(products, executing_polls=0) as srv:
        result = invoke(
            "ingest",
            "1534",
            "--obs",
            "1",
            "--visit",
            "2",
            "--products",
            "all",
            "--db",
            db_path,
            "--cache",
            tmp_path / "c",
            "--no-fit",
            env=server_env(srv),
        )
    assert result.exit_code == 0, result.output
    visits = query(db_path, "SELECT DISTINCT visit FROM files")
    assert visits == [(2,)]


def test_unknown_program_warns_and_exits_0(products, tmp_path):
    with MastTestServer(products, executing_polls=0) as srv:
        result = invoke(
            "ingest",
            "4242",
            "--db",
            tmp_path / "a.duckdb",
            "--cache",
            tmp_path / "c",
            "--no-fit",
            env=server_env(srv),
        )
    assert result.exit_code == 0, result.output
    assert "no guide-star data found for program 4242" in result.output
    assert not (tmp_path / "c").exists()


def test_faults_leave_every_file_intact(products, tmp_path):
    """503/429/500/drops/truncations/resets on downloads: every file arrives byte-identical."""
    faults = FaultPlan(
        seed=11,
        schedule={"*": ["503", "drop", "truncate"], "invoke": ["503", "429"]},
        probabilities={"429": 0.15, "drop": 0.2, "truncate": 0.15, "reset": 0.1, "500": 0.1},
        endpoints=frozenset({"download"}),
        retry_after="0",
        partial_fraction=0.4,
    )
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    with MastTestServer(products, faults=faults, checksums=True, executing_polls=0) as srv:
        result = invoke(
            "ingest",
            "1534",
            "2079",
            "--products",
            "all",
            "--db",
            db_path,
            "--cache",
            cache,
            "--no-fit",
            "--workers",
            "3",
            env={**server_env(srv), "FGSARCHIVE_MAST_RETRIES": "8"},
        )
        assert result.exit_code == 0, result.output
        stats = srv.stats
    assert sum(stats["faults"].values()) >= 36  # 3 scheduled per file, plus random ones
    assert stats["range_requests"] > 0  # drops were resumed, not restarted
    want = originals(products)
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cache.rglob("*.fits")}
    assert got == want
    assert not list(cache.rglob("*.part"))
    assert query(db_path, "SELECT count(*) FROM files WHERE status = 'ingested'")[0][0] == 12


def test_unsafe_names_are_rejected_and_reported(products, tmp_path):
    evil = [
        {
            "fileName": "../../evil_cal.fits",
            "program": "01534",
            "observtn": "001",
            "visit": "001",
            "exp_type": "FGS_FINEGUIDE",
            "fileSize": 10,
        },
        {
            "fileName": "/tmp/jw01534001001_gs-fg_2022339000316_cal.fits",
            "program": "01534",
            "observtn": "001",
            "visit": "001",
            "exp_type": "FGS_FINEGUIDE",
        },
        {
            "fileName": "jw01534001001_gs-fg_2022339000316_cal.fits\x00.sh",
            "program": "01534",
            "observtn": "001",
            "visit": "001",
            "exp_type": "FGS_FINEGUIDE",
        },
    ]
    db_path, cache = tmp_path / "db" / "a.duckdb", tmp_path / "cache"
    with MastTestServer(products, extra_rows=evil, executing_polls=0) as srv:
        result = invoke(
            "ingest", "1534", "--db", db_path, "--cache", cache, "--no-fit", env=server_env(srv)
        )
    assert result.exit_code == 0, result.output
    assert "rejected 3 unsafe file name(s)" in result.output
    states = query(db_path, "SELECT state, count(*) FROM mast_files GROUP BY 1 ORDER BY 1")
    assert states == [("ingested", 2), ("unsafe", 3)]
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert not any("evil" in n or n.endswith(".sh") for n in written)
    assert not (tmp_path.parent / "evil_cal.fits").exists()


# --------------------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------------------


def _grep_tree(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_token_refused_is_one_line_exit_4_and_never_written(products, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    with MastTestServer(products, token=TOKEN, exclusive_programs={1534}, executing_polls=0) as srv:
        env = server_env(srv)
        wrong = invoke(
            "-v",
            "ingest",
            "1534",
            "--token",
            WRONG,
            "--db",
            db_path,
            "--cache",
            cache,
            "--no-fit",
            env=env,
        )
        assert wrong.exit_code == 4, wrong.output
        error_lines = [line for line in wrong.output.splitlines() if line.startswith("error:")]
        assert len(error_lines) == 1
        assert "expired" in error_lines[0] and "program 1534" in error_lines[0]
        assert WRONG not in wrong.output

        missing = invoke("ingest", "1534", "--db", db_path, "--cache", cache, "--no-fit", env=env)
        assert missing.exit_code == 4 and "no MAST token" in missing.output
        states = query(db_path, "SELECT DISTINCT state FROM mast_files")
        assert states == [("auth",)]

        # the right token, from the environment, works; program 2079 is public
        srv.reset_stats()
        ok = invoke(
            "-v",
            "ingest",
            "1534",
            "2079",
            "--db",
            db_path,
            "--cache",
            cache,
            "--no-fit",
            env={**env, "MAST_API_TOKEN": TOKEN},
        )
        assert ok.exit_code == 0, ok.output
        assert query(db_path, "SELECT count(*) FROM files WHERE status = 'ingested'")[0][0] == 3
        assert all(e["auth"] == "present" for e in srv.request_log if e["path"] != "/api/")
    helps = [invoke(cmd, "-h", env={"MAST_API_TOKEN": TOKEN}).output for cmd in ("ingest", "crawl")]
    for out in (wrong.output, missing.output, ok.output, *helps):
        assert TOKEN not in out and WRONG not in out
    for secret in (TOKEN, WRONG):
        assert not _grep_tree(tmp_path, secret.encode()), secret
        assert secret not in caplog.text
    with duckdb.connect(str(db_path), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            text = json.dumps(con.execute(f"SELECT * FROM {table}").fetchall(), default=str)
            assert TOKEN not in text and WRONG not in text


# --------------------------------------------------------------------------------------------------
# MAST down
# --------------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mast_down_exit_4_nothing_written(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    db_path = tmp_path / "a.duckdb"
    result = invoke(
        "ingest",
        "1534",
        "--db",
        db_path,
        "--cache",
        tmp_path / "c",
        "--no-fit",
        env={"FGSARCHIVE_MAST_URL": url, "FGSARCHIVE_MAST_RETRIES": "2"},
    )
    assert result.exit_code == 4, result.output
    # nothing listening: not retried as if busy; the host and the variable that chose it are named
    host = url.removeprefix("http://")
    assert f"cannot reach {host} (from FGSARCHIVE_MAST_URL={url})" in result.output
    assert "connection refused (2 attempts)" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert not db_path.exists() and not (tmp_path / "c").exists()

    result = invoke(
        "crawl",
        "--since",
        "2022-12-04",
        "--until",
        "2022-12-06",
        "--db",
        db_path,
        env={"FGSARCHIVE_MAST_URL": url, "FGSARCHIVE_MAST_RETRIES": "1"},
    )
    assert result.exit_code == 4 and not db_path.exists()
    assert f"cannot reach {host}" in result.output


def test_downloads_failing_after_retries_exit_4_and_resume(products, tmp_path):
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    faults = FaultPlan(schedule={"*": ["503"] * 3}, retry_after="0")
    with MastTestServer(products, faults=faults, executing_polls=0) as srv:
        env = {**server_env(srv), "FGSARCHIVE_MAST_RETRIES": "1"}
        result = invoke("ingest", "1534", "--db", db_path, "--cache", cache, "--no-fit", env=env)
        assert result.exit_code == 4, result.output
        assert "MAST unavailable" in result.output and "re-run" in result.output
        assert query(db_path, "SELECT count(*) FROM files")[0][0] == 0
        assert query(db_path, "SELECT DISTINCT state FROM mast_files") == [("failed",)]
        # the server recovers: the same command finishes the job
        result = invoke("ingest", "1534", "--db", db_path, "--cache", cache, "--no-fit", env=env)
        assert result.exit_code == 0, result.output
        assert query(db_path, "SELECT DISTINCT state FROM mast_files") == [("ingested",)]


# --------------------------------------------------------------------------------------------------
# crawl: windows, limit, resume
# --------------------------------------------------------------------------------------------------

# 2022-12-04 .. 2022-12-06T06:00 (MJD 59917.0 .. 59919.25): nine windows of 6 h; 1534 lies in the
# fifth (from MJD 59918.0), 2079 in the ninth (from MJD 59919.0)
# (the acquisition only: tests/test_crawl_chain.py covers the steps after it)
CRAWL = (
    "crawl",
    "--since",
    "2022-12-04",
    "--until",
    "2022-12-06T06:00",
    "--window-days",
    "0.25",
    "--no-fit",
    "--no-telemetry",
    "--no-stars",
    "--no-analyse",
)


def test_crawl_resumes_without_repeating_work(products, tmp_path):
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    with MastTestServer(products, executing_polls=0) as srv:
        env = server_env(srv)
        first = invoke(
            *CRAWL, "--limit", "2", "--products", "all", "--db", db_path, "--cache", cache, env=env
        )
        assert first.exit_code == 0, first.output
        assert "stopped at --limit" in first.output
        assert query(db_path, "SELECT count(*) FROM files")[0][0] == 2
        assert query(db_path, "SELECT count(*) FROM crawl_windows WHERE state = 'listed'") == [(1,)]
        fetched_first = dict(srv.stats["by_file"])
        assert len(fetched_first) == 2

        second = invoke(*CRAWL, "--products", "all", "--db", db_path, "--cache", cache, env=env)
        assert second.exit_code == 0, second.output
        by_file = srv.stats["by_file"]
        assert len(by_file) == 12 and set(by_file.values()) == {1}  # nothing requested twice
        assert query(db_path, "SELECT count(*) FROM files WHERE status = 'ingested'")[0][0] == 12
        windows = query(
            db_path, "SELECT state, count(*), sum(n_files) FROM crawl_windows GROUP BY 1"
        )
        assert windows == [("done", 9, 12)]
        programs = query(db_path, "SELECT program, count(*) FROM mast_files GROUP BY 1 ORDER BY 1")
        assert programs == [(1534, 8), (2079, 4)]

        srv.reset_stats()
        third = invoke(*CRAWL, "--products", "all", "--db", db_path, "--cache", cache, env=env)
        assert third.exit_code == 0, third.output
        assert srv.stats["requests"] == 0  # finished windows are not queried again
        assert "9 done before" in third.output


def test_crawl_interrupted_after_downloads_does_not_download_again(products, tmp_path, monkeypatch):
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    real = crawl_module.ingest_paths

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with MastTestServer(products, executing_polls=0) as srv:
        env = server_env(srv)
        monkeypatch.setattr(crawl_module, "ingest_paths", killed)
        result = invoke(*CRAWL, "--db", db_path, "--cache", cache, env=env)
        assert result.exit_code == 130, result.output
        assert "re-run the same command to resume" in result.output
        downloaded = query(db_path, "SELECT file_name FROM mast_files WHERE state = 'downloaded'")
        assert len(downloaded) == 2  # the first window's fine-guide files

        monkeypatch.setattr(crawl_module, "ingest_paths", real)
        result = invoke(*CRAWL, "--db", db_path, "--cache", cache, env=env)
        assert result.exit_code == 0, result.output
        by_file = srv.stats["by_file"]
        assert set(by_file.values()) == {1} and len(by_file) == 3  # fg files of both programs
        assert query(db_path, "SELECT DISTINCT state FROM mast_files") == [("ingested",)]


def test_crawl_skips_exclusive_files_without_a_token(products, tmp_path):
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    with MastTestServer(products, token=TOKEN, exclusive_programs={1534}, executing_polls=0) as srv:
        result = invoke(*CRAWL, "--db", db_path, "--cache", cache, env=server_env(srv))
        assert result.exit_code == 0, result.output
        assert "exclusive access" in result.output
        by_file = srv.stats["by_file"]
    assert len(by_file) == 1 and all(n.startswith("jw02079") for n in by_file)
    states = query(db_path, "SELECT program, state FROM mast_files ORDER BY 1")
    assert states == [(1534, "auth"), (1534, "auth"), (2079, "ingested")]


def test_python_api_with_injected_client(products, tmp_path):
    db = Database(tmp_path / "a.duckdb")
    with MastTestServer(products, executing_polls=2) as srv:
        with MastClient(fast_config(srv)) as client:
            calls = []
            report = ingest_programs(
                db,
                [2079],
                client=client,
                products="all",
                cache_dir=tmp_path,
                workers=3,
                progress=lambda *a: calls.append(a),
            )
        assert srv.stats["executing"] == 2
        total = sum(p.stat().st_size for p in (tmp_path / "jw02079").iterdir())
        assert ("download", total, total) in calls and ("ingest", 4, 4) in calls
    assert len(report.ingest.ingested) == 4 and report.listed == 4
    assert sorted(report.downloaded) == sorted(report.ingest.ingested)


def test_python_api_mast_down_raises(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    db = Database(tmp_path / "a.duckdb")
    with pytest.raises(MastUnavailableError):
        ingest_programs(
            db, [1534], config=MastConfig(mast_url=url, max_retries=0), cache_dir=tmp_path / "c"
        )
    assert not db.path.exists() and not (tmp_path / "c").exists()


def test_listed_file_missing_on_the_server_exits_1_naming_it(products, tmp_path):
    ghost = {
        "fileName": "jw01534001009_gs-fg_2022339235959_cal.fits",
        "program": "01534",
        "observtn": "001",
        "visit": "009",
        "exp_type": "FGS_FINEGUIDE",
        "fileSize": 1000,
    }
    db_path = tmp_path / "a.duckdb"
    with MastTestServer(products, extra_rows=[ghost], executing_polls=0) as srv:
        result = invoke(
            "ingest",
            "1534",
            "--db",
            db_path,
            "--cache",
            tmp_path / "c",
            "--no-fit",
            env=server_env(srv),
        )
    assert result.exit_code == 1, result.output
    assert ghost["fileName"] in result.output and "404" in result.output
    assert "failed to download or ingest" in result.output  # not "failed to ingest"
    states = query(db_path, "SELECT state, count(*) FROM mast_files GROUP BY 1 ORDER BY 1")
    assert states == [("failed", 1), ("ingested", 2)]
    assert query(db_path, "SELECT count(*) FROM files WHERE status = 'ingested'") == [(2,)]
