"""Find guide-star products on MAST, download them into a cache and ingest them into the archive.

Three entry points:

* :func:`ingest_programs` -- ``fgsarchive ingest PROGRAM...``: discover the programs' guider files
  through ``Mast.Jwst.Filtered.GuideStar``, download them (bounded parallel, resumable) and ingest
  them with :func:`fgsarchive.ingest.ingest_paths`.
* :func:`crawl` -- ``fgsarchive crawl``: the same for every program, by date windows of
  ``date_obs_mjd``; per-window state (``crawl_windows``) and per-file state (``mast_files``) make an
  interrupted crawl resume without repeating finished work.
* :func:`serve_and_ingest` -- the demo hook: the whole real path against the loopback MAST server.

State lives in the archive (``sql/schema_crawl.sql``): ``mast_files`` keeps every MAST row (as JSON)
and what became of its file: ``listed`` -> ``downloaded`` -> ``ingested``, or ``failed``,
``unsafe`` (a name that is not a plain guider file name: never written), ``auth`` (refused: token
missing, expired or without rights). The MAST token is never stored, printed or logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .config import Settings
from .db import Database
from .errors import UsageError
from .ingest import IngestReport, ingest_paths
from .mast import (
    ALL_EXP_TYPES,
    MastAuthError,
    MastClient,
    MastConfig,
    MastUnavailableError,
    summarize_row,
)
from .names import parse_product_name

__all__ = [
    "CrawlReport",
    "ServeReport",
    "PRODUCT_SETS",
    "crawl",
    "ingest_programs",
    "ingest_programs_cli",
    "mast_config",
    "parse_date",
    "parse_program",
    "serve_and_ingest",
]

log = logging.getLogger(__name__)

#: ``--products``: fg = fine-guide cal files only; all = every guider product (ID, ACQ, TRACK, FG).
PRODUCT_SETS: dict[str, tuple[str, ...]] = {"fg": ("FGS_FINEGUIDE",), "all": ALL_EXP_TYPES}
#: ``fgsarchive crawl`` gives up on a file that failed in this many runs (``ingest`` always retries).
MAX_ATTEMPTS = 3
#: First day of JWST science operations (2022-07-12), the default start of ``fgsarchive crawl``.
JWST_SCIENCE_START_MJD = 59772.0
#: A crawl window that ends later than this many days before now is queried again on the next run.
OPEN_WINDOW_DAYS = 1.0
_MJD_EPOCH = dt.datetime(1858, 11, 17)

MAST_FILES_SCHEMA = pa.schema(
    [
        ("file_name", pa.string()),
        ("program", pa.int32()),
        ("observation", pa.int32()),
        ("visit", pa.int32()),
        ("exp_type", pa.string()),
        ("product", pa.string()),
        ("gs_id", pa.string()),
        ("date_obs_mjd", pa.float64()),
        ("date_end_mjd", pa.float64()),
        ("file_size", pa.int64()),
        ("checksum", pa.string()),
        ("is_restricted", pa.bool_()),
        ("state", pa.string()),
        ("error", pa.string()),
        ("row_json", pa.string()),
        ("updated_at", pa.timestamp("us")),
    ]
)
UPDATES_SCHEMA = pa.schema(
    [
        ("file_name", pa.string()),
        ("state", pa.string()),
        ("error", pa.string()),
        ("local_path", pa.string()),
        ("attempt", pa.int32()),
        ("updated_at", pa.timestamp("us")),
    ]
)

# (stage, done, total): stage is "download" (bytes) or "ingest" (files).
ProgressCallback = Callable[[str, int, int | None], None]


# --------------------------------------------------------------------------------------------------
# Arguments and configuration
# --------------------------------------------------------------------------------------------------


def parse_program(text: object) -> int:
    """A JWST program id: 1 to 5 digits, optionally ``jw``-prefixed (``1534``, ``01534``, ``jw01534``)."""
    value = str(text).strip()
    digits = value[2:] if value.lower().startswith("jw") else value
    if not re.fullmatch(r"\d{1,5}", digits, re.ASCII) or int(digits) == 0:
        raise UsageError(
            f"malformed program id {value[:40]!r}: expected a JWST program number of 1 to 5 digits "
            "(e.g. 1534)"
        )
    return int(digits)


def _check_number(label: str, value: int | None, high: int) -> int | None:
    if value is not None and not 1 <= int(value) <= high:
        raise UsageError(f"{label} {value}: expected a number from 1 to {high}")
    return None if value is None else int(value)


def _exp_types(products: str) -> tuple[str, ...]:
    try:
        return PRODUCT_SETS[str(products).lower()]
    except KeyError:
        raise UsageError(f"--products {products!r}: choose fg or all") from None


def parse_date(text: str | float, label: str = "date") -> float:
    """``2022-12-04``, ``2022-12-04T10:00:00`` (UTC) or an MJD (``59917.5``) -> MJD UTC."""
    if isinstance(text, int | float):
        return float(text)
    value = str(text).strip()
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if not 40000.0 <= number <= 100000.0:
            raise UsageError(f"{label} {value!r}: an MJD must lie between 40000 and 100000")
        return number
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{label} {value!r}: expected a date (2022-12-04, 2022-12-04T10:00:00) or an MJD"
        ) from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return (when - _MJD_EPOCH).total_seconds() / 86400.0


def _now_mjd() -> float:
    return (dt.datetime.now(dt.UTC).replace(tzinfo=None) - _MJD_EPOCH).total_seconds() / 86400.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _env_number(name: str, kind: type = float) -> Any:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    try:
        number = kind(value)
    except ValueError:
        raise UsageError(f"${name}={value!r}: expected a number") from None
    if number < 0:
        raise UsageError(f"${name}={value!r}: must not be negative")
    return number


def mast_config(token: str | None = None, **overrides: Any) -> MastConfig:
    """MastConfig for the CLI: URLs from ``FGSARCHIVE_MAST_URL``/``FGSARCHIVE_GSC_URL``, the token
    from ``token`` or ``MAST_API_TOKEN``, and the retry policy from the environment when set:
    ``FGSARCHIVE_MAST_RETRIES`` (max retries), ``FGSARCHIVE_MAST_BACKOFF`` (first backoff, s),
    ``FGSARCHIVE_MAST_TIMEOUT`` (per request, s), ``FGSARCHIVE_MAST_POLL`` (EXECUTING poll, s)."""
    env = {
        "max_retries": _env_number("FGSARCHIVE_MAST_RETRIES", int),
        "backoff_s": _env_number("FGSARCHIVE_MAST_BACKOFF"),
        "timeout_s": _env_number("FGSARCHIVE_MAST_TIMEOUT"),
        "poll_interval_s": _env_number("FGSARCHIVE_MAST_POLL"),
    }
    kwargs = {k: v for k, v in env.items() if v is not None}
    kwargs.update(overrides)
    try:
        return MastConfig(token=token or None, **kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _printable(name: object, limit: int = 200) -> str:
    """A hostile name as safe text for the archive (escaped, bounded); never used as a path."""
    text = name if isinstance(name, str) else repr(name)
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "t", "yes", "y")
    return bool(value)


# --------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------


@dataclass
class CrawlReport:
    """What an ``ingest PROGRAM`` or ``crawl`` run did."""

    programs: list[int] = field(default_factory=list)
    listed: int = 0  # distinct files MAST listed (this run's queries or recorded windows)
    downloaded: list[str] = field(default_factory=list)  # fetched now
    cached: list[str] = field(default_factory=list)  # complete in the cache: no request
    skipped: list[str] = field(default_factory=list)  # already ingested: not downloaded again
    failed: dict[str, str] = field(default_factory=dict)  # download or ingest failed
    auth: dict[str, str] = field(default_factory=dict)  # refused: token missing/expired/no rights
    unavailable: dict[str, str] = field(default_factory=dict)  # MAST down after the retries
    unsafe: dict[str, str] = field(default_factory=dict)  # rejected names -> reason
    no_data: list[int] = field(default_factory=list)  # programs with no guide-star data on MAST
    ingest: IngestReport = field(default_factory=IngestReport)
    windows_queried: int = 0
    windows_skipped: int = 0  # done in an earlier run, not queried again
    windows_done: int = 0
    stopped_at_limit: bool = False
    seconds: float = 0.0

    def merge_ingest(self, other: IngestReport) -> None:
        self.ingest.ingested.extend(other.ingested)
        self.ingest.skipped.extend(other.skipped)
        self.ingest.failed.update(other.failed)
        self.ingest.n_frames += other.n_frames
        self.ingest.n_bytes += other.n_bytes
        self.ingest.seconds += other.seconds


# --------------------------------------------------------------------------------------------------
# mast_files bookkeeping
# --------------------------------------------------------------------------------------------------


def _mast_file_record(row: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    info = summarize_row(row)
    parsed = parse_product_name(str(info["file_name"]))
    return {
        "file_name": info["file_name"],
        "program": info["program"] if parsed is None else parsed.program,
        "observation": info["observation"] if parsed is None else parsed.observation,
        "visit": info["visit"] if parsed is None else parsed.visit,
        "exp_type": info["exp_type"],
        "product": None if parsed is None else parsed.product,
        "gs_id": None if info["gs_id"] is None else str(info["gs_id"]),
        "date_obs_mjd": info["date_obs_mjd"],
        "date_end_mjd": info["date_end_mjd"],
        "file_size": info["file_size"],
        "checksum": info["checksum"],
        "is_restricted": _truthy(row.get("isRestricted")),
        "state": "listed",
        "error": None,
        "row_json": json.dumps(row, default=str, sort_keys=True),
        "updated_at": now,
    }


def _unsafe_record(row: Mapping[str, Any], reason: str, now: dt.datetime) -> dict[str, Any]:
    info = summarize_row({k: v for k, v in row.items() if k != "fileName"})
    return {
        "file_name": _printable(row.get("fileName")),
        "program": info["program"],
        "observation": info["observation"],
        "visit": info["visit"],
        "exp_type": info["exp_type"],
        "product": None,
        "gs_id": None if info["gs_id"] is None else str(info["gs_id"]),
        "date_obs_mjd": info["date_obs_mjd"],
        "date_end_mjd": info["date_end_mjd"],
        "file_size": info["file_size"],
        "checksum": info["checksum"],
        "is_restricted": _truthy(row.get("isRestricted")),
        "state": "unsafe",
        "error": f"unsafe file name: {reason}",
        "row_json": json.dumps(row, default=str, sort_keys=True),
        "updated_at": now,
    }


def _record_rows(
    db: Database,
    rows: Sequence[Mapping[str, Any]],
    unsafe: Sequence[tuple[Mapping[str, Any], str]] = (),
    *,
    window: tuple[float, float, str, int] | None = None,
) -> None:
    """Upsert MAST rows (and rejected rows) into mast_files, and a window state, in one transaction."""
    now = _utcnow()
    records: dict[str, dict[str, Any]] = {}
    for row in rows:
        record = _mast_file_record(row, now)
        records.setdefault(record["file_name"], record)
    for row, reason in unsafe:
        record = _unsafe_record(row, reason, now)
        records.setdefault(record["file_name"], record)
    with db.writer() as con:
        if records:
            table = pa.Table.from_pylist(list(records.values()), schema=MAST_FILES_SCHEMA)
            db.run(con, "crawl_files_upsert", new_rows=table)
        if window is not None:
            start, end, state, n_files = window
            db.run(
                con,
                "crawl_windows_set",
                {
                    "start_mjd": start,
                    "end_mjd": end,
                    "state": state,
                    "n_files": n_files,
                    "updated_at": now,
                },
            )


def _set_states(db: Database, updates: Sequence[dict[str, Any]]) -> None:
    if not updates:
        return
    now = _utcnow()
    rows = [
        {
            "file_name": u["file_name"],
            "state": u["state"],
            "error": u.get("error"),
            "local_path": u.get("local_path"),
            "attempt": int(u.get("attempt", 0)),
            "updated_at": now,
        }
        for u in updates
    ]
    with db.writer() as con:
        db.run(
            con, "crawl_files_set_state", updates=pa.Table.from_pylist(rows, schema=UPDATES_SCHEMA)
        )


def _lookup(db: Database, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not names or not db.path.exists():
        return {}
    with db.reader() as con:
        result = db.run(con, "crawl_files_lookup", {"names": list(names)})
        columns = [d[0] for d in result.description]
        return {r[0]: dict(zip(columns, r, strict=True)) for r in result.fetchall()}


# --------------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------------


def _query(
    client: MastClient, program: int | None, **kwargs: Any
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """GuideStar rows (deduplicated, safe names) and the rejected rows; warnings become our reports."""
    unsafe: list[tuple[dict[str, Any], str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no-results and unsafe-name warnings: reported by caller
        rows = client.query_guide_star_files(program, unsafe_rows=unsafe, **kwargs)
    return rows, unsafe


# --------------------------------------------------------------------------------------------------
# Download and ingest
# --------------------------------------------------------------------------------------------------


def _cache_dir_for(cache_dir: Path, program: int | None) -> Path:
    return Path(cache_dir) / (f"jw{program:05d}" if program is not None else "other")


def _complete_in_cache(path: Path, size: int | None) -> bool:
    try:
        return path.is_file() and (size is None or path.stat().st_size == size)
    except OSError:
        return False


def _fetch_and_ingest(
    db: Database,
    client: MastClient,
    rows: Sequence[Mapping[str, Any]],
    report: CrawlReport,
    *,
    cache_dir: Path,
    workers: int,
    force: bool,
    retry_failed: bool = True,
    public_only: bool = False,
    progress: ProgressCallback | None = None,
) -> None:
    """Download what is not yet in the archive (or cache) and ingest it; update mast_files states."""
    by_name = {str(r["fileName"]): r for r in rows}
    known = _lookup(db, list(by_name))
    todo: list[Mapping[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for name, row in by_name.items():
        info = known.get(name, {})
        size = summarize_row(row)["file_size"]
        in_archive = info.get("file_status") == "ingested" and (
            size is None or info.get("file_bytes") == size
        )
        if in_archive and not force:
            report.skipped.append(name)
            if info.get("state") != "ingested":
                updates.append({"file_name": name, "state": "ingested"})
            continue
        state = info.get("state")
        if state == "failed" and not retry_failed and (info.get("attempts") or 0) >= MAX_ATTEMPTS:
            report.failed[name] = (
                "gave up after earlier attempts (run `fgsarchive ingest` to retry)"
            )
            continue
        if public_only and _truthy(row.get("isRestricted")) and not client.config.token:
            reason = "exclusive access: needs a MAST token with rights to this program"
            report.auth[name] = reason
            updates.append({"file_name": name, "state": "auth", "error": reason})
            continue
        todo.append(row)
    _set_states(db, updates)
    if not todo:
        return

    # download, grouped by program (one cache folder each), bounded parallel
    by_program: dict[int | None, list[Mapping[str, Any]]] = {}
    for row in todo:
        parsed = parse_product_name(str(row["fileName"]))
        by_program.setdefault(parsed.program if parsed else None, []).append(row)
    total_bytes = sum(summarize_row(r)["file_size"] or 0 for r in todo)
    done_bytes: dict[str, int] = {}
    lock = threading.Lock()
    running = [0]

    def on_bytes(name: str, done: int, total: int | None) -> None:  # called from worker threads
        with lock:
            running[0] += done - done_bytes.get(name, 0)
            done_bytes[name] = done
            so_far = running[0]
        if progress is not None:
            progress("download", so_far, total_bytes or None)

    paths: list[Path] = []
    updates = []
    for program, group in by_program.items():
        dest = _cache_dir_for(cache_dir, program)
        sizes = {str(r["fileName"]): summarize_row(r)["file_size"] for r in group}
        checksums = {str(r["fileName"]): summarize_row(r)["checksum"] for r in group}
        cached = {n for n, s in sizes.items() if _complete_in_cache(dest / n, s)}
        outcomes = client.parallel_download(
            list(sizes),
            dest,
            workers=workers,
            expected_sizes={n: s for n, s in sizes.items() if s is not None},
            checksums={n: c for n, c in checksums.items() if c},
            progress=on_bytes if progress is not None else None,
        )
        for outcome in outcomes:
            name = outcome.name
            if outcome.ok and outcome.path is not None:
                (report.cached if name in cached else report.downloaded).append(name)
                paths.append(outcome.path)
                updates.append(
                    {"file_name": name, "state": "downloaded", "local_path": str(outcome.path)}
                )
                continue
            reason = f"download: {outcome.reason or outcome.error_type or 'failed'}"
            if outcome.error_type == "MastAuthError":
                report.auth[name] = reason
                updates.append({"file_name": name, "state": "auth", "error": reason})
            elif outcome.error_type == "UnsafeFileNameError":
                report.unsafe[name] = reason
                updates.append({"file_name": name, "state": "unsafe", "error": reason})
            else:
                if outcome.error_type == "MastUnavailableError":
                    report.unavailable[name] = reason
                else:
                    report.failed[name] = reason
                updates.append(
                    {"file_name": name, "state": "failed", "error": reason, "attempt": 1}
                )
    _set_states(db, updates)
    if not paths:
        return

    def on_files(done: int, total: int, frames: int) -> None:
        if progress is not None:
            progress("ingest", done, total)

    ingested = ingest_paths(db, paths, workers=workers, force=force, progress=on_files)
    report.merge_ingest(ingested)
    updates = [{"file_name": n, "state": "ingested"} for n in ingested.ingested + ingested.skipped]
    for name, reason in ingested.failed.items():
        report.failed[name] = reason
        updates.append({"file_name": name, "state": "failed", "error": reason, "attempt": 1})
    _set_states(db, updates)


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _batch_size(workers: int) -> int:
    return max(8, 4 * workers)


def _client(client: MastClient | None, config: MastConfig | None) -> tuple[MastClient, bool]:
    if client is not None:
        return client, False
    return MastClient(config or mast_config()), True


# --------------------------------------------------------------------------------------------------
# ingest PROGRAM...
# --------------------------------------------------------------------------------------------------


def ingest_programs(
    db: Database,
    programs: Iterable[int | str],
    *,
    client: MastClient | None = None,
    config: MastConfig | None = None,
    obs: int | None = None,
    visit: int | None = None,
    products: str = "fg",
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 2,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> CrawlReport:
    """Discover, download and ingest the guide-star files of some programs.

    Every program is discovered before anything is downloaded, so a MAST outage raises
    :class:`MastUnavailableError` with nothing written. Files already ingested are not downloaded
    again; files complete in the cache are not requested again. Raises :class:`UsageError` on a
    malformed program id, observation, visit or product set.
    """
    started = time.perf_counter()
    ids = list(dict.fromkeys(parse_program(p) for p in programs))
    obs = _check_number("--obs", obs, 999)
    visit = _check_number("--visit", visit, 999)
    exp_types = _exp_types(products)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    cache = Path(cache_dir) if cache_dir is not None else Settings().cache_dir
    report = CrawlReport(programs=ids)
    mast, own = _client(client, config)
    try:
        found: list[tuple[int, list[dict[str, Any]], list[tuple[dict[str, Any], str]]]] = []
        for program in ids:
            rows, unsafe = _query(mast, program, observation=obs, visit=visit, exp_types=exp_types)
            found.append((program, rows, unsafe))
        for program, rows, unsafe in found:
            for row, reason in unsafe:
                report.unsafe[_printable(row.get("fileName"))] = reason
            if not rows:
                report.no_data.append(program)
            if rows or unsafe:
                _record_rows(db, rows, unsafe)
            report.listed += len(rows)
        for _program, rows, _ in found:
            for batch in _batches(rows, _batch_size(workers)):
                _fetch_and_ingest(
                    db,
                    mast,
                    batch,
                    report,
                    cache_dir=cache,
                    workers=workers,
                    force=force,
                    progress=progress,
                )
    finally:
        if own:
            mast.close()
    report.seconds = time.perf_counter() - started
    return report


def _raise_remote(
    report: CrawlReport, *, programs: Sequence[int], token_given: bool, auth: bool = True
) -> None:
    """One-line error (exit 4) when MAST refused files or stayed down after the retries."""
    if auth and report.auth:
        refused = sorted({p.program for p in map(parse_product_name, report.auth) if p is not None})
        which = ", ".join(str(p) for p in (refused or programs))
        if token_given:
            why = "the MAST token given was refused: it is expired, invalid or lacks rights"
        else:
            why = "no MAST token was given (--token or MAST_API_TOKEN) and the files need one"
        raise MastAuthError(
            f"MAST refused {len(report.auth)} file(s) of program {which}: {why} for program "
            f"{which}; get a token at https://auth.mast.stsci.edu/token"
        )
    if report.unavailable:
        first = next(iter(report.unavailable.values()))
        raise MastUnavailableError(
            f"{len(report.unavailable)} file(s) could not be downloaded: MAST unavailable after "
            f"the retries ({first}); re-run the same command to resume"
        )


def _progress_cli() -> tuple[Any, ProgressCallback | None]:
    """A rich progress display on stderr (download: bytes, ingest: files), or none."""
    from .cli.common import err, show_progress

    if not show_progress():
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    display = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        console=err,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage == "download":
            count = f"{done / 1e6:,.1f}/{(total or 0) / 1e6:,.1f} MB"
        else:
            count = f"{done}/{total or 0} files"
        if stage not in tasks:
            tasks[stage] = display.add_task(stage, total=total, count=count)
        display.update(tasks[stage], completed=done, total=total, count=count)

    return display, update


class _QuietDownloadFailures(logging.Filter):
    """Drop the client's per-file "download failed" warnings: the CLI summarises them (one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "download failed" not in str(record.msg)


