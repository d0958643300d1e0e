"""Published snapshots (fgsarchive/snapshot.py): plain DuckDB clients see every documented
relation from any working directory; a reader held open never stalls a writer; readers see whole
files only; moved and copied archives; bad input (killed publish, missing parts, newer schema)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from fgsarchive.analysis.incremental import run_all_analyses
from fgsarchive.archive import Archive
from fgsarchive.config import Settings
from fgsarchive.db import SCHEMA_VERSION, Database
from fgsarchive.errors import ArchiveError, SchemaVersionError
from fgsarchive.fit.runner import fit_archive
from fgsarchive.ingest import ingest_paths
from fgsarchive.snapshot import read_archive_id

# Relations the README documents that an ingested and fitted archive has.
RELATIONS = (
    "files",
    "frames",
    "pointing",
    "centroids",
    "programs",
    "guide_stars",
    "guide_star_catalog",
    "fits",
    "quickfits",
    "photometry",
    "visit_summary",
    "mast_files",
    "crawl_windows",
    "telemetry",
    "telemetry_windows",
    "events",
    "periodogram_peaks",
    "instrumental_lines",
    "anomalies",
    "variability",
    "anomalies_with_telemetry",
    "crawl_progress",
)
# frames agree with files: every ingested file's frames are there, and no other frames
CONSISTENT = """
SELECT (SELECT count(*) FROM frames) AS frames,
       (SELECT coalesce(sum(n_frames), 0) FROM files WHERE status = 'ingested'
            AND file_name IN (SELECT DISTINCT file_name FROM frames)) AS promised,
       (SELECT count(*) FROM files WHERE status = 'ingested' AND n_frames > 0) AS files
"""
PLAIN_CLIENT = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for name in sys.argv[2:]:
    out[name] = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
print(json.dumps(out))
"""


def _fg_files(products: Path) -> list[Path]:
    return sorted(products.rglob("*_gs-fg_*_cal.fits"))


@pytest.fixture()
def fitted(products, tmp_path) -> Database:
    db = Database(tmp_path / "arc" / "a.duckdb")
    ingest_paths(db, _fg_files(products)[:3], workers=1)
    fit_archive(db, workers=1)
    return db


@pytest.fixture()
def analysed(fitted) -> Database:
    run_all_analyses(fitted)
    return fitted


def _plain_counts(path: Path, relations, cwd: Path) -> dict[str, int]:
    """Row counts from a plain DuckDB client in another process and working directory (no
    fgsarchive imported)."""
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_CLIENT, str(path), *relations],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1])
    import json

    return json.loads(out.stdout)


def test_plain_duckdb_sees_every_documented_relation_from_anywhere(analysed, tmp_path):
    fitted = analysed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with fitted.reader() as con:
        present = {r[0] for r in fitted.run(con, "core/list_relations").fetchall()}
        assert set(RELATIONS) <= present, set(RELATIONS) - present
        own = {name: fitted.count_rows(con, name) for name in sorted(present)}
    plain = _plain_counts(fitted.path, sorted(present), elsewhere)
    assert plain == own
    assert plain["frames"] > 0 and plain["fits"] == plain["frames"] and plain["programs"] == 1
    # the relative path from the archive's folder works as well
    assert _plain_counts(Path("a.duckdb"), ["frames"], fitted.path.parent) == {
        "frames": plain["frames"]
    }
    with duckdb.connect(str(fitted.path), read_only=True) as con:
        frames, promised, _ = con.execute(CONSISTENT).fetchall()[0]
        info = dict(con.execute("SELECT key, value FROM archive_info").fetchall())
    assert frames == promised
    assert info["schema_version"] == str(SCHEMA_VERSION)
    assert info["archive_id"] == read_archive_id(fitted.parts.root)


