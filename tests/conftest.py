"""Shared fixtures: simulated guider programs (session-scoped, read-only) and fresh archives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