@contextlib.contextmanager
def _cli_session() -> Iterator[ProgressCallback | None]:
    """Progress display and log filtering for one CLI command (details stay with --verbose)."""
    from .cli.common import state

    mast_log = logging.getLogger("fgsarchive.mast")
    quiet = None if state.verbose else _QuietDownloadFailures()
    if quiet is not None:
        mast_log.addFilter(quiet)
    display, update = _progress_cli()
    if display is not None:
        display.start()
    try:
        yield update
    finally:
        if display is not None:
            display.stop()
        if quiet is not None:
            mast_log.removeFilter(quiet)


def _warn(text: str) -> None:
    from .cli.common import err

    err.print(f"[yellow]warning:[/yellow] {text}", markup=True, highlight=False)


def _report_cli(report: CrawlReport) -> None:
    from .cli.common import err

    for program in report.no_data:
        _warn(f"no guide-star data found for program {program}")
    if report.unsafe:
        first = next(iter(report.unsafe.items()))
        _warn(
            f"rejected {len(report.unsafe)} unsafe file name(s) from MAST (nothing written): "
            f"{first[0]} ({first[1]})"
        )
    ing = report.ingest
    err.print(
        f"MAST listed {report.listed} file(s): downloaded {len(report.downloaded)}, "
        f"{len(report.cached)} already in the cache, {len(report.skipped)} already in the archive; "
        f"ingested {len(ing.ingested)} ({ing.n_frames:,} frames); failed {len(report.failed)} "
        f"in {report.seconds:.1f} s",
        highlight=False,
    )


