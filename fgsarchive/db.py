"""The only module that talks to DuckDB: connections, the schema, and SQL run by name.

Design for one writer and many readers (README "Concurrent use"): DuckDB lets one process hold a
database file read-write, and then no other process can open it, not even read-only. So writers
hold the file only for short transactions (open, write, commit, close), bulk per-frame data goes
to Parquet parts that need no lock (:mod:`fgsarchive.storage`), and both readers and writers retry
opening with backoff for up to ``lock_timeout_s`` while another process holds the file.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import duckdb
import pyarrow as pa

from . import sql
from .config import Settings, parts_dir_for
from .errors import ArchiveError, ArchiveLockedError, QueryError, SchemaVersionError
from .storage import PartStore, part_name

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
# Parquet datasets exposed as views when present: frames, pointing and centroids by ingest;
# fits, quickfits and photometry by the fitter.
PARQUET_DATASETS = ("frames", "pointing", "centroids", "fits", "quickfits", "photometry")


def _is_lock_error(exc: Exception) -> bool:
    """Another process holds the file, or another connection of this process holds it in the
    other mode (DuckDB shares one instance per file in a process, opened read-only or not)."""
    text = str(exc)
    return ("lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)) or (
        "different configuration than existing connections" in text
    )


def _open(path: Path, *, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, retrying with jittered backoff while another process holds it."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
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

    # --- connections --------------------------------------------------------------------------
    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create the per-connection TEMP views: Parquet datasets, then every ``views/*.sql``."""
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
        """A read-only connection with all views; ``sandbox`` also forbids files outside the archive."""
        if not self.path.exists():
            raise ArchiveError(
                f"no archive at {self.path}: create one with `fgsarchive ingest` or `fgsarchive demo`"
            )
        con = _open(self.path, read_only=True, timeout_s=self.settings.lock_timeout_s)
        try:
            self._check_version(con)
            self._prepare(con)
            if sandbox:
                self._sandbox(con)
            yield con
        finally:
            con.close()

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

    @contextlib.contextmanager
    def writer(self, *, views: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short read-write transaction: commit on success, roll back on error, then close.

        ``views=True`` also creates the TEMP views (Parquet datasets, ``views/*.sql``) for statements
        that read them.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.parts.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create archive {self.path}: {exc.strerror or exc}") from exc
        con = _open(self.path, read_only=False, timeout_s=self.settings.lock_timeout_s)
        try:
            self._ensure_schema(con)
            if views:
                self._prepare(con)
            with self._transaction(con):
                yield con
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
    def migration(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write transaction without the schema-version check: for :mod:`fgsarchive.migrate`."""
        if not self.path.exists():
            raise ArchiveError(f"no archive at {self.path}")
        con = _open(self.path, read_only=False, timeout_s=self.settings.lock_timeout_s)
        try:
            with self._transaction(con):
                yield con
        finally:
            con.close()

    def initialise(self) -> None:
        """Create the schema and finish or undo whatever a killed writer left in staging."""
        with self.writer() as con:
            committed = {
                part_name(row[0])
                for row in self.run(con, "ingest/files_known").fetchall()
                if row[1] == "ingested"
            }
        self.parts.recover(lambda part: part in committed)

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
