"""Shared fixtures: simulated guider programs (session-scoped, read-only) and fresh archives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import people_archive

from fgsarchive.db import Database
from fgsarchive.simulate import simulate_program


@pytest.fixture(scope="session")
def small_program(tmp_path_factory) -> object:
    """Program 1534: 2 observations x 2 visits, 2 guide stars, 3000 frames per file, segments."""
    out = tmp_path_factory.mktemp("sim") / "products"
    return simulate_program(
        out,
        program=1534,
        n_observations=2,
        n_visits=2,
        frames_per_file=3000,
        segment_frames=2000,
        n_guide_stars=2,
        seed=7,
    )


@pytest.fixture()
def products(small_program, tmp_path) -> Path:
    """A private copy of the small program's guider files (tests may add bad files to it)."""
    target = tmp_path / "products"
    shutil.copytree(small_program.files[0].parent, target)
    return target


@pytest.fixture()
def db(tmp_path) -> Database:
    return Database(tmp_path / "archive.duckdb")


@pytest.fixture(scope="session")
def analysed_archive(tmp_path_factory) -> Path:
    """ONE small archive through every stage, as a new user's would be after ``fgsarchive demo``.

    Program 1534 (2 observations x 2 visits, 2 guide stars, 1500 frames = 96 s per visit) with an
    HGA move, a filter-wheel move, a flux drop and a 20-s flux oscillation; served by the
    MAST-compatible loopback server and run through the real path (discover, download, ingest,
    telemetry, events, catalog), fitted, and analysed (anomalies, periodograms, variables).
    Read-only for the tests (each opens its own ``Archive(path)``); returns the DuckDB path.
    """
    from fgsarchive.analysis.incremental import run_all_analyses
    from fgsarchive.fit.runner import fit_archive
    from fgsarchive.testing.serve import serve_and_ingest

    tmp = tmp_path_factory.mktemp("analysed")
    sim = people_archive.shared_program(tmp_path_factory)  # the people tests' program
    path = tmp / "archive.duckdb"
    db = Database(path)
    serve_and_ingest(db, sim, cache_dir=tmp / "cache", workers=1)
    fit_archive(db, workers=1)
    run_all_analyses(db)
    return path