def ingest_programs_cli(
    db_path: Path | str,
    programs: Sequence[str],
    *,
    obs: int | None = None,
    visit: int | None = None,
    products: str = "fg",
    workers: int = 2,
    cache: Path | None = None,
    token: str | None = None,
    force: bool = False,
) -> dict[str, str]:
    """``fgsarchive ingest PROGRAM...``: progress and one-line summaries on stderr.

    Returns ``{file_name: reason}`` of files that failed to download or ingest (the caller exits
    1 naming them); raises a :class:`MastError` (exit 4) when MAST is down or refuses the token.
    """
    from .cli.common import open_db, retry_notice

    ids = [parse_program(p) for p in programs]  # usage errors before any request
    config = mast_config(token, on_retry=retry_notice)
    db = open_db(Path(db_path))
    with _cli_session() as update:
        report = ingest_programs(
            db,
            ids,
            config=config,
            obs=obs,
            visit=visit,
            products=products,
            cache_dir=cache,
            workers=workers,
            force=force,
            progress=update,
        )
    _report_cli(report)
    _raise_remote(report, programs=ids, token_given=bool(config.token))
    return dict(report.failed)


# --------------------------------------------------------------------------------------------------
# crawl by date windows
# --------------------------------------------------------------------------------------------------


def plan_windows(
    since_mjd: float, until_mjd: float, window_days: float
) -> list[tuple[float, float]]:
    """Consecutive ``[start, end]`` windows of ``window_days`` from ``since`` to ``until``.

    Window edges lie on a grid of ``window_days`` from MJD 0 (rounded to 1e-6 d), so the same
    windows come back whatever ``since`` a later run gives.
    """
    if not window_days > 0:
        raise UsageError(f"--window-days must be positive (got {window_days})")
    if not until_mjd > since_mjd:
        raise UsageError(f"--until ({until_mjd:.5f}) must be after --since ({since_mjd:.5f})")
    k0 = math.floor(since_mjd / window_days + 1e-9)
    k1 = math.ceil(until_mjd / window_days - 1e-9)
    if k1 - k0 > 100000:
        raise UsageError("too many windows: raise --window-days")
    return [
        (round(k * window_days, 6), round((k + 1) * window_days, 6))
        for k in range(k0, max(k1, k0 + 1))
    ]