def test_a_held_reader_never_stalls_a_writer(products, tmp_path):
    """A plain read-only connection held open in another process for the whole ingest: the
    ingest does not wait (lock timeout 2 s) and the held reader keeps its consistent state."""
    paths = _fg_files(products)
    db = Database(tmp_path / "a.duckdb", settings=Settings(lock_timeout_s=2))
    ingest_paths(db, paths[:1], workers=1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('SELECT count(*) FROM frames').fetchall()[0][0], flush=True); "
            "sys.stdin.readline(); "
            "print(c.execute('SELECT count(*) FROM frames').fetchall()[0][0], flush=True)",
            str(db.path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = int(holder.stdout.readline())
        report = ingest_paths(db, paths[1:4], workers=1)
        fit_archive(db, workers=1)
        holder.stdin.write("\n")
        holder.stdin.flush()
        still = int(holder.stdout.readline())
    finally:
        holder.kill()
        holder.communicate()
    assert len(report.ingested) == 3
    assert still == before  # the held reader kept the snapshot it opened
    with db.reader() as con:
        frames, promised, files = con.execute(CONSISTENT).fetchall()[0]
    assert frames == promised > before and files == 4


def test_readers_opening_while_ingest_writes_see_whole_files(products, tmp_path):
    db_path = tmp_path / "a.duckdb"
    seen: list[tuple[int, int, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if db_path.exists():
                try:
                    with duckdb.connect(str(db_path), read_only=True) as con:
                        # views of the Parquet datasets exist from the first ingested file on
                        if con.execute("SELECT count(*) FROM files").fetchall()[0][0]:
                            seen.append(con.execute(CONSISTENT).fetchall()[0])
                except duckdb.Error as exc:
                    failures.append(str(exc).splitlines()[0])
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for path in _fg_files(products):  # a commit and a snapshot per file
            ingest_paths(Database(db_path), [path], workers=1)
        time.sleep(0.2)
    finally:
        stop.set()
        poller.join(timeout=30)
    assert failures == []
    assert len({files for *_, files in seen}) > 2  # several states were seen
    assert all(frames == promised for frames, promised, _ in seen), seen
    assert [files for *_, files in seen] == sorted(files for *_, files in seen)


def test_a_moved_archive_fails_clearly_until_any_command_relinks_it(fitted, tmp_path):
    old_folder = fitted.path.parent
    frames = _plain_counts(fitted.path, ["frames"], tmp_path)["frames"]
    new_folder = tmp_path / "moved"
    shutil.move(old_folder, new_folder)
    moved = new_folder / fitted.path.name
    with pytest.raises(RuntimeError, match="No files found|moved or copied"):
        _plain_counts(moved, ["frames"], tmp_path)
    assert _plain_counts(moved, ["files"], tmp_path)["files"] == 3  # tables need no parts
    # any fgsarchive command, here a read-only one, relinks it
    assert Archive(moved).sql("SELECT count(*) AS n FROM frames")["n"][0] == frames
    assert _plain_counts(moved, ["frames", "fits"], tmp_path) == {"frames": frames, "fits": frames}
    assert read_archive_id(Database(moved).parts.root) == read_archive_id(
        new_folder / (fitted.path.name + ".parts")
    )


def test_a_copy_is_told_apart_from_its_original(fitted, tmp_path):
    original_id = read_archive_id(fitted.parts.root)
    copy_folder = tmp_path / "copy"
    shutil.copytree(fitted.path.parent, copy_folder)
    copy = Database(copy_folder / fitted.path.name)
    # the copy's views would read the original's parts: they refuse instead
    with pytest.raises(RuntimeError, match="moved or copied"):
        _plain_counts(copy.path, ["frames"], tmp_path)
    with copy.reader() as con:
        parts = dict(con.execute("SELECT key, value FROM archive_info").fetchall())["parts"]
        frames = copy.count_rows(con, "frames")
    assert parts == str(copy.parts.root.resolve())
    assert read_archive_id(copy.parts.root) != original_id
    assert read_archive_id(fitted.parts.root) == original_id
    # from now on the copy reads its own parts: emptying the original changes nothing
    shutil.rmtree(fitted.parts.root / "frames")
    assert _plain_counts(copy.path, ["frames"], tmp_path) == {"frames": frames}
    with fitted.reader() as con:
        assert fitted.count_rows(con, "files") == 3


def test_a_writer_killed_mid_publish_leaves_the_last_snapshot(products, tmp_path):
    db = Database(tmp_path / "a.duckdb")
    ingest_paths(db, _fg_files(products)[:1], workers=1)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from fgsarchive import snapshot; from fgsarchive.db import Database; "
            "from fgsarchive.ingest import ingest_paths; from pathlib import Path; "
            "snapshot._fsync = lambda path: os._exit(9); "
            "ingest_paths(Database(sys.argv[1]), [Path(sys.argv[2])], workers=1)",
            str(db.path),
            str(_fg_files(products)[1]),
        ],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 9
    assert list(tmp_path.glob(".a.duckdb.*.tmp"))  # the half-written snapshot
    with duckdb.connect(str(db.path), read_only=True) as con:  # the last whole snapshot
        assert con.execute("SELECT count(*) FROM files").fetchall() == [(1,)]
        frames, promised, _ = con.execute(CONSISTENT).fetchall()[0]
        assert frames == promised
    ingest_paths(db, _fg_files(products)[:2], workers=1)  # the re-run completes and cleans up
    assert not list(tmp_path.glob(".a.duckdb.*.tmp*"))
    with db.reader() as con:
        assert con.execute("SELECT count(*) FROM files").fetchall() == [(2,)]


def test_missing_parts_and_newer_schemas_are_one_line_errors(fitted, tmp_path):
    shutil.rmtree(fitted.parts.root / "frames")
    with pytest.raises(RuntimeError, match="No files found.*frames"):
        _plain_counts(fitted.path, ["frames"], tmp_path)
    with pytest.raises(ArchiveError, match="No files found") as info:
        Archive(fitted.path).sql("SELECT count(*) FROM frames")
    assert "\n" not in str(info.value)
    shutil.rmtree(fitted.parts.root)
    with pytest.raises(ArchiveError, match="no writer database|no parts folder") as info:
        with fitted.reader():
            pass
    assert str(fitted.path) in str(info.value)


def test_a_snapshot_of_a_newer_schema_is_refused(fitted):
    with duckdb.connect(str(fitted.path)) as con:  # as a newer fgsarchive would publish it
        con.execute("UPDATE archive_info SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="schema version 99, newer"):
        with fitted.reader():
            pass


def test_a_lost_writer_database_is_refused_and_migrate_rebuilds_it(fitted):
    from fgsarchive.maintenance import archive_checksums
    from fgsarchive.migrate import migrate

    before = archive_checksums(fitted, ("files", "frames", "fits"))
    fitted.writer_path.unlink()
    with pytest.raises(ArchiveError, match="lost its writer database"):
        with fitted.writer():
            pass
    migrate(fitted)
    assert archive_checksums(fitted, ("files", "frames", "fits")) == before
    with fitted.writer():  # writes and publishes again
        pass


@pytest.fixture()
def read_only_mount(tmp_path):
    """A tmpfs that the test can remount read-only (root only; skipped elsewhere)."""
    where = tmp_path / "mnt"
    where.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(where)]).returncode
    ):
        pytest.skip("needs root to mount a tmpfs")
    yield where
    subprocess.run(["umount", str(where)])


