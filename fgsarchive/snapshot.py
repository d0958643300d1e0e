"""Published snapshots: the public ``X.duckdb`` every client reads, never held by a writer.

Layout of an archive ``X.duckdb`` (schema version 2)::

    X.duckdb                          the public snapshot: readers only (plain DuckDB, fgsarchive)
    X.duckdb.parts/_writer.duckdb     the private writer database (tables), held by writers only
    X.duckdb.parts/_archive_id        the archive's id (a UUID), also recorded in every snapshot
    X.duckdb.parts/<dataset>/...      Parquet parts (frames, pointing, centroids, fits, ...)

DuckDB lets one process hold a file read-write and then no other process may open it, and a
read-only opener blocks writers; so writers never open the public file. After each short write
transaction (while still holding the writer database) :func:`publish` writes a new DuckDB file
holding a copy of every table, the persistent views of the README (Parquet datasets by absolute
path; ``programs``, ``visit_summary``, ...) and ``archive_info`` (schema version, archive id,
the absolute path it was published for), then renames it over ``X.duckdb``. A reader keeps the
inode it opened: it never blocks the writer and sees one consistent state. The Parquet views keep
only the parts of files the snapshot's ``files`` calls ingested (a part renamed in after the
snapshot is not seen, so ``frames`` agrees with ``files``); parts appear by atomic renames, so a
reader sees whole files only.

Moves and copies: each Parquet view first checks that the database it is read from is attached
at the path recorded in it, and otherwise fails with a one-line error saying to run any
fgsarchive command there; :func:`check` (run by every fgsarchive reader and writer) sees the
mismatch and republishes with the new paths. When the recorded place still holds an archive of
the same id, this one is a copy and gets a new id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from . import sql
from .errors import ArchiveError, SchemaVersionError
from .storage import PARQUET_DATASETS

log = logging.getLogger(__name__)

WRITER_FILE = "_writer.duckdb"  # inside the parts folder
ARCHIVE_ID_FILE = "_archive_id"  # inside the parts folder
_ALIAS = "fgs_snapshot"
_TEMP_VIEW = re.compile(r"\bCREATE\s+OR\s+REPLACE\s+TEMP\s+VIEW\b", re.IGNORECASE)


def database_alias(name: str) -> str:
    """``name`` (a file stem) made a plain lower-case SQL identifier, to attach a database as."""
    alias = re.sub(r"[^a-z0-9_]", "_", name.lower())
    return alias if re.match(r"^[a-z_]", alias) else "_" + alias


def tmp_public_name(public: Path) -> Path:
    """The temporary name a snapshot is written under (same folder: the rename is atomic)."""
    return public.with_name(f".{public.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def remove_stale_snapshots(public: Path) -> int:
    """Delete temporary snapshots of publishers that are gone (killed mid-publish)."""
    from .storage import _pid_alive

    removed = 0
    for tmp in public.parent.glob(f".{public.name}.*.tmp*"):
        try:
            pid = int(tmp.name[len(public.name) + 2 :].split(".", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


# --- archive id -------------------------------------------------------------------------------
def read_archive_id(parts_root: Path) -> str | None:
    path = Path(parts_root) / ARCHIVE_ID_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from exc


def write_archive_id(parts_root: Path, archive_id: str | None = None) -> str:
    """Record a (new) archive id in the parts folder; return it."""
    archive_id = archive_id or uuid.uuid4().hex
    path = Path(parts_root) / ARCHIVE_ID_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(archive_id + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArchiveError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return archive_id


# --- reading a snapshot's record --------------------------------------------------------------
def info(con: duckdb.DuckDBPyConnection) -> dict[str, str] | None:
    """``archive_info`` of an open snapshot as a dict, or None when the file has none."""
    try:
        rows = con.execute(sql.text("snapshot/info_get")).fetchall()
    except duckdb.CatalogException:
        return None
    return {str(k): str(v) for k, v in rows}


def places(public: Path) -> tuple[str, str]:
    """The paths a client may attach the public file by: as given (absolute) and resolved."""
    return os.path.abspath(public), os.path.realpath(public)


# --- publishing -------------------------------------------------------------------------------
def publish(db, con: duckdb.DuckDBPyConnection, schema_version: int) -> None:
    """Write a snapshot of the writer database ``con`` and rename it over the public file.

    Called by :meth:`fgsarchive.db.Database.writer` after its commit, still holding the writer
    database, so snapshots are published in commit order.
    """
    public = Path(db.path)
    remove_stale_snapshots(public)
    archive_id = read_archive_id(db.parts.root) or write_archive_id(db.parts.root)
    writer_name = con.execute("SELECT current_database()").fetchall()[0][0]
    tmp = tmp_public_name(public)
    attached = False
    try:
        con.execute(sql.render("snapshot/attach", path=sql.string_literal(str(tmp)), alias=_ALIAS))
        attached = True
        con.execute(sql.render("snapshot/copy_database", source=writer_name, target=_ALIAS))
        con.execute(sql.render("snapshot/use", database=_ALIAS))
        try:
            _create_views(db, con, archive_id, schema_version)
        finally:
            con.execute(sql.render("snapshot/use", database=writer_name))
        con.execute(sql.render("snapshot/detach", alias=_ALIAS))
        attached = False
        _fsync(tmp)
        os.replace(tmp, public)
    except BaseException as exc:
        if attached:
            with contextlib.suppress(duckdb.Error):
                con.execute(sql.render("snapshot/detach", alias=_ALIAS))
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        if isinstance(exc, duckdb.Error | OSError):
            raise ArchiveError(
                f"cannot publish archive {public}: " + str(exc).splitlines()[0]
            ) from exc
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_views(db, con: duckdb.DuckDBPyConnection, archive_id: str, schema_version: int) -> None:
    """Inside the snapshot (the connection's default database): archive_info and every view."""
    from . import __version__

    public = Path(db.path)
    abs_path, real_path = places(public)
    record = {
        "schema_version": str(schema_version),
        "archive_id": archive_id,
        "path": abs_path,
        "realpath": real_path,
        "parts": str(Path(db.parts.root).resolve()),
        "published_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "fgsarchive_version": __version__,
    }
    con.execute(sql.text("snapshot/create_info"))
    con.execute(
        sql.text("snapshot/insert_info"), {"keys": list(record), "values": list(record.values())}
    )
    message = (
        f"fgsarchive: this archive was published for {abs_path} and is read from elsewhere "
        "(moved or copied): run any fgsarchive command on it at its new place "
        "(e.g. `fgsarchive status --db NEW_PATH`) to re-link it"
    )
    paths = ", ".join(sql.string_literal(p) for p in sorted({abs_path, real_path}))
    guard = sql.render(
        "snapshot/guard", paths=sql.Fragment(paths), message=sql.string_literal(message)
    )
    for dataset in PARQUET_DATASETS:
        if not db.parts.has_dataset(dataset):
            continue
        template = f"snapshot/parquet_view_{dataset}"
        if template not in sql.statements():
            template = "snapshot/parquet_view"
        glob = str(Path(db.parts.root).resolve() / dataset / "*" / "*.parquet")
        con.execute(
            sql.render(
                template,
                view=dataset,
                glob=sql.string_literal(glob),
                union_by_name=not db.parts.uniform_schema(dataset),
                guard=sql.Fragment(guard),
            )
        )
    for name in sql.names("views"):
        try:
            con.execute(_TEMP_VIEW.sub("CREATE OR REPLACE VIEW", sql.text(name)))
        except duckdb.Error as exc:  # a later stage's tables do not exist yet
            log.debug("view file %s skipped: %s", name, str(exc).splitlines()[0])


# --- checking what a reader opened ---------------------------------------------------------------
def check_snapshot(db, con: duckdb.DuckDBPyConnection, schema_version: int) -> str:
    """What the open public file is: ``ok``, ``moved`` (re-link needed) or ``unpublished``
    (no snapshot record yet, but a writer database exists). Raises one-line errors for a
    first-round archive, a newer schema, and a file and parts folder of different archives."""
    record = info(con)
    if record is None:
        if Path(db.writer_path).exists():
            return "unpublished"
        if _has_table(con, "schema_info"):
            found = _legacy_version(con)
            raise SchemaVersionError(
                f"{db.path} has schema version {found}; upgrade it to {schema_version} with "
                f"`fgsarchive migrate --db {db.path}` (or `python -m fgsarchive.migrate "
                f"{db.path}`; fgsarchive.migrate.migrate)"
            )
        raise SchemaVersionError(f"{db.path} is not an fgsarchive archive (no archive_info table)")
    found = int(record.get("schema_version", "0"))
    if found > schema_version:
        raise SchemaVersionError(
            f"{db.path} has schema version {found}, newer than this fgsarchive "
            f"({schema_version}): upgrade with `pip install -U fgsarchive`"
        )
    if found < schema_version:
        raise SchemaVersionError(
            f"{db.path} has schema version {found}; upgrade it to {schema_version} with "
            f"`fgsarchive migrate --db {db.path}` (or `python -m fgsarchive.migrate {db.path}`; "
            "fgsarchive.migrate.migrate)"
        )
    if record.get("realpath") != os.path.realpath(db.path):
        return "moved"
    parts_id = read_archive_id(db.parts.root)
    if parts_id is None and not Path(db.parts.root).is_dir():
        raise ArchiveError(
            f"archive {db.path} has no parts folder {db.parts.root}: its frames and fits are "
            "missing (copy or move the folder with the file)"
        )
    if parts_id is not None and parts_id != record.get("archive_id"):
        raise ArchiveError(
            f"{db.path} (archive {record.get('archive_id')}) and its parts folder "
            f"{db.parts.root} (archive {parts_id}) belong to different archives"
        )
    return "ok"


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $name", {"name": name}
    ).fetchall()
    return bool(rows[0][0])