def _covered(start: float, end: float, done: Sequence[tuple[float, float]]) -> bool:
    """True when the union of ``done`` windows covers [start, end]."""
    t = start
    for s, e in sorted(done):
        if s > t + 1e-9:
            break
        t = max(t, e)
        if t >= end - 1e-9:
            return True
    return t >= end - 1e-9


def crawl(
    db: Database,
    *,
    client: MastClient | None = None,
    config: MastConfig | None = None,
    since_mjd: float | None = None,
    until_mjd: float | None = None,
    window_days: float = 7.0,
    limit: int | None = None,
    products: str = "fg",
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 2,
    refresh: bool = False,
    progress: ProgressCallback | None = None,
) -> CrawlReport:
    """Enumerate guide-star files of public programs by date windows; download and ingest them.

    Resumable at any point: a window whose files are all done is marked ``done`` and not queried
    again (``refresh`` re-queries); a window already queried (``listed``) continues from the rows
    recorded in ``mast_files``; downloaded files are not requested again (complete in the cache);
    ingested files are skipped. Windows reaching into the last day stay ``open`` (queried again).
    Files of exclusive-access programs are marked ``auth`` without a request unless a token is set.
    ``limit`` caps the files downloaded or ingested in this run.
    """
    started = time.perf_counter()
    since = JWST_SCIENCE_START_MJD if since_mjd is None else float(since_mjd)
    until = _now_mjd() if until_mjd is None else float(until_mjd)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1 (got {limit})")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    exp_types = _exp_types(products)
    windows = plan_windows(since, until, window_days)
    cache = Path(cache_dir) if cache_dir is not None else Settings().cache_dir
    report = CrawlReport()
    known: dict[tuple[float, float], str] = {}
    if db.path.exists():
        with db.reader() as con:
            for s, e, state, _n in db.run(con, "crawl_windows_get").fetchall():
                known[(s, e)] = state
    done = [w for w, state in known.items() if state == "done"]
    budget = limit
    now_mjd = _now_mjd()
    mast, own = _client(client, config)
    try:
        for start, end in windows:
            if not refresh and _covered(start, end, done):
                report.windows_skipped += 1
                continue
            if known.get((start, end)) == "listed" and not refresh:
                with db.reader() as con:
                    recorded = db.run(
                        con,
                        "crawl_files_in_window",
                        {"start_mjd": start, "end_mjd": end, "exp_types": list(exp_types)},
                    ).fetchall()
                rows = [json.loads(r[1]) for r in recorded]
            else:
                rows, unsafe = _query(
                    mast, None, exp_types=exp_types, date_min_mjd=start, date_max_mjd=end
                )
                report.windows_queried += 1
                for row, reason in unsafe:
                    report.unsafe[_printable(row.get("fileName"))] = reason
                _record_rows(db, rows, unsafe, window=(start, end, "listed", len(rows)))
            report.listed += len(rows)
            for row in rows:
                parsed = parse_product_name(str(row["fileName"]))
                if parsed is not None and parsed.program not in report.programs:
                    report.programs.append(parsed.program)

            pending = _pending(db, rows, retry_auth=bool(mast.config.token))
            for batch in _batches(pending, _batch_size(workers)):
                if budget is not None and budget <= 0:
                    break
                if budget is not None:
                    batch = batch[:budget]
                _fetch_and_ingest(
                    db,
                    mast,
                    batch,
                    report,
                    cache_dir=cache,
                    workers=workers,
                    force=False,
                    retry_failed=False,
                    public_only=True,
                    progress=progress,
                )
                if budget is not None:
                    budget -= len(batch)
            if _pending(db, rows, retry_auth=True):
                # files left to retry (or refused for want of a token): the window stays 'listed'
                # and later runs continue from mast_files without asking MAST again
                report.stopped_at_limit = budget is not None and budget <= 0
                if report.stopped_at_limit:
                    break
                continue
            state = "open" if end > now_mjd - OPEN_WINDOW_DAYS else "done"
            with db.writer() as con:
                db.run(
                    con,
                    "crawl_windows_set",
                    {
                        "start_mjd": start,
                        "end_mjd": end,
                        "state": state,
                        "n_files": len(rows),
                        "updated_at": _utcnow(),
                    },
                )
            report.windows_done += state == "done"
            if budget is not None and budget <= 0:
                report.stopped_at_limit = True
                break
    finally:
        if own:
            mast.close()
    report.seconds = time.perf_counter() - started
    return report


