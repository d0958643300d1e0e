"""EDB telemetry, derived events and the guide-star catalog against the loopback server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fgsarchive.cli import app
from fgsarchive.crawl import ingest_programs
from fgsarchive.db import Database
from fgsarchive.guidestars import lookup_stars
from fgsarchive.mast import MastClient, MastConfig
from fgsarchive.simulate import FilterWheelMove, HgaMove, simulate_program
from fgsarchive.telemetry import (
    DERIVED_KINDS,
    derive_events,
    fetch_telemetry,
    plan_telemetry_fetches,
)
from fgsarchive.testing.mast_server import MastTestServer
from fgsarchive.testing.serve import serve_and_ingest, simulated_catalog, simulated_edb

runner = CliRunner()
TOKEN = "edb-tok-5521-secret"
ENV = {
    "FGSARCHIVE_MAST_BACKOFF": "0.01",
    "FGSARCHIVE_MAST_POLL": "0.01",
    "FGSARCHIVE_MAST_RETRIES": "3",
    "MAST_API_TOKEN": None,
}
DAY_S = 86400.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("tel") / "products"
    return simulate_program(
        out,
        program=1534,
        n_observations=1,
        n_visits=2,
        frames_per_file=2000,
        include_other_products=True,
        seed=5,
        injections=[
            HgaMove(start_s=30.0, duration_s=20.0, visit=1),
            HgaMove(start_s=80.0, duration_s=30.0, visit=2),
            FilterWheelMove(start_s=40.0, duration_s=6.0, visit=2, current=0.35),
        ],
    )


@pytest.fixture(scope="module")
def edb(sim):
    return simulated_edb(sim.telemetry, sim.start_mjd, sim.end_mjd)


@pytest.fixture(scope="module")
def ingested(sim, tmp_path_factory) -> Path:
    """An archive with program 1534 ingested from the server (all products); tests copy it."""
    root = tmp_path_factory.mktemp("archive")
    db = Database(root / "a.duckdb")
    with MastTestServer(sim.out_dir, executing_polls=0) as srv:
        config = MastConfig(mast_url=srv.url, gsc_url=srv.url, backoff_s=0.01)
        report = ingest_programs(
            db, [1534], config=config, products="all", cache_dir=root / "cache"
        )
    assert len(report.ingest.ingested) == 8
    return db.path


@pytest.fixture()
def archive(ingested, tmp_path) -> Path:
    target = tmp_path / "a.duckdb"
    shutil.copy(ingested, target)
    shutil.copytree(ingested.with_name("a.duckdb.parts"), tmp_path / "a.duckdb.parts")
    return target


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env={**ENV, **(env or {})})


def query(db_path: Path, sql: str):
    with Database(db_path).reader() as con:
        return con.execute(sql).fetchall()


def truth_spans(sim, kind: str) -> list[tuple[float, float]]:
    rows = sim.telemetry.filter(sim.telemetry["kind"] == kind).sort("start_mjd")
    return list(zip(rows["start_mjd"].to_list(), rows["end_mjd"].to_list(), strict=True))


def events(db_path: Path, kind: str):
    return query(
        db_path,
        f"SELECT start_mjd, end_mjd, program, file_name, detail FROM events "
        f"WHERE kind = '{kind}' ORDER BY start_mjd",
    )


def assert_spans_match(found, truth, tol_s: float) -> None:
    assert len(found) == len(truth), (found, truth)
    for (s, e, *_), (ts, te) in zip(found, truth, strict=True):
        assert abs(s - ts) * DAY_S <= tol_s and abs(e - te) * DAY_S <= tol_s, (s, e, ts, te)


# --------------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------------


def test_plan_telemetry_fetches_bounded_and_subtracts_covered():
    hour = 1 / 24
    needed = [(0.0, 2.5 * hour), (2.4 * hour, 3 * hour), (10 * hour, 10.5 * hour)]
    windows = plan_telemetry_fetches(needed)
    assert all((e - s) * 24 <= 1 + 1e-9 for s, e in windows)
    assert windows[0][0] == 0.0 and windows[2][1] == pytest.approx(3 * hour)
    assert len(windows) == 4
    assert plan_telemetry_fetches(needed, covered=windows) == []
    rest = plan_telemetry_fetches([(0.0, 4 * hour)], covered=[(0.0, 3 * hour)])
    assert rest == [(pytest.approx(3 * hour), pytest.approx(4 * hour))]


# --------------------------------------------------------------------------------------------------
# telemetry and events
# --------------------------------------------------------------------------------------------------


def test_telemetry_events_match_truth_and_windows_are_not_refetched(sim, edb, archive):
    with MastTestServer(sim.out_dir, telemetry=edb, executing_polls=0) as srv:
        env = {"FGSARCHIVE_MAST_URL": srv.url}
        result = invoke("telemetry", "--db", archive, env=env)
        assert result.exit_code == 0, result.output
        for unknown in ("SA_ZFGGSPOSX", "SA_ZFGGSPOSY", "SA_ZFGDETID"):  # not in this EDB
            assert f"EDB mnemonic {unknown} skipped" in result.output
        first = srv.stats["by_endpoint"]["edb"]
        known_uris = [
            e["uri"]
            for e in srv.request_log
            if e["uri"] and e["uri"].startswith(("mast:jwstedb/SA_ZHGAUPST", "mast:jwstedb/INIS"))
        ]
        assert len(known_uris) == len(set(known_uris)) >= 4  # two spans x two mnemonics

        assert_spans_match(events(archive, "hga_move"), truth_spans(sim, "hga_move"), 2.0)
        assert_spans_match(
            events(archive, "filter_wheel_move"), truth_spans(sim, "filter_wheel_move"), 2.0
        )
        assert_spans_match(
            events(archive, "hga_motion_pointing"), truth_spans(sim, "hga_move"), 3.0
        )
        for _s, _e, program, file_name, detail in events(archive, "hga_move"):
            assert program == 1534 and "_gs-fg_" in file_name
            assert json.loads(detail)["source"] == "SA_ZHGAUPST"
        boundary = events(archive, "file_boundary")
        change = events(archive, "guide_star_change")
        assert len(boundary) == 1 and len(change) == 1
        detail = json.loads(change[0][4])
        assert detail["from_gs_id"] != detail["to_gs_id"]
        assert change[0][3] == boundary[0][3] and detail["previous_file"] != change[0][3]
        windows = query(archive, "SELECT max(end_mjd - start_mjd) * 86400 FROM telemetry_windows")
        assert windows[0][0] <= 3600.0 + 1e-6
        n_rows = query(archive, "SELECT count(*) FROM telemetry")[0][0]
        n_events = query(archive, "SELECT count(*) FROM events")[0][0]

        srv.reset_stats()
        again = invoke("telemetry", "SA_ZHGAUPST", "INIS_FWMTRCURR", "--db", archive, env=env)
        assert again.exit_code == 0, again.output
        assert srv.stats["by_endpoint"].get("edb", 0) == 0  # every window came from the archive
        assert query(archive, "SELECT count(*) FROM telemetry")[0][0] == n_rows
        assert query(archive, "SELECT count(*) FROM events")[0][0] == n_events  # replaced
    assert first >= 4
    # one record per (mnemonic, time): bracket records of neighbouring windows are not doubled
    dupes = query(
        archive,
        "SELECT count(*) FROM (SELECT 1 FROM telemetry GROUP BY mnemonic, time_mjd "
        "HAVING count(*) > 1)",
    )
    assert dupes == [(0,)]


def test_small_windows_then_large_ones_fetch_nothing_twice(sim, edb, archive):
    db = Database(archive)
    with MastTestServer(sim.out_dir, telemetry=edb, executing_polls=0) as srv:
        config = MastConfig(mast_url=srv.url, gsc_url=srv.url, backoff_s=0.01)
        with MastClient(config) as client:
            small = fetch_telemetry(db, client, ["SA_ZHGAUPST"], window_s=30.0)
            assert small.fetched_windows > 8
            assert srv.stats["by_endpoint"]["edb"] == small.fetched_windows
            srv.reset_stats()
            large = fetch_telemetry(db, client, ["SA_ZHGAUPST"], window_s=3600.0)
            assert large.fetched_windows == 0 and srv.stats["requests"] == 0
            # one program only: its spans are covered too
            assert fetch_telemetry(db, client, ["SA_ZHGAUPST"], program=1534).fetched_windows == 0
    counts = derive_events(db)
    assert counts["hga_move"] == 2


def test_derive_events_offline_and_rerunnable(archive):
    db = Database(archive)
    first = derive_events(db)  # no telemetry, no network: files and pointing only
    assert first == {
        "hga_move": 0,
        "filter_wheel_move": 0,
        "file_boundary": 1,
        "guide_star_change": 1,
        "hga_motion_pointing": 2,
    }
    assert derive_events(db) == first
    assert query(archive, "SELECT count(*) FROM events")[0][0] == sum(first.values())
    assert set(first) == set(DERIVED_KINDS)
    result = invoke("events", "--db", archive)
    assert result.exit_code == 0 and "file_boundary 1" in result.output


def test_unknown_mnemonic_warns_and_others_continue(sim, edb, archive):
    with MastTestServer(sim.out_dir, telemetry=edb, executing_polls=0, edb_unknown="text") as srv:
        result = invoke(
            "telemetry",
            "SA_NOSUCHTHING",
            "sa_zhgaupst",
            "--db",
            archive,
            env={"FGSARCHIVE_MAST_URL": srv.url},
        )
    assert result.exit_code == 0, result.output
    assert "EDB mnemonic SA_NOSUCHTHING skipped" in result.output
    assert query(archive, "SELECT DISTINCT mnemonic FROM telemetry") == [("SA_ZHGAUPST",)]
    assert query(archive, "SELECT count(*) FROM events WHERE kind = 'hga_move'") == [(2,)]


def test_telemetry_refused_token_exit_4_events_still_derived(sim, edb, archive):
    with MastTestServer(sim.out_dir, telemetry=edb, token=TOKEN, executing_polls=0) as srv:
        result = invoke(
            "telemetry",
            "--token",
            "not-the-right-one-77",
            "--db",
            archive,
            env={"FGSARCHIVE_MAST_URL": srv.url},
        )
    assert result.exit_code == 4, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "expired, invalid or lacks rights" in errors[0]
    assert "not-the-right-one-77" not in result.output
    assert query(archive, "SELECT count(*) FROM events WHERE kind = 'file_boundary'") == [(1,)]
    assert query(archive, "SELECT count(*) FROM telemetry_windows") == [(0,)]


# --------------------------------------------------------------------------------------------------
# guide-star catalog
# --------------------------------------------------------------------------------------------------


def test_stars_fill_the_catalog_once(sim, archive):
    catalog = simulated_catalog(sim.stars)
    with MastTestServer(catalog=catalog) as srv:
        env = {"FGSARCHIVE_MAST_URL": srv.url, "FGSARCHIVE_GSC_URL": srv.url}
        result = invoke("stars", "--db", archive, env=env)
        assert result.exit_code == 0, result.output
        assert "2 found" in result.output
        assert {e["catalog"] for e in srv.request_log} == {"GSC243"}
        srv.reset_stats()
        assert invoke("stars", "--db", archive, env=env).exit_code == 0
        assert srv.stats["requests"] == 0  # cached in guide_star_catalog
    rows = query(archive, "SELECT gs_id, catalog_status, gaia_dr3_id, j_mag FROM guide_stars")
    truth = {r["gs_id"]: r for r in sim.stars.to_dicts()}
    assert len(rows) == 2
    for gs_id, status, gaia, j_mag in rows:
        assert status == "found" and gaia == str(truth[gs_id]["gaia_id"])
        assert j_mag == pytest.approx(truth[gs_id]["j_mag"])


def test_star_unknown_to_catalog_is_not_found(sim, archive):
    catalog = simulated_catalog(sim.stars)[:1]
    db = Database(archive)
    with MastTestServer(catalog=catalog) as srv:
        with MastClient(MastConfig(mast_url=srv.url, gsc_url=srv.url)) as client:
            report = lookup_stars(db, client)
        assert srv.stats["by_endpoint"]["gsc"] == 3  # id, id, then the cone fallback
    assert report.counts == {"found": 1, "not_found": 1, "error": 0}
    rows = query(archive, "SELECT catalog_status, ra IS NOT NULL FROM guide_stars ORDER BY 1")
    assert rows == [("found", True), ("not_found", True)]  # header values kept


@pytest.mark.parametrize("reply", ["error", "html"])
def test_catalog_error_reply_warns_and_is_retried(sim, archive, reply):
    with MastTestServer(catalog=simulated_catalog(sim.stars), gsc_reply=reply) as srv:
        result = invoke(
            "stars",
            "--db",
            archive,
            env={"FGSARCHIVE_GSC_URL": srv.url, "FGSARCHIVE_MAST_URL": srv.url},
        )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "catalog look-up failed" in warnings[0]
    assert query(archive, "SELECT DISTINCT status FROM guide_star_catalog") == [("error",)]
    with MastTestServer(catalog=simulated_catalog(sim.stars)) as srv:
        result = invoke(
            "stars",
            "--db",
            archive,
            env={"FGSARCHIVE_GSC_URL": srv.url, "FGSARCHIVE_MAST_URL": srv.url},
        )
    assert result.exit_code == 0 and "2 found" in result.output
    assert query(archive, "SELECT status, count(*) FROM guide_star_catalog GROUP BY 1") == [
        ("found", 2)
    ]


# --------------------------------------------------------------------------------------------------
# demo hook
# --------------------------------------------------------------------------------------------------


def test_serve_and_ingest_runs_the_whole_real_path(sim, tmp_path):
    db = Database(tmp_path / "demo.duckdb")
    report = serve_and_ingest(
        db,
        sim.out_dir,
        program=1534,
        telemetry=sim.telemetry,
        catalog=sim.stars,
        cache_dir=tmp_path / "cache",
    )
    assert len(report.ingested) == 8 and not report.failed
    assert report.n_frames == 4000 and report.downloaded == 8 and report.listed == 8
    assert report.events["hga_move"] == 2 and report.events["filter_wheel_move"] == 1
    assert report.stars == {"found": 2, "not_found": 0, "error": 0}
    assert report.telemetry_rows > 0 and report.server_stats["by_endpoint"]["download"] == 8
    assert_spans_match(events(db.path, "hga_move"), truth_spans(sim, "hga_move"), 2.0)
    again = serve_and_ingest(db, sim, cache_dir=tmp_path / "cache")  # the demo's call
    assert not again.ingested and again.server_stats["by_endpoint"].get("download", 0) == 0
    assert again.telemetry_windows == 0 and again.events == report.events
