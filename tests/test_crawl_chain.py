"""`fgsarchive crawl` / `ingest` bring new files through the whole chain (fgsarchive.pipeline).

Against the loopback MAST server (MAST, EDB and GSC on 127.0.0.1) fed from the simulator: after one
crawl the archive has fits, telemetry, events, catalog rows and the analyses' tables; a second crawl
with nothing new fits nothing and asks the EDB and the GSC nothing; the opt-outs skip their steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fgsarchive.db import Database
from fgsarchive.errors import ExitCode
from fgsarchive.pipeline import ALL_STEPS, FromFolders, update_archive
from fgsarchive.simulate import FluxDrop, HgaMove, simulate_program
from fgsarchive.telemetry import DEFAULT_MNEMONICS
from fgsarchive.testing.mast_server import MastTestServer
from fgsarchive.testing.serve import products_span, simulated_catalog, simulated_edb

runner = CliRunner()
ENV = {
    "FGSARCHIVE_MAST_BACKOFF": "0.01",
    "FGSARCHIVE_MAST_POLL": "0.01",
    "FGSARCHIVE_MAST_RETRIES": "2",
    "MAST_API_TOKEN": None,
    "FGSARCHIVE_CACHE": None,
}
# 2022-12-04 .. 2022-12-05: the simulated program starts at MJD 59918.0 (2022-12-05)
CRAWL = ("crawl", "--since", "2022-12-04", "--until", "2022-12-06", "--window-days", "1")


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain") / "products"
    sim = simulate_program(
        root,
        program=1534,
        n_observations=1,
        n_visits=2,
        frames_per_file=3000,
        n_guide_stars=2,
        include_other_products=False,
        seed=5,
        injections=[
            FluxDrop(start_s=150.0, duration_s=15.0, depth=0.08, observation=1, visit=1),
            HgaMove(start_s=60.0, duration_s=60.0, observation=1, visit=2),
        ],
    )
    return sim


def _server(sim) -> MastTestServer:
    span = products_span(sim.out_dir)
    edb = simulated_edb(sim.telemetry, *span)
    for name in DEFAULT_MNEMONICS:  # the others exist on the real EDB: empty here
        edb.setdefault(name, ([], []))
    return MastTestServer(
        products_dir=sim.out_dir, telemetry=edb, catalog=simulated_catalog(sim.stars)
    )


def invoke(*args, env):
    """The CLI in this process; one worker: the fit runs here (no pool to start per command)."""
    from fgsarchive.cli import app

    return runner.invoke(app, [*map(str, args), "--workers", "1"], env={**ENV, **env})


def count(db_path: Path, table: str) -> int:
    with Database(db_path).reader() as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def test_crawl_brings_new_files_through_every_step_then_does_nothing_again(program, tmp_path):
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    with _server(program) as srv:
        env = {"FGSARCHIVE_MAST_URL": srv.url, "FGSARCHIVE_GSC_URL": srv.url}
        first = invoke(*CRAWL, "--db", db_path, "--cache", cache, env=env)
        assert first.exit_code == 0, first.output
        assert count(db_path, "files") == 2
        assert count(db_path, "fits") == 6000
        assert count(db_path, "telemetry_windows") > 0 and count(db_path, "telemetry") > 0
        with Database(db_path).reader() as con:
            kinds = dict(con.execute("SELECT kind, count(*) FROM events GROUP BY 1").fetchall())
            catalog = con.execute(
                "SELECT gs_id, status FROM guide_star_catalog ORDER BY 1"
            ).fetchall()
            drop = con.execute(
                "SELECT count(*) FROM anomalies WHERE kind LIKE 'flux%' AND visit = 1"
            ).fetchall()[0][0]
        assert kinds.get("hga_move", 0) >= 1  # from the EDB's SA_ZHGAUPST
        assert len(catalog) == 2 and {s for _, s in catalog} == {"found"}  # the loopback GSC
        assert drop >= 1  # the injected flux drop
        assert count(db_path, "periodogram_peaks") > 0
        assert count(db_path, "variability") == 2
        for step in ("fit:", "telemetry:", "events:", "stars:", "analyse:", "steps:"):
            assert step in first.output, first.output

        # nothing new: no fit work, no EDB or GSC request, no download; the analyses run again
        srv.reset_stats()
        second = invoke(*CRAWL, "--db", db_path, "--cache", cache, env=env)
        assert second.exit_code == 0, second.output
        assert "fit: fitted 0 frames in 0 file(s)" in second.output, second.output
        assert "2 file(s) already fitted" in second.output
        assert srv.stats["requests"] == 0, srv.stats  # windows done, telemetry and stars cached
        assert count(db_path, "fits") == 6000
        assert count(db_path, "guide_star_catalog") == 2


def test_opt_outs_skip_their_steps(program, tmp_path):
    db_path, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    with _server(program) as srv:
        env = {"FGSARCHIVE_MAST_URL": srv.url, "FGSARCHIVE_GSC_URL": srv.url}
        result = invoke(
            "ingest",
            "1534",
            "--no-fit",
            "--no-telemetry",
            "--no-stars",
            "--no-analyse",
            "--db",
            db_path,
            "--cache",
            cache,
            env=env,
        )
        assert result.exit_code == 0, result.output
        endpoints = srv.stats["by_endpoint"]
    assert "edb" not in endpoints and "gsc" not in endpoints, endpoints
    assert count(db_path, "files") == 2
    with Database(db_path).reader() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert not (db_path.parent / "a.duckdb.parts" / "fits").exists()
    assert count(db_path, "telemetry_windows") == 0 and count(db_path, "guide_star_catalog") == 0
    assert not tables & {"anomalies", "periodogram_peaks", "variability"} or (
        count(db_path, "anomalies") == 0 and count(db_path, "variability") == 0
    )
    for step in ("fit", "telemetry", "stars", "analyse"):
        assert f"{step}: skipped (not asked for)" in result.output, result.output
    assert "events:" in result.output and "events: skipped" not in result.output


def test_ingest_from_is_offline_by_default_and_fits_and_analyses(program, tmp_path):
    """`ingest --from` needs no network: telemetry and stars are off unless asked for."""
    db_path = tmp_path / "a.duckdb"
    result = invoke("ingest", "--from", program.out_dir, "--db", db_path, env={})
    assert result.exit_code == 0, result.output
    assert "telemetry: skipped" in result.output and "stars: skipped" in result.output
    assert count(db_path, "fits") == 6000 and count(db_path, "variability") == 2


def test_a_failed_remote_step_keeps_the_rest_and_names_the_command(program, tmp_path):
    """EDB refused (no token): one warning naming `fgsarchive telemetry`, everything else done,
    exit 4 (README: the EDB refused)."""
    db_path = tmp_path / "a.duckdb"
    with _server(program) as srv:
        srv.token = "tok-needed-for-the-edb"  # refuses the EDB to a client without a token
        env = {"FGSARCHIVE_MAST_URL": srv.url, "FGSARCHIVE_GSC_URL": srv.url}
        result = invoke(
            "ingest", "--from", program.out_dir, "--telemetry", "--db", db_path, env=env
        )
    assert result.exit_code == ExitCode.REMOTE, result.output
    assert "run `fgsarchive telemetry`" in result.output
    assert count(db_path, "fits") == 6000 and count(db_path, "variability") == 2
    assert count(db_path, "telemetry_windows") == 0


def test_update_archive_reports_every_step_with_counts_and_seconds(program, tmp_path):
    db = Database(tmp_path / "a.duckdb")
    seen: list[str] = []
    report = update_archive(
        db, FromFolders([program.out_dir]), workers=1, on_step=lambda s: seen.append(s.step)
    )
    assert seen == ["ingest", *ALL_STEPS]
    assert report.steps["ingest"].counts["ingested"] == 2
    assert report.steps["fit"].counts["frames"] == 6000
    assert report.steps["telemetry"].skipped and report.steps["stars"].skipped  # offline
    assert report.steps["analyse"].counts["variable_stars"] == 2
    assert all(s.seconds > 0 for s in report.steps.values() if s.skipped is None)
    again = update_archive(db, FromFolders([program.out_dir]), steps=["fit"], workers=1)
    assert again.steps["ingest"].counts["unchanged"] == 2
    assert again.steps["fit"].counts["frames"] == 0