def _pending(
    db: Database, rows: Sequence[Mapping[str, Any]], *, retry_auth: bool
) -> list[Mapping[str, Any]]:
    """Rows of a window whose files are not finished: not ingested, not given up on."""
    by_name = {str(r["fileName"]): r for r in rows}
    known = _lookup(db, list(by_name))
    out = []
    for name, row in by_name.items():
        info = known.get(name, {})
        state = info.get("state")
        if info.get("file_status") == "ingested" or state in ("ingested", "unsafe"):
            continue
        if state == "failed" and (info.get("attempts") or 0) >= MAX_ATTEMPTS:
            continue
        if state == "auth" and not retry_auth:
            continue
        out.append(row)
    return out


def crawl_cli(
    db_path: Path | str,
    *,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
    window_days: float = 7.0,
    products: str = "fg",
    workers: int = 2,
    cache: Path | None = None,
    token: str | None = None,
    refresh: bool = False,
) -> CrawlReport:
    """``fgsarchive crawl``: progress and one-line summaries on stderr."""
    from .cli.common import err, open_db, retry_notice

    since_mjd = parse_date(since, "--since") if since is not None else None
    until_mjd = parse_date(until, "--until") if until is not None else None
    _exp_types(products)
    config = mast_config(token, on_retry=retry_notice)
    db = open_db(Path(db_path))
    with _cli_session() as update:
        report = crawl(
            db,
            config=config,
            since_mjd=since_mjd,
            until_mjd=until_mjd,
            window_days=window_days,
            limit=limit,
            products=products,
            cache_dir=cache,
            workers=workers,
            refresh=refresh,
            progress=update,
        )
    _report_cli(report)
    err.print(
        f"windows: {report.windows_queried} queried, {report.windows_skipped} done before, "
        f"{report.windows_done} finished now; {len(report.programs)} program(s)"
        + ("; stopped at --limit: re-run to continue" if report.stopped_at_limit else ""),
        highlight=False,
    )
    if report.auth and not config.token:
        _warn(
            f"{len(report.auth)} file(s) are exclusive access and were skipped "
            "(give --token or MAST_API_TOKEN with rights to them)"
        )
    _raise_remote(
        report, programs=report.programs, token_given=bool(config.token), auth=bool(config.token)
    )
    return report


