"""Incremental ``analyse``: units computed once, archive-wide products from stored results.

Two small programs (A, B): an archive built in steps (A, analyse, B, analyse) must hold what one
built at once holds; nothing new recomputes nothing; a re-ingested file, a new fit version or a
method version recomputes exactly its units; an interrupted run resumes to the clean state; two
runs at once do not both write.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from fgsarchive.analysis import incremental
from fgsarchive.analysis.incremental import run_all_analyses
from fgsarchive.analysis.runner import run_anomalies
from fgsarchive.config import Settings
from fgsarchive.db import Database
from fgsarchive.errors import ArchiveLockedError
from fgsarchive.fit.runner import FIT_VERSION, fit_archive
from fgsarchive.ingest import ingest_directory, ingest_paths
from fgsarchive.simulate import FluxDrop, PeriodicSignal, simulate_program

PROGRAMS = {1534: 21, 2079: 22}  # program: seed


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    root = tmp_path_factory.mktemp("inc_sim")
    return {
        prog: simulate_program(
            root / str(prog),
            program=prog,
            n_observations=1,
            n_visits=3,
            frames_per_file=1500,
            n_guide_stars=3,
            seed=seed,
            injections=[
                FluxDrop(start_s=40, duration_s=8, depth=0.03),
                PeriodicSignal(period_s=20.0, amplitude=0.004, quantity="flux"),
            ],
            include_other_products=False,
        )
        for prog, seed in PROGRAMS.items()
    }


def _copy(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, folder / src.name)
    parts = src.with_name(src.name + ".parts")
    shutil.copytree(parts, folder / parts.name, ignore=shutil.ignore_patterns("*.lock"))
    return folder / src.name


@pytest.fixture(scope="module")
def at_once(sims, tmp_path_factory):
    """Both programs ingested and fitted, then analysed: (fitted-only copy, analysed, results)."""
    root = tmp_path_factory.mktemp("inc_once")
    db = Database(root / "a" / "archive.duckdb")
    for sim in sims.values():
        ingest_directory(db, sim.out_dir, workers=1)
    fit_archive(db, workers=1)
    template = _copy(db.path, root / "template")
    results = run_all_analyses(db)
    return template, db.path, results


@pytest.fixture(scope="module")
def in_steps(sims, tmp_path_factory):
    root = tmp_path_factory.mktemp("inc_steps")
    db = Database(root / "archive.duckdb")
    reports = []
    for sim in sims.values():
        ingest_directory(db, sim.out_dir, workers=1)
        fit_archive(db, workers=1)
        reports.append(run_all_analyses(db).units)
    return db.path, reports


def _tables(path: Path) -> dict[str, pl.DataFrame]:
    """The analysis tables, rounded where floating-point summation order may differ."""
    db = Database(path)
    keys = ["program", "observation", "visit", "gs_id"]
    with db.reader() as con:

        def q(text: str) -> pl.DataFrame:
            return pl.from_arrow(con.sql(text).to_arrow_table())

        return {
            "anomalies": q(
                "SELECT program, observation, visit, gs_id, kind, start_mjd, end_mjd, "
                "round(significance, 6) AS significance, coincident_kinds FROM anomalies "
                "ORDER BY gs_id, start_mjd, kind"
            ),
            "peaks": q(
                "SELECT program, observation, visit, gs_id, parameter, rank, "
                "round(frequency_hz, 9) AS f, round(power, 9) AS power, instrumental, line_id "
                "FROM periodogram_peaks WHERE grouped_by = 'visit' AND rank <= 2 "
                f"ORDER BY {', '.join(keys)}, parameter, rank"
            ),
            "lines": q(
                "SELECT round(frequency_hz, 9) AS f, n_stars FROM instrumental_lines ORDER BY f"
            ),
            "variability": q(
                "SELECT gs_id, rank, round(score, 6) AS score, n_frames, n_visits, programs "
                "FROM variability ORDER BY rank"
            ),
            "units": q(
                f"SELECT {', '.join(keys)}, fingerprint, pending FROM analysis_units "
                f"ORDER BY {', '.join(keys)}"
            ),
        }


def _assert_same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    for name in a:
        assert a[name].equals(b[name]), f"{name} differ:\n{a[name]}\n{b[name]}"


def _n_units(path: Path, program: int | None = None) -> int:
    with Database(path).reader() as con:
        return con.execute(
            "SELECT count(*) FROM analysis_units WHERE ? IS NULL OR program = ?", [program, program]
        ).fetchall()[0][0]


def test_built_in_steps_equals_built_at_once(at_once, in_steps):
    _, once_path, _ = at_once
    steps_path, reports = in_steps
    once, steps = _tables(once_path), _tables(steps_path)
    assert once["anomalies"].height and once["peaks"].height and once["variability"].height >= 4
    # fingerprints hold each archive's own ingest times: compare the units only
    once["units"], steps["units"] = (
        once["units"].drop("fingerprint"),
        steps["units"].drop("fingerprint"),
    )
    _assert_same(once, steps)
    # the second step computed program B's units only
    first, second = reports
    assert second.units_computed == _n_units(steps_path, 2079)
    assert second.units_unchanged == first.units_computed == _n_units(steps_path, 1534)


def test_nothing_new_recomputes_nothing(at_once, tmp_path):
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    before = _tables(path)
    report = run_all_analyses(Database(path)).units
    assert report.units_computed == 0 and report.frames_read == 0
    assert report.units_unchanged == before["units"].height > 0
    assert not report.archive_wide
    _assert_same(before, _tables(path))


def test_reingested_file_recomputes_its_unit(at_once, sims, tmp_path):
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    db = Database(path)
    sim = sims[2079]
    one = sorted(sim.out_dir.rglob("*gs-fg*.fits"))[0]
    ingest_paths(db, [one], workers=1, force=True)
    fit_archive(db, workers=1)
    with db.reader() as con:
        (visit, gs_id), *_ = con.execute(
            "SELECT visit, gs_id FROM files WHERE file_name = ?", [one.name]
        ).fetchall()
    before = _tables(path)["units"]
    report = run_all_analyses(db).units
    assert report.units_computed == 1
    after = _tables(path)["units"]
    changed = after.join(before, on=["program", "observation", "visit", "gs_id"]).filter(
        pl.col("fingerprint") != pl.col("fingerprint_right")
    )
    assert changed.select("program", "visit", "gs_id").rows() == [(2079, visit, gs_id)]


def test_new_fit_version_or_method_version_recomputes(at_once, tmp_path, monkeypatch):
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    db = Database(path)
    fit_archive(db, program=1534, workers=1, fit_version=FIT_VERSION + 1)
    report = run_all_analyses(db).units
    assert report.units_computed == _n_units(path, 1534)
    assert report.units_unchanged == _n_units(path, 2079)
    before = _tables(path)
    monkeypatch.setattr(incremental, "PERIODOGRAM_METHOD_VERSION", 99)
    # (one program's units, to keep the test short: a method version is in every fingerprint)
    assert run_all_analyses(db, program=2079).units.units_computed == _n_units(path, 2079)
    after = _tables(path)  # recomputed: the same answers, new fingerprints
    changed = ~after["units"]["fingerprint"].is_in(before["units"]["fingerprint"].to_list())
    assert after["units"].filter(changed)["program"].to_list() == [2079] * _n_units(path, 2079)
    before["units"], after["units"] = (
        before["units"].drop("fingerprint"),
        after["units"].drop("fingerprint"),
    )
    _assert_same(before, after)


def test_interrupted_run_resumes_to_the_clean_state(at_once, tmp_path, monkeypatch):
    template, once_path, _ = at_once
    path = _copy(template, tmp_path / "copy")
    db = Database(path)
    real = incremental._write_batch
    calls = []

    def fail_after_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("interrupted")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(incremental, "BATCH_UNITS", 1)
    monkeypatch.setattr(incremental, "_write_batch", fail_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_all_analyses(db)
    monkeypatch.setattr(incremental, "_write_batch", real)
    assert _n_units(path) == 1  # the first batch was kept
    report = run_all_analyses(db).units
    assert report.units_computed == report.units_total - 1
    _assert_same(_tables(once_path), _tables(path))


def test_single_analysis_invalidates_its_units(at_once, tmp_path):
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    db = Database(path)
    n = _n_units(path)
    run_anomalies(db, program=2079, min_sigma=7.0)
    assert _n_units(path) == n - _n_units(once_path, 2079)
    report = run_all_analyses(db).units
    assert report.units_computed == _n_units(once_path, 2079)
    _assert_same(_tables(once_path), _tables(path))


def test_second_analyse_at_once_stops_saying_why(at_once, tmp_path):
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    holder = Database(path)
    other = Database(path, settings=Settings(lock_timeout_s=0.3))
    with incremental.analyse_lock(holder):
        with pytest.raises(ArchiveLockedError, match="another `fgsarchive analyse` is running"):
            run_all_analyses(other)
    assert run_all_analyses(other).units.units_computed == 0  # free again


def test_changed_lines_relabel_old_peaks_and_rescore_every_star(at_once, tmp_path):
    """A unit recomputed while the stored lines differ from what all peaks teach: the old units'
    peaks are relabelled and every star rescored from its stored bins (not only the unit's)."""
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    clean = _tables(path)
    assert clean["lines"].height > 0 and clean["peaks"]["instrumental"].any()
    db = Database(path)
    with db.writer() as con:  # as if the lines had been learned before program B's stars came
        con.execute("DELETE FROM instrumental_lines")
        con.execute("UPDATE periodogram_peaks SET instrumental = false, line_id = NULL")
        con.execute("UPDATE variability SET score = 0")
        con.execute("DELETE FROM analysis_units WHERE program = 2079 AND visit = 1")
    report = run_all_analyses(db).units
    assert report.units_computed == 1 and report.lines_changed
    assert report.stars_rescored == clean["variability"].height
    _assert_same(clean, _tables(path))


def test_a_changed_line_the_bins_cannot_see_rescores_only_the_new_units_stars(at_once, tmp_path):
    """Lines above the binned visits' reach (``variability_lines``) change labels, not
    variability: a high-frequency line that goes away relabels peaks, and only the recomputed
    unit's star is rescored; every table still equals the clean run's."""
    from fgsarchive.analysis.variables import LINE_REACH_BINS

    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    clean = _tables(path)
    db = Database(path)
    high = 1.7  # Hz, far above LINE_REACH_BINS / bin_s
    assert high > LINE_REACH_BINS / incremental.AnalyseOptions().bin_s
    with db.writer() as con:
        con.execute(
            "INSERT INTO instrumental_lines (line_id, frequency_hz, period_s, n_stars) "
            "VALUES (99, ?, ?, 5)",
            [high, 1.0 / high],
        )
        con.execute("DELETE FROM analysis_units WHERE program = 2079 AND visit = 1")
        (n_stars_unit,) = con.execute(
            "SELECT count(DISTINCT gs_id) FROM files WHERE program = 2079 AND visit = 1"
        ).fetchone()
    report = run_all_analyses(db).units
    assert report.units_computed >= 1 and report.lines_changed
    assert report.stars_rescored == n_stars_unit < clean["variability"].height
    _assert_same(clean, _tables(path))


def test_new_events_refresh_the_cross_match_without_reading_frames(at_once, tmp_path):
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    db = Database(path)
    with db.reader() as con:
        (program, start, end), *_ = con.execute(
            "SELECT program, start_mjd, end_mjd FROM anomalies ORDER BY start_mjd LIMIT 1"
        ).fetchall()
    with db.writer() as con:  # an event kind the offline derivation does not replace
        con.execute(
            "INSERT INTO events (kind, start_mjd, end_mjd, program) VALUES (?, ?, ?, ?)",
            ["momentum_unload", start, end, program],
        )
    report = run_all_analyses(db).units
    assert report.units_computed == 0 and report.events_refreshed
    assert report.programs_refreshed == 1  # only the program whose events changed
    refreshed = _tables(path)["anomalies"]
    assert refreshed.filter(pl.col("start_mjd") == start)["coincident_kinds"].to_list()[0] == [
        "momentum_unload"
    ]
    run_all_analyses(db, full=True)  # a clean recompute agrees
    assert _tables(path)["anomalies"].equals(refreshed)


def test_events_derived_again_only_when_their_inputs_change(at_once, tmp_path, monkeypatch):
    """Nothing new: the derived events are kept (not re-derived, the same counts); a new EDB
    record changes their inputs and they are derived again."""
    from fgsarchive import telemetry

    _, once_path, results = at_once
    path = _copy(once_path, tmp_path / "copy")
    db = Database(path)
    calls = []
    real = telemetry.derive_events
    monkeypatch.setattr(telemetry, "derive_events", lambda d: calls.append(1) or real(d))
    kept = run_all_analyses(db)
    assert calls == [] and kept.events == results.events
    with db.writer() as con:
        con.execute("INSERT INTO telemetry VALUES ('SA_ZHGAUPST', 59918.5, 1.0, 'MOVING', false)")
    again = run_all_analyses(db)
    assert calls == [1] and again.events.keys() == results.events.keys()
    run_all_analyses(db)
    assert calls == [1]


def test_an_archive_wide_event_refreshes_only_the_programs_it_can_touch(at_once, tmp_path):
    """An event without a program (telemetry) is cross-matched with every program's anomalies
    within the window: one far from every program's files refreshes nothing, one inside a
    program's span refreshes the programs whose files reach it, and the result is what a clean
    run gives."""
    _, once_path, _ = at_once
    path = _copy(once_path, tmp_path / "copy")
    db = Database(path)
    with db.reader() as con:
        spans = con.execute(
            "SELECT program, min(data_start_mjd), max(data_end_mjd) FROM files "
            "WHERE product = 'fg' GROUP BY program ORDER BY program"
        ).fetchall()
        (program, start, end), *_ = con.execute(
            "SELECT program, start_mjd, end_mjd FROM anomalies ORDER BY start_mjd LIMIT 1"
        ).fetchall()
    assert len(spans) == 2
    last_end = max(s[2] for s in spans)
    before = _tables(path)["anomalies"]
    with db.writer() as con:
        con.execute(
            "INSERT INTO events (kind, start_mjd, end_mjd) VALUES (?, ?, ?)",
            ["momentum_unload", last_end + 10.0, last_end + 10.001],
        )
    report = run_all_analyses(db).units
    assert report.programs_refreshed == 0 and not report.events_refreshed
    assert _tables(path)["anomalies"].equals(before)
    with db.writer() as con:
        con.execute(
            "INSERT INTO events (kind, start_mjd, end_mjd) VALUES (?, ?, ?)",
            ["momentum_unload", start, end],
        )
    report = run_all_analyses(db).units
    window_d = 30.0 / 86400.0  # CROSS_MATCH_WINDOW_S
    reach = [p for p, lo, hi in spans if lo - window_d <= end and start <= hi + window_d]
    assert program in reach
    assert report.programs_refreshed == len(reach)
    refreshed = _tables(path)["anomalies"]
    touched = refreshed.filter(pl.col("start_mjd") == start)
    assert touched["program"].to_list()[0] == program
    assert "momentum_unload" in touched["coincident_kinds"].to_list()[0]
    run_all_analyses(db, full=True)  # a clean recompute agrees
    assert _tables(path)["anomalies"].equals(refreshed)
