"""Upgrades: an archive of an older schema version is refused with the command to run, and
``fgsarchive.migrate.migrate`` brings it to this version without losing a row."""

from __future__ import annotations

import shutil
import subprocess
import sys

import duckdb
import pytest

from fgsarchive import migrate as mig
from fgsarchive.archive import Archive
from fgsarchive.db import SCHEMA_VERSION, Database
from fgsarchive.errors import ArchiveError, SchemaVersionError
from fgsarchive.ingest import ingest_paths
from fgsarchive.maintenance import archive_checksums
from fgsarchive.snapshot import ARCHIVE_ID_FILE
from fgsarchive.storage import SCHEMAS


def as_first_round(db: Database, version: int = 1) -> None:
    """Turn an archive into the first-round layout (schema versions 0 and 1): its tables in the
    public file itself, no writer database, no archive id, no persistent views."""
    shutil.copyfile(db.writer_path, db.path)
    db.writer_path.unlink()
    (db.parts.root / ARCHIVE_ID_FILE).unlink()
    with duckdb.connect(str(db.path)) as con:
        con.execute(
            "UPDATE schema_info SET value = $v WHERE key = 'schema_version'", {"v": str(version)}
        )
        assert not con.execute("SELECT * FROM duckdb_views() WHERE NOT internal").fetchall()


@pytest.fixture()
def old_archive(products, tmp_path):
    """An archive as version 0 left it: schema_info says 0 and `files` lacks later columns."""
    db = Database(tmp_path / "a.duckdb")
    ingest_paths(db, sorted(products.rglob("*_gs-fg_*_cal.fits")), workers=1)
    expected = archive_checksums(db, ("files", "frames"))
    as_first_round(db, 0)
    with duckdb.connect(str(db.path)) as con:
        con.execute("ALTER TABLE files DROP COLUMN gsc_version")
        con.execute("ALTER TABLE files DROP COLUMN n_centroids")
        con.execute("DROP TABLE guide_star_catalog")
    return db, expected


def test_an_older_archive_is_refused_with_the_command_to_run(old_archive):
    db, _ = old_archive
    for opening in (db.reader, db.writer):
        with pytest.raises(SchemaVersionError) as info:
            with opening():
                pass
        message = str(info.value)
        assert "schema version 0" in message and f"to {SCHEMA_VERSION}" in message
        assert "fgsarchive migrate" in message and "python -m fgsarchive.migrate" in message
    with duckdb.connect(str(db.path), read_only=True) as con:  # the refused writer changed nothing
        assert con.execute("SELECT value FROM schema_info").fetchall() == [("0",)]
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "guide_star_catalog" not in tables


def test_migrate_upgrades_keeps_every_row_and_is_idempotent(old_archive):
    db, expected = old_archive
    report = mig.migrate(db)
    assert (report.from_version, report.to_version) == (0, SCHEMA_VERSION)
    assert report.steps == ["migrate/0_to_1", "migrate/1_to_2", mig.LAYOUT_STEP]
    with db.reader() as con:
        columns = {r[0] for r in con.execute("DESCRIBE files").fetchall()}
    assert {"gsc_version", "n_centroids"} <= columns
    # the re-added checksum columns are NULL: compare the rest
    assert archive_checksums(db, ("frames",)) == {"frames": expected["frames"]}
    with db.reader() as con:
        assert con.execute("SELECT count(*) FROM files").fetchall()[0][0] == expected["files"][0]
    assert Archive(db.path).programs().height == 1  # the API opens it again
    again = mig.migrate(db)
    assert again.steps == [] and not again.changed


