"""The exception tree of fgsarchive, its warnings, and the CLI exit codes they map to.

Every public exception and warning class lives here. Every error names what failed and where
(file, URL path, table) in one line, so the CLI can print ``str(err)`` alone; the traceback is
shown only with ``--verbose``. Exit codes (README "Exit codes"): 0 ok; 1 some inputs failed;
2 bad usage, an empty selection, or a step not run yet; 3 no archive at the path, or it cannot be
opened, read or written; 4 MAST/EDB/GSC unreachable or refused; 130 interrupted.
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


#: The command that fills each table made by a later stage (named by "not computed yet" errors).
FILLED_BY: dict[str, str] = {
    "fits": "fgsarchive fit",
    "quickfits": "fgsarchive fit",
    "photometry": "fgsarchive fit",
    "telemetry": "fgsarchive telemetry",
    "events": "fgsarchive events",
    "guide_star_catalog": "fgsarchive stars",
    "periodogram_peaks": "fgsarchive periodogram",
    "anomalies": "fgsarchive anomalies",
    "variability": "fgsarchive variables",
}


def describe_selection(**selection: object) -> str:
    """``program=1534 obs=1 visit=2`` for the keys that are set (for error messages)."""
    parts = [f"{k}={v}" for k, v in selection.items() if v is not None and v != []]
    return " ".join(parts) if parts else "(everything)"


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs collapsed), at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


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


class NotComputedError(SelectionError):
    """A table made by a later stage does not exist yet (e.g. no fits); the message names the
    command to run. Exit 2: the command was run before the step it needs."""

    def __init__(self, table: str, what: str | None = None, *, message: str | None = None) -> None:
        self.table = table
        self.command = FILLED_BY.get(table, "the stage that fills it")
        super().__init__(
            message
            or f"{what or table} not computed yet: the `{table}` table is missing; run `{self.command}`"
        )


class SchedulerError(FgsArchiveError):
    """The Dask scheduler did not answer, or the cluster extra is not installed."""


class AnalysisWarning(UserWarning):
    """Something was skipped (a series too short, a program not fitted yet, no events)."""


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


# --------------------------------------------------------------------------------------------------
# MAST, EDB and GSC
# --------------------------------------------------------------------------------------------------


class MastError(FgsArchiveError):
    """Root of errors from MAST, the EDB and the GSC. Messages are one line and name the URL path."""

    exit_code = ExitCode.REMOTE

    def __init__(self, message: str, *, path: str | None = None, status: int | None = None):
        self.path = path
        self.status = status
        super().__init__(one_line(message))


class MastServiceError(MastError):
    """MAST answered, but with an error: ERROR envelope, malformed JSON, unexpected HTTP status."""


class MastNotFoundError(MastServiceError):
    """MAST has no such product (HTTP 404)."""


class MastAuthError(MastError):
    """HTTP 401/403: the token is missing, expired, or lacks rights for what was asked."""


class MastUnavailableError(MastError):
    """MAST (or GSC) could not be reached, or kept failing, after the bounded retries."""


class DownloadIntegrityError(MastError):
    """A download finished but its size or checksum is not what MAST promised."""


class UnsafeFileNameError(MastError, ValueError):
    """A product name from MAST is not a plain guider file name; nothing is written for it."""

    exit_code = ExitCode.REMOTE

    def __init__(self, name: object, reason: str):
        self.name = name
        self.reason = reason
        shown = repr(name)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"unsafe product file name {shown}: {reason}")

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.name, self.reason))


class EdbMnemonicError(MastError):
    """The EDB does not know a mnemonic (404, empty reply or error text), or it is malformed."""


class CatalogError(MastError):
    """The Guide Star Catalog answered with an error line or HTML instead of CSV."""


class NoResultsWarning(UserWarning):
    """A query matched nothing (a warning, not an error, as in astroquery)."""


class StepsFailedError(FgsArchiveError):
    """Steps of ``crawl`` / ``ingest`` after the ingest failed; the ingest and the other steps are
    kept. Exit 4 when a remote step (EDB, GSC) failed, else 1; the message names the commands that
    re-run the failed steps."""

    def __init__(self, failures: dict[str, tuple[str, int]]) -> None:
        self.failures = dict(failures)  # step -> (command that re-runs it, exit code)
        remote = any(code == ExitCode.REMOTE for _, code in self.failures.values())
        self.exit_code = ExitCode.REMOTE if remote else ExitCode.FAILED
        steps = ", ".join(f"{step} (run `{cmd}`)" for step, (cmd, _) in self.failures.items())
        super().__init__(f"{len(self.failures)} step(s) failed, the rest is kept: {steps}")
