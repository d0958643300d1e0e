"""The only module that talks to DuckDB: connections, the schema, and SQL run by name.

Design for one writer and many readers (README "How data are stored"): DuckDB lets one process
hold a database file read-write, and then no other process can open it, not even read-only; and a
read-only opener blocks every writer. So writers and readers never share a file: writers work in
short transactions on a private writer database inside the parts folder (retrying with backoff for
up to ``lock_timeout_s`` while another writer holds it) and, after each commit, publish a snapshot
renamed over the public file (:mod:`fgsarchive.snapshot`); readers open the public file read-only.
Bulk per-frame data are Parquet parts that need no lock (:mod:`fgsarchive.storage`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from . import snapshot, sql
from .config import Settings, parts_dir_for
from .errors import ArchiveError, ArchiveLockedError, QueryError, SchemaVersionError
from .storage import PARQUET_DATASETS, PartStore, part_name

log = logging.getLogger(__name__)

# 1: the first round (tables in the public file, TEMP views); 2: the pixel noise model in
# ``files`` (noise_a, noise_b, noise_source); 3: private writer database and published snapshots
# (fgsarchive/snapshot.py).
SCHEMA_VERSION = 3
# Lazy writers (ingest's batches) skip publishing while the last publication is this many times its
# own duration ago: publishing then costs at most ~1/(1+PUBLISH_DUTY) of their wall time.
PUBLISH_DUTY = 9.0


def _is_lock_error(exc: Exception) -> bool:
    """Another process holds the file, or another connection of this process holds it in the
    other mode (DuckDB shares one instance per file in a process, opened read-only or not)."""
    text = str(exc)
    return (
        "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)
    ) or ("different configuration than existing connections" in text)


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; read-only opens attach it to a fresh in-memory instance instead.

    ``duckdb.connect(path)`` returns the instance already open on that path in this process, so
    while anything in the process (a notebook's own connection) holds the public file, it would
    keep serving the snapshot it opened first. ATTACH opens the file's current inode each time.
    """
    if not read_only:
        return duckdb.connect(str(path))
    con = duckdb.connect()
    try:
        alias = snapshot.database_alias(path.stem)
        path_literal = sql.string_literal(str(path.absolute()))
        con.execute(sql.render("snapshot/attach_read_only", path=path_literal, alias=alias))
        con.execute(sql.render("snapshot/use", database=alias))
    except BaseException:
        con.close()
        raise
    return con


