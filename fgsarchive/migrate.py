"""Upgrade an archive made by an older fgsarchive to this version's schema (``fgsarchive migrate``).

The archive's schema version is ``schema_info.schema_version`` (and ``archive_info`` in a
published snapshot); this fgsarchive writes :data:`fgsarchive.db.SCHEMA_VERSION`. Opening an older
archive fails with a message naming this command. :func:`migrate` applies the registered steps in
order, each the statement ``migrate/<from>_to_<to>`` of :mod:`fgsarchive.sql` (DDL separated by ``;``), then records
the new version, all in one transaction: a failure leaves the archive as it was, and running it
again on an up-to-date archive changes nothing.

Step 2 -> 3 is the layout of :mod:`fgsarchive.snapshot`: the first-round file (tables in the public
``X.duckdb``) is checkpointed and copied to the private writer database
``X.duckdb.parts/_writer.duckdb`` under a temporary name, renamed into place, and a snapshot is
published over ``X.duckdb``. Killed at any point, the old file is whole until the snapshot replaces
it (which holds every table of it), and running migrate again finishes the job.

It also records the schemas of the Parquet parts of archives written before
:func:`fgsarchive.storage.note_schema` existed, so their views stop reading every part's footer on
each connection (that made every query of a 20M-frame archive 4 s slower).

Usage: ``python -m fgsarchive.migrate PATH`` (until the CLI has ``fgsarchive migrate --db PATH``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from . import sql
from .db import SCHEMA_VERSION, Database
from .errors import ArchiveError, FgsArchiveError, SchemaVersionError
from .storage import SCHEMAS, STAGING, note_schema

LAYOUT_STEP = "layout_2_to_3"  # not SQL: the move to a private writer database + snapshots
#: from-version -> the SQL file of the step to from-version + 1 (or LAYOUT_STEP)
STEPS: dict[int, str] = {0: "migrate/0_to_1", 1: "migrate/1_to_2", 2: LAYOUT_STEP}
VERSION_KEY = "schema_version"


@dataclass
class MigrationReport:
    """What :func:`migrate` did."""

    from_version: int
    to_version: int
    steps: list[str] = field(default_factory=list)  # SQL files applied, in order
    part_schemas: dict[str, int] = field(default_factory=dict)  # dataset -> distinct schemas

    @property
    def changed(self) -> bool:
        return bool(self.steps) or bool(self.part_schemas)


def _statements(name: str) -> list[str]:
    """The statements of a step file (``;``-separated; ``--`` comments dropped)."""
    text = "\n".join(line.split("--", 1)[0] for line in sql.text(name).splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


def check_steps() -> None:
    """Every version below SCHEMA_VERSION has a step, and each step's SQL file exists."""
    for version in range(SCHEMA_VERSION):
        name = STEPS.get(version)
        if name == LAYOUT_STEP:
            continue
        if name is None or name not in sql.statements():
            raise ArchiveError(f"fgsarchive has no migration step from schema version {version}")


def migrate(db: Database, *, parts: bool = True) -> MigrationReport:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; record part schemas (``parts``); publish a
    snapshot. Idempotent."""
    first_round = db.path.exists() and not db.writer_path.exists()
    target = db.path if first_round else db.writer_path
    if not target.exists():
        raise ArchiveError(f"no archive at {db.path}")
    if not first_round and db.path.exists():
        db.parts.root.mkdir(parents=True, exist_ok=True)
    with db.migration(target) as con:
        if not db.run(con, "version/schema_info_exists").fetchall()[0][0]:
            raise SchemaVersionError(
                f"{db.path} is not an fgsarchive archive (no schema_info table)"
            )
        rows = db.run(con, "version/get", {"key": VERSION_KEY}).fetchall()
        found = int(rows[0][0]) if rows else 0
        report = MigrationReport(found, found)
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{db.path} has schema version {found}, newer than this fgsarchive "
                f"({SCHEMA_VERSION}): upgrade with `pip install -U fgsarchive`"
            )
        version = found
        while version < SCHEMA_VERSION:
            name = STEPS.get(version)
            if name is None:
                raise SchemaVersionError(
                    f"{db.path} has schema version {version}, and this fgsarchive has no migration "
                    f"from it: re-create the archive (`fgsarchive ingest --force ...`)"
                )
            if name == LAYOUT_STEP:
                if first_round:
                    break  # after this transaction's commit: the file is copied whole
                name = None  # a writer database that says 2: only the version is recorded
            for statement in _statements(name) if name else ():
                con.execute(statement)
            version += 1
            params = {"key": VERSION_KEY, "value": str(version)}
            db.run(con, "version/update" if rows else "version/set", params)
            rows = [(str(version),)]
            if name:
                report.steps.append(name)
        report.to_version = version
    if first_round:
        _move_into_writer_database(db)
        report.steps.append(LAYOUT_STEP)
        report.to_version = SCHEMA_VERSION
    if parts:
        report.part_schemas = record_part_schemas(db)
    db.publish()
    return report


def _move_into_writer_database(db: Database) -> None:
    """Layout step 2 -> 3: the first-round public file becomes the private writer database."""
    try:
        db.parts.root.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(db.path)) as con:
            con.execute("CHECKPOINT")
        tmp = db.writer_path.with_name(f".{db.writer_path.name}.{os.getpid()}.tmp")
        shutil.copyfile(db.path, tmp)
        with duckdb.connect(str(tmp)) as con:
            params = {"key": VERSION_KEY, "value": str(SCHEMA_VERSION)}
            db.run(con, "version/update", params)
            # a snapshot restored as the writer database: drop what publishing adds
            for (view,) in db.run(con, "snapshot/views").fetchall():
                con.execute(sql.render("snapshot/drop_view", view=view))
            con.execute(sql.text("snapshot/drop_info"))
            con.execute("CHECKPOINT")
        os.replace(tmp, db.writer_path)
    except (OSError, duckdb.Error) as exc:
        raise ArchiveError(
            f"cannot upgrade archive {db.path} to schema version {SCHEMA_VERSION}: "
            + str(exc).splitlines()[0]
        ) from exc


def record_part_schemas(db: Database) -> dict[str, int]:
    """For datasets whose part schemas are unknown, read every part's schema once and record them.

    Returns ``{dataset: distinct schemas}`` for the datasets it recorded.
    """
    out: dict[str, int] = {}
    root = db.parts.root
    if not root.is_dir():
        return out
    for dataset_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != STAGING):
        folder = dataset_dir / SCHEMAS
        unknown = folder / "unknown.json"
        parts = sorted(dataset_dir.glob("*/*.parquet"))
        if not parts or (folder.is_dir() and not unknown.exists()):
            continue
        schemas = {}
        for part in parts:
            schema = pq.read_schema(part).remove_metadata()
            schemas[str(schema)] = schema
        for schema in schemas.values():
            note_schema(dataset_dir, schema)
        unknown.unlink(missing_ok=True)  # every part's schema is recorded now
        out[dataset_dir.name] = len(list(folder.glob("*.json")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fgsarchive.migrate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("db", type=Path, help="the archive's DuckDB file")
    opts = parser.parse_args(argv)
    try:
        report = migrate(Database(opts.db))
    except FgsArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    if report.steps:
        print(
            f"{opts.db}: schema version {report.from_version} -> {report.to_version} "
            f"({', '.join(report.steps)})"
        )
    else:
        print(f"{opts.db}: schema version {report.to_version}, up to date")
    for dataset, n in report.part_schemas.items():
        print(f"{dataset}: recorded {n} part schema(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
