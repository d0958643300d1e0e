"""The exception tree of fgsarchive and the CLI exit codes it maps to.

Every error names what failed and where (file, URL path, table) in one line, so the CLI can
print ``str(err)`` alone; the traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes of the ``fgsarchive`` command."""

    OK = 0
    FAILED = 1  # the command ran, but some inputs failed (named in the summary)
    USAGE = 2  # bad arguments or options
    ARCHIVE = 3  # the archive cannot be opened, read or written
    REMOTE = 4  # MAST / EDB / GSC unreachable or refused


class FgsArchiveError(Exception):
    """Root of every error fgsarchive raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


class UsageError(FgsArchiveError):
    """An option or argument is invalid (the message lists what is valid)."""

    exit_code = ExitCode.USAGE


class ArchiveError(FgsArchiveError):
    """The archive (DuckDB file and its Parquet parts) cannot be opened, read or written."""

    exit_code = ExitCode.ARCHIVE


class ArchiveLockedError(ArchiveError):
    """Another process held the archive's write lock for longer than the wait allowed."""


class SchemaVersionError(ArchiveError):
    """The archive was made by a different schema version than this fgsarchive understands."""


class QueryError(ArchiveError):
    """A user query failed (syntax error, refused write, missing table)."""

    exit_code = ExitCode.USAGE


class SelectionError(FgsArchiveError):
    """A selection (program, visit, guide star, parameter) matched nothing or is not valid."""

    exit_code = ExitCode.USAGE


class GuiderFileError(FgsArchiveError):
    """A guider file cannot be read: not FITS, truncated, wrong layout or shape."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class IngestError(FgsArchiveError):
    """Some files failed to download or ingest; the others went in."""

    def __init__(self, failed: dict[str, str]) -> None:
        self.failed = dict(failed)
        names = ", ".join(f"{name} ({why})" for name, why in sorted(self.failed.items()))
        what = (
            "failed to download or ingest"
            if any(why.startswith("download: ") for why in self.failed.values())
            else "failed to ingest"
        )
        super().__init__(f"{len(self.failed)} file(s) {what}: {names}")