# --------------------------------------------------------------------------------------------------
# Demo hook: the whole real path against the loopback server
# --------------------------------------------------------------------------------------------------


@dataclass
class ServeReport(IngestReport):
    """:class:`IngestReport` of :func:`serve_and_ingest`, plus what the other steps did."""

    listed: int = 0
    downloaded: int = 0
    cached: int = 0
    telemetry_rows: int = 0
    telemetry_windows: int = 0
    events: dict[str, int] = field(default_factory=dict)
    stars: dict[str, int] = field(default_factory=dict)
    server_stats: dict[str, Any] = field(default_factory=dict)


def _products_span(products_dir: Path) -> tuple[float, float] | None:
    """(min DATASTRT, max DATAEND) of the guider files under ``products_dir`` (headers only)."""
    from astropy.io import fits

    from .names import looks_like_guider_file

    starts, ends = [], []
    for path in Path(products_dir).rglob("jw*_gs-*.fits"):
        if not looks_like_guider_file(path.name):
            continue
        try:
            header = fits.getheader(path)
        except (OSError, ValueError):
            continue
        s, e = header.get("DATASTRT"), header.get("DATAEND")
        if isinstance(s, int | float) and isinstance(e, int | float):
            starts.append(float(s))
            ends.append(float(e))
    return (min(starts), max(ends)) if starts else None