def test_a_read_only_file_system_reads_and_refuses_writes_in_one_line(products, read_only_mount):
    db = Database(read_only_mount / "a.duckdb")
    ingest_paths(db, _fg_files(products)[:1], workers=1)
    with db.reader() as con:
        frames = db.count_rows(con, "frames")
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    assert Archive(db.path).sql("SELECT count(*) AS n FROM frames")["n"][0] == frames
    assert _plain_counts(db.path, ["frames"], read_only_mount.parent) == {"frames": frames}
    with pytest.raises(ArchiveError) as info:
        ingest_paths(db, _fg_files(products)[1:2], workers=1)
    message = str(info.value)
    assert (
        "\n" not in message
        and str(db.path) in message
        and ("Read-only" in message or "not writable" in message)
    )


def test_fgsarchive_readers_see_new_snapshots_while_the_process_holds_an_old_one(
    products, tmp_path
):
    """duckdb.connect(path) hands out the instance already open on that path in this process (a
    notebook's own connection): fgsarchive's readers must still see each new snapshot."""
    db = Database(tmp_path / "a.duckdb")
    paths = _fg_files(products)
    ingest_paths(db, paths[:1], workers=1)
    with duckdb.connect(str(db.path), read_only=True) as held:
        ingest_paths(db, paths[1:2], workers=1)
        assert held.execute("SELECT count(*) FROM files").fetchall() == [(1,)]
        assert Archive(db.path).sql("SELECT count(*) AS n FROM files")["n"][0] == 2
        with db.reader() as con:
            assert con.execute("SELECT count(*) FROM files").fetchall() == [(2,)]