def test_migrate_refuses_newer_and_unknown_versions(old_archive, tmp_path):
    db, _ = old_archive
    with duckdb.connect(str(db.path)) as con:
        con.execute("UPDATE schema_info SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="newer than this fgsarchive"):
        mig.migrate(db)
    with duckdb.connect(str(db.path)) as con:
        con.execute("UPDATE schema_info SET value = '-3' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="no migration from it"):
        mig.migrate(db)
    plain = tmp_path / "plain.duckdb"
    duckdb.connect(str(plain)).close()
    with pytest.raises(SchemaVersionError, match="not an fgsarchive archive"):
        mig.migrate(Database(plain))
    with pytest.raises(ArchiveError, match="no archive"):
        mig.migrate(Database(tmp_path / "missing.duckdb"))


def test_a_failing_step_leaves_the_archive_as_it_was(old_archive, monkeypatch):
    db, _ = old_archive
    monkeypatch.setattr(
        mig,
        "_statements",
        lambda name: ["ALTER TABLE files ADD COLUMN x INTEGER", "SELECT * FROM no_such_table"],
    )
    with pytest.raises(duckdb.Error):
        mig.migrate(db)
    with duckdb.connect(str(db.path), read_only=True) as con:
        assert con.execute("SELECT value FROM schema_info").fetchall() == [("0",)]
        columns = {r[0] for r in con.execute("DESCRIBE files").fetchall()}
    assert "x" not in columns


def test_every_version_has_a_step():
    mig.check_steps()


def test_part_schemas_of_older_archives_are_recorded(products, tmp_path):
    """Archives written before part schemas were recorded: views union by name (slow) until
    migrate records them."""
    db = Database(tmp_path / "a.duckdb")
    ingest_paths(db, sorted(products.rglob("*_gs-fg_*_cal.fits"))[:3], workers=1)
    for folder in db.parts.root.glob(f"*/{SCHEMAS}"):  # as an older fgsarchive left it
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    assert not db.parts.uniform_schema("frames")
    before = archive_checksums(db, ("frames", "pointing"))
    report = mig.migrate(db)
    assert report.steps == [] and report.part_schemas == {
        "centroids": 1,
        "frames": 1,
        "pointing": 1,
    }
    assert db.parts.uniform_schema("frames")
    assert archive_checksums(db, ("frames", "pointing")) == before


def test_migrate_as_a_module(old_archive):
    db, _ = old_archive
    out = subprocess.run(
        [sys.executable, "-m", "fgsarchive.migrate", str(db.path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"schema version 0 -> {SCHEMA_VERSION}" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "fgsarchive.migrate", str(db.path)], capture_output=True, text=True
    )
    assert out.returncode == 0 and "up to date" in out.stdout


def test_a_first_round_archive_migrates_with_nothing_lost(products, tmp_path):
    """Schema 1, the first round's layout: tables in the public file and TEMP views only. After
    migrate every table and Parquet dataset is intact and plain DuckDB sees the views."""
    from fgsarchive.fit.runner import fit_archive

    db = Database(tmp_path / "a.duckdb")
    ingest_paths(db, sorted(products.rglob("*_gs-fg_*_cal.fits"))[:3], workers=1)
    fit_archive(db, workers=1)
    relations = ("files", "frames", "pointing", "centroids", "fits", "quickfits", "photometry")
    expected = archive_checksums(db, relations)
    as_first_round(db, 1)
    with duckdb.connect(str(db.path), read_only=True) as con:  # what users met in round 1
        with pytest.raises(duckdb.CatalogException):
            con.execute("SELECT count(*) FROM frames")
    with pytest.raises(SchemaVersionError, match="schema version 1; upgrade it to"):
        archive_checksums(db, relations)
    report = mig.migrate(db)
    assert (
        report.steps == ["migrate/1_to_2", mig.LAYOUT_STEP] and report.to_version == SCHEMA_VERSION
    )
    assert archive_checksums(db, relations) == expected
    with duckdb.connect(str(db.path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM frames").fetchall() == [(expected["frames"][0],)]
        assert con.execute("SELECT count(*) FROM programs").fetchall() == [(1,)]
    assert mig.migrate(db).steps == []