def serve_and_ingest(
    db: Database | str | os.PathLike[str],
    products_dir: Any,
    *,
    program: int | None = None,
    telemetry: Any = None,
    catalog: Any = None,
    cache_dir: str | os.PathLike[str],
    workers: int = 2,
    products: str = "all",
    faults: Any = None,
    progress: ProgressCallback | None = None,
) -> ServeReport:
    """Serve ``products_dir`` from :class:`MastTestServer` on 127.0.0.1 and run the real path:
    discover -> download (into ``cache_dir``) -> ingest, then EDB telemetry, derive_events and the
    guide-star catalog look-up, all through :class:`MastClient`.

    ``products_dir``: a folder of guider files, or a :class:`~fgsarchive.simulate.SimulatedProgram`
    (then ``program``, ``telemetry`` and ``catalog`` default to its program, telemetry truth and
    star table). ``program``: the program to ingest (default: the only one in the folder).
    ``telemetry``: the simulator's telemetry truth (polars frame or truth dir, converted to EDB
    series of SA_ZHGAUPST and INIS_FWMTRCURR over the files' span) or a ready
    ``{mnemonic: (times_mjd, values)}``. ``catalog``: the simulator's star table (polars frame,
    converted to GSC rows) or GSC rows as :class:`MastTestServer` takes them. ``faults``: an optional
    :class:`~fgsarchive.testing.mast_server.FaultPlan`.
    """
    from .guidestars import lookup_stars, simulated_catalog
    from .names import looks_like_guider_file
    from .telemetry import derive_events, fetch_telemetry, simulated_edb
    from .testing.mast_server import MastTestServer

    database = db if isinstance(db, Database) else Database(Path(db))
    if hasattr(products_dir, "out_dir") and hasattr(products_dir, "program"):  # SimulatedProgram
        sim = products_dir
        program = sim.program if program is None else program
        telemetry = sim.telemetry if telemetry is None else telemetry
        catalog = sim.stars if catalog is None else catalog
        products_dir = sim.out_dir
    products_dir = Path(products_dir)
    if program is None:
        found = {
            parsed.program
            for path in products_dir.rglob("jw*_gs-*.fits")
            if looks_like_guider_file(path.name)
            and (parsed := parse_product_name(path.name)) is not None
        }
        if len(found) != 1:
            raise UsageError(f"{products_dir}: give program= (found programs {sorted(found)})")
        program = found.pop()
    edb: dict[str, tuple[list[float], list[Any]]] = {}
    if telemetry is not None:
        if isinstance(telemetry, Mapping):
            edb = {str(k): (list(t), list(v)) for k, (t, v) in telemetry.items()}
        else:
            span = _products_span(products_dir)
            if span is not None:
                edb = simulated_edb(telemetry, span[0], span[1])
    gsc = None
    if catalog is not None:
        gsc = catalog if isinstance(catalog, Mapping | list | tuple) else simulated_catalog(catalog)

    with MastTestServer(
        products_dir=products_dir, telemetry=edb, catalog=gsc, faults=faults, checksums=True
    ) as srv:
        config = MastConfig(
            mast_url=srv.url,
            gsc_url=srv.url,
            poll_interval_s=0.02,
            backoff_s=0.02,
            backoff_max_s=0.5,
            timeout_s=30.0,
        )
        # never send a token from the environment to the loopback server
        object.__setattr__(config, "token", None)
        with MastClient(config) as client:
            crawl_report = ingest_programs(
                database,
                [program],
                client=client,
                products=products,
                cache_dir=cache_dir,
                workers=workers,
                progress=progress,
            )
            tel = fetch_telemetry(database, client, list(edb) or None) if edb else None
            events = derive_events(database)
            stars = lookup_stars(database, client) if gsc is not None else None
        stats = srv.stats

    ing = crawl_report.ingest
    out = ServeReport(
        ingested=list(ing.ingested),
        skipped=list(ing.skipped) + list(crawl_report.skipped),
        failed={**crawl_report.failed, **crawl_report.auth, **crawl_report.unavailable},
        n_frames=ing.n_frames,
        n_bytes=ing.n_bytes,
        seconds=crawl_report.seconds,
        listed=crawl_report.listed,
        downloaded=len(crawl_report.downloaded),
        cached=len(crawl_report.cached),
        telemetry_rows=tel.rows if tel else 0,
        telemetry_windows=tel.fetched_windows if tel else 0,
        events=events,
        stars=stars.counts if stars else {},
        server_stats=stats,
    )
    return out