def _open(path: Path, *, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, retrying with jittered backoff while another process holds it."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return _connect(path, read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise ArchiveError(f"cannot open archive {path}: {exc}".splitlines()[0]) from exc
            if time.monotonic() >= deadline:
                raise ArchiveLockedError(
                    f"archive {path} is held by another process for more than {timeout_s:.0f} s "
                    "(raise FGSARCHIVE_LOCK_TIMEOUT to wait longer)"
                ) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


class Database:
    """One archive: a DuckDB file of tables plus a folder of Parquet parts beside it."""

    def __init__(self, path: str | Path, *, settings: Settings | None = None) -> None:
        self.path = Path(path)
        self.settings = settings or Settings()
        self.parts = PartStore(parts_dir_for(self.path))
        self.writer_path = self.parts.root / snapshot.WRITER_FILE
        self._unpublished = False  # a lazy writer committed after the last snapshot
        self._next_publish_at = 0.0  # monotonic time before which lazy writers do not publish

    # --- connections --------------------------------------------------------------------------
    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create TEMP views on a writer connection: Parquet datasets, then every ``views/*.sql``
        (readers find them persistent in the published snapshot)."""
        for dataset in PARQUET_DATASETS:
            if self.parts.has_dataset(dataset):
                self.create_parquet_view(con, dataset, dataset)
        for name in sql.names("views"):
            try:
                con.execute(sql.text(name))
            except duckdb.Error as exc:  # a later stage's tables do not exist yet
                log.debug("views %s skipped: %s", name, str(exc).splitlines()[0])

    def create_parquet_view(self, con: duckdb.DuckDBPyConnection, view: str, dataset: str) -> None:
        template = f"core/parquet_view_{dataset}"
        if template not in sql.statements():
            template = "core/parquet_view"
        # Union by name only when the parts' schemas differ: it reads every part's footer here,
        # which took 0.4-0.8 s per dataset (4 s per connection) at 12k parts (20M frames).
        con.execute(
            sql.render(
                template,
                view=view,
                glob=sql.string_literal(self.parts.glob(dataset)),
                union_by_name=not self.parts.uniform_schema(dataset),
            )
        )

    @contextlib.contextmanager
    def reader(self, *, sandbox: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the published snapshot (all views are in it); ``sandbox``
        also forbids files outside the archive. A moved or copied archive is re-linked first."""
        if self._unpublished:  # this process wrote after the last snapshot: readers see it
            self.publish()
        con = self._open_snapshot()
        try:
            if sandbox:
                self._sandbox(con)
            yield con
        finally:
            con.close()

    def _open_snapshot(self) -> duckdb.DuckDBPyConnection:
        """Open the public file read-only, after re-linking a moved archive or publishing one a
        killed writer left unpublished."""
        if not self.path.exists():
            if not self.writer_path.exists():
                raise ArchiveError(
                    f"no archive at {self.path}: create one with `fgsarchive ingest` or "
                    "`fgsarchive demo`"
                )
            self.publish()
        for attempt in range(2):
            con = _open(self.path, read_only=True, timeout_s=self.settings.lock_timeout_s)
            try:
                state = snapshot.check_snapshot(self, con, SCHEMA_VERSION)
                record = snapshot.info(con) or {}
            except BaseException:
                con.close()
                raise
            if state == "ok":
                return con
            con.close()
            if attempt:
                break
            if state == "moved":
                snapshot.relink(self, record.get("path"))
            else:
                self.publish()
        raise ArchiveError(
            f"cannot open archive {self.path}: its snapshot does not match its place"
        )

    def publish(self) -> None:
        """Publish the writer database's current state (an empty write transaction)."""
        with self.writer():
            pass

    def _sandbox(self, con: duckdb.DuckDBPyConnection) -> None:
        """No file access outside the parts folder, and no way for the query to undo that."""
        allowed = str(self.parts.root.resolve()) + "/"
        try:
            con.execute("SET allowed_directories = [$dir]", {"dir": allowed})
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except duckdb.InvalidInputException as exc:
            # DuckDB shares one instance (and its settings) between the connections of a process
            # to one file: another sandboxed reader of this process locked them already. Go on
            # only if they are this very sandbox.
            external, dirs = self.run(con, "core/sandbox_settings").fetchall()[0]
            if external or allowed not in [str(d) for d in dirs or []]:
                raise ArchiveError(
                    f"cannot sandbox a query of {self.path}: its settings are locked otherwise"
                ) from exc

    def snapshot_lacks_views(self, datasets: Sequence[str]) -> bool:
        """Whether a dataset with parts on disk has no view in the readers' snapshot yet: a run
        killed after writing its parts and before it published (its resume has nothing to do)."""
        present = [d for d in datasets if self.parts.has_dataset(d)]
        if not present or not self.path.exists():
            return bool(present)
        with self.reader() as con:
            return not all(
                self.run(con, "core/relation_exists", {"name": d}).fetchall()[0][0] for d in present
            )

    @property
    def _unpublished_marker(self) -> Path:
        """Exists while a lazy writer's commit may be missing from the readers' snapshot: made
        before such a commit, removed by the next publish, so a run killed in between leaves it
        for the next run's :meth:`publish_pending`."""
        return self.parts.root / ".unpublished"

    def publish_pending(self) -> None:
        """Publish what lazy writers committed since the last snapshot (of this process, or of a
        killed run: :attr:`_unpublished_marker`)."""
        if self._unpublished or self._unpublished_marker.exists():
            self.publish()

    @contextlib.contextmanager
    def writer(
        self,
        *,
        views: bool = False,
        after_commit: Callable[[], object] | None = None,
        lazy: bool = False,
        duty: float = PUBLISH_DUTY,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short read-write transaction on the writer database: commit on success, roll back on
        error; then ``after_commit()`` (e.g. renaming Parquet parts into place) and publish a
        snapshot, both still holding the writer database; then close.

        ``views=True`` also creates the TEMP views (Parquet datasets, ``views/*.sql``) for statements
        that read them. ``lazy=True`` (batches of a long run, which calls :meth:`publish_pending`
        at its end) skips the snapshot while the last one is recent: published less than ``duty``
        times its own duration ago (:data:`PUBLISH_DUTY`).
        """
        snapshot.refuse_missing_writer(self, SCHEMA_VERSION)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.parts.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create archive {self.path}: {exc.strerror or exc}") from exc
        if not os.access(self.path.parent, os.W_OK):
            raise ArchiveError(f"cannot write archive {self.path}: its folder is not writable")
        con = _open(self.writer_path, read_only=False, timeout_s=self.settings.lock_timeout_s)
        try:
            self._ensure_schema(con)
            if views:
                self._prepare(con)
            skip_publish = lazy and time.monotonic() < self._next_publish_at
            if skip_publish:
                self._unpublished_marker.touch()
            with self._transaction(con):
                yield con
            if after_commit is not None:
                after_commit()
            if skip_publish:
                self._unpublished = True
            else:
                started = time.monotonic()
                snapshot.adopt_place(self)
                snapshot.publish(self, con, SCHEMA_VERSION)
                self._unpublished_marker.unlink(missing_ok=True)
                self._unpublished = False
                now = time.monotonic()
                self._next_publish_at = now + duty * (now - started)
        finally:
            con.close()

    @contextlib.contextmanager
    def _transaction(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """BEGIN; COMMIT on success (a failed COMMIT -- a full disk -- is an ArchiveError naming
        the archive: nothing of it was written), ROLLBACK on any error."""
        con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        try:
            con.execute("COMMIT")
        except duckdb.Error as exc:
            raise ArchiveError(
                f"cannot write archive {self.path}: " + str(exc).splitlines()[0]
            ) from exc

    # --- schema -------------------------------------------------------------------------------
    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        # An older archive is refused before any DDL of this version touches it.
        if self.run(con, "version/schema_info_exists").fetchall()[0][0]:
            self._check_version(con)
        for name in sql.names("schema"):
            con.execute(sql.text(name))
        version = next(
            iter(self.run(con, "version/get", {"key": "schema_version"}).fetchall()), None
        )
        if version is None:
            self.run(con, "version/set", {"key": "schema_version", "value": str(SCHEMA_VERSION)})

    def _check_version(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            row = next(
                iter(self.run(con, "version/get", {"key": "schema_version"}).fetchall()), None
            )
        except duckdb.CatalogException as exc:
            raise SchemaVersionError(
                f"{self.path} is not an fgsarchive archive (no schema_info table)"
            ) from exc
        found = int(row[0]) if row else SCHEMA_VERSION
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has schema version {found}, newer than this fgsarchive "
                f"({SCHEMA_VERSION}): upgrade with `pip install -U fgsarchive`"
            )
        if found < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has schema version {found}; upgrade it to {SCHEMA_VERSION} with "
                f"`fgsarchive migrate --db {self.path}` (or `python -m fgsarchive.migrate "
                f"{self.path}`; fgsarchive.migrate.migrate)"
            )

    @contextlib.contextmanager
    def migration(self, path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write transaction without the schema-version check on ``path`` (default: the
        writer database): for :mod:`fgsarchive.migrate`."""
        path = Path(path or self.writer_path)
        if not path.exists():
            raise ArchiveError(f"no archive at {self.path} (no {path})")
        con = _open(path, read_only=False, timeout_s=self.settings.lock_timeout_s)
        try:
            with self._transaction(con):
                yield con
        finally:
            con.close()

    def initialise(self) -> None:
        """Create the schema and finish or undo whatever a killed writer left in staging."""
        committed: set[str] = set()
        # Staged parts are published before the snapshot, so it never lists a file without them.
        with self.writer(after_commit=lambda: self.parts.recover(lambda p: p in committed)) as con:
            committed.update(
                part_name(row[0])
                for row in self.run(con, "ingest/files_known").fetchall()
                if row[1] == "ingested"
            )

    # --- running SQL by name --------------------------------------------------------------------
    @staticmethod
    def run(
        con: duckdb.DuckDBPyConnection,
        name: str,
        params: Mapping[str, object] | None = None,
        **tables: pa.Table,
    ) -> duckdb.DuckDBPyConnection:
        """Run the statement ``name`` (``"area/name"``, :mod:`fgsarchive.sql`) with bound
        parameters; Arrow ``tables`` are visible by name.

        Returns the cursor: read it whole (``.fetchall()``, ``.fetchnumpy()``) -- DuckDB 2.0 refuses
        further work on a connection with a half-read result; use :meth:`arrow` for Arrow.
        """
        # Registered tables stay registered until the next registration or the connection closes:
        # a SELECT's result is fetched after run() returns and must still see them.
        for table_name, table in tables.items():
            con.register(table_name, table)
        return con.execute(sql.text(name), dict(params) if params else None)

    @staticmethod
    def arrow(
        con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, object] | None = None
    ) -> pa.Table:
        """Run the query ``name`` (``"area/name"``) with bound parameters and return Arrow."""
        return con.sql(sql.text(name), params=dict(params) if params else None).to_arrow_table()

    @staticmethod
    def count_rows(con: duckdb.DuckDBPyConnection, relation: str) -> int:
        """Row count of a table or view named by a plain identifier."""
        return int(con.execute(sql.render("core/count_rows", relation=relation)).fetchall()[0][0])

    def query_arrow(self, name: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """Run a named read-only statement and return Arrow."""
        with self.reader() as con:
            return self.arrow(con, name, params)


@contextlib.contextmanager
def exclusive(db: Database, lock_name: str, busy: Callable[[float], str]) -> Iterator[None]:
    """One holder at a time of ``<parts>/<lock_name>`` (a ``flock``: the kernel drops it when its
    last holder is gone); waits up to the lock timeout, then raises ArchiveLockedError with
    ``busy(timeout_s)``. Not POSIX: no lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    try:
        db.parts.root.mkdir(parents=True, exist_ok=True)
        handle = open(db.parts.root / lock_name, "a+")  # noqa: SIM115
    except OSError as exc:
        raise ArchiveError(f"cannot create archive {db.path}: {exc.strerror or exc}") from exc
    timeout_s = db.settings.lock_timeout_s
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ArchiveLockedError(busy(timeout_s)) from None
                time.sleep(0.1)
        yield
    finally:
        handle.close()


def _sql_error(exc: Exception) -> QueryError:
    """DuckDB's message whole: its first line, then its hints ("Did you mean ...", candidate
    columns) and the ``LINE 1: ... ^`` pointer at the error, without blank lines."""
    lines = [line.rstrip() for line in str(exc).splitlines() if line.strip()]
    return QueryError("SQL error: " + "\n".join(lines))


def run_user_query(db: Database, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
    """Run a user's SQL on a sandboxed read-only connection: one statement, reading only.

    Refused: anything but a query (INSERT, COPY, ATTACH, SET, ...), files outside the archive.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise _sql_error(exc) from exc
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SQL statement, got {len(statements)}")
    kind = statements[0].type
    if kind not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        raise QueryError(
            f"refused: `fgsarchive query` is read-only and runs SELECT only (got {kind.name})"
        )
    with db.reader(sandbox=True) as con:
        try:
            return con.sql(sql, params=dict(params) if params else None).to_arrow_table()
        except duckdb.Error as exc:
            raise _sql_error(exc) from exc