def _legacy_version(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchall()
    return int(rows[0][0]) if rows else 0


def adopt_place(db) -> str:
    """Before publishing: ``same`` place, or ``moved`` / ``copied`` from the place the public
    file was published for. A copy (that place still holds an archive with this id) gets a new
    id here, so the two are told apart from then on. Checked once per :class:`Database`."""
    if getattr(db, "_place_adopted", False) or not Path(db.path).exists():
        return "same"
    try:
        with duckdb.connect(str(db.path), read_only=True) as con:
            record = info(con) or {}
    except duckdb.Error:  # a first-round or broken public file: the publish replaces it
        record = {}
    kind = "same"
    recorded = record.get("path")
    if recorded and record.get("realpath") != os.path.realpath(db.path):
        kind = "moved"
        origin = Path(recorded)
        origin_parts = origin.with_name(origin.name + ".parts")
        own_id = read_archive_id(db.parts.root)
        if own_id is not None and read_archive_id(origin_parts) == own_id:
            kind = "copied"
            write_archive_id(db.parts.root)
        log.info("archive %s was %s from %s: re-linking it", db.path, kind, recorded)
    db._place_adopted = True
    return kind


def relink(db, record_path: str | None) -> str:
    """Publish a moved or copied archive with the paths of its new place; return what it was."""
    if not Path(db.parts.root).is_dir():
        raise ArchiveError(
            f"archive {db.path} was published at {record_path} and has no parts folder "
            f"{db.parts.root} here: copy or move the folder with the file"
        )
    db._place_adopted = False
    kind = adopt_place(db)
    try:
        db.publish()
    except ArchiveError as exc:
        raise ArchiveError(
            f"archive {db.path} was moved or copied from {record_path}; re-linking it failed: {exc}"
        ) from exc
    return kind


def refuse_missing_writer(db, schema_version: int) -> None:
    """Never create a fresh writer database beside a public file that holds an archive: a
    first-round archive is named as such (migrate it), a snapshot without its writer database too."""
    if not Path(db.path).exists() or Path(db.writer_path).exists():
        return
    try:
        with duckdb.connect(str(db.path), read_only=True) as con:
            check_snapshot(db, con, schema_version)  # raises for first-round and foreign files
    except duckdb.Error as exc:
        raise ArchiveError(f"cannot open archive {db.path}: " + str(exc).splitlines()[0]) from exc
    raise ArchiveError(
        f"archive {db.path} has lost its writer database {db.writer_path}: restore it with "
        f"`fgsarchive migrate --db {db.path}` (it is rebuilt from the snapshot)"
    )