def test_lazy_writers_publish_before_this_process_reads_and_at_their_end(tmp_path, monkeypatch):
    import fgsarchive.db as dbmod

    monkeypatch.setattr(dbmod, "PUBLISH_DUTY", 1e6)  # after one publication, none for ages
    db = Database(tmp_path / "a.duckdb")
    db.initialise()
    insert = "INSERT INTO crawl_windows (start_mjd, end_mjd, state) VALUES ($a, $a + 1, 'done')"
    for day in (1.0, 2.0):
        with db.writer(lazy=True) as con:
            con.execute(insert, {"a": 60000.0 + day})
    with duckdb.connect(str(db.path), read_only=True) as con:  # other processes: not yet
        assert con.execute("SELECT count(*) FROM crawl_windows").fetchall() == [(0,)]
    with db.reader() as con:  # this process reads what it wrote
        assert con.execute("SELECT count(*) FROM crawl_windows").fetchall() == [(2,)]
    with db.writer(lazy=True) as con:
        con.execute(insert, {"a": 60003.0})
    db.publish_pending()
    with duckdb.connect(str(db.path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM crawl_windows").fetchall() == [(3,)]


def test_a_run_killed_before_it_published_is_published_by_the_next(products, tmp_path, monkeypatch):
    """A lazy writer's commits, then the process gone before it published (here: a new Database
    object, as a new process has): the next run's publish_pending publishes them. A fit killed
    after writing every part but before publishing: its resume has nothing to fit, yet publishes
    the fits' views (a plain client saw no `fits` at all)."""
    import fgsarchive.db as dbmod

    monkeypatch.setattr(dbmod, "PUBLISH_DUTY", 1e6)
    path = tmp_path / "a.duckdb"
    first = Database(path)
    first.initialise()
    insert = "INSERT INTO crawl_windows (start_mjd, end_mjd, state) VALUES (60001, 60002, 'done')"
    with first.writer(lazy=True) as con:
        con.execute(insert)
    count = "SELECT count(*) FROM crawl_windows"
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute(count).fetchall() == [(0,)]
    Database(path).publish_pending()  # the next run: it committed nothing itself
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute(count).fetchall() == [(1,)]

    db = Database(tmp_path / "fit" / "a.duckdb")
    ingest_paths(db, _fg_files(products)[:2], workers=1)
    with monkeypatch.context() as m:  # killed after its parts, before its publication
        m.setattr(Database, "publish", lambda self: None)
        assert fit_archive(db, workers=1).files == 2
    with pytest.raises(RuntimeError):  # a plain client: no relation `fits`
        _plain_counts(db.path, ["fits"], tmp_path)
    assert fit_archive(Database(db.path), workers=1).files == 0
    assert _plain_counts(db.path, ["fits"], tmp_path)["fits"] > 0
