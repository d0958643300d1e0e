"""Crawler commands: crawl, telemetry, events, stars (``fgsarchive ingest PROGRAM`` is in core)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import (
    DEFAULT_DB_PATH,
    DbOption,
    err,
    handle_errors,
    open_db,
    progress_bar,
    retry_notice,
    show_progress,
    state,
    warn,
)

if TYPE_CHECKING:
    from ..crawl import CrawlReport

TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="MAST_API_TOKEN",
        help="MAST token (never printed, logged or stored).",
        show_default=False,
    ),
]
CacheOption = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        envvar="FGSARCHIVE_CACHE",
        help="Download cache folder (default fgsarchive-cache).",
        show_default=False,
    ),
]


def _progress_cli() -> tuple[Any, Callable[[str, int, int | None], None] | None]:
    """A rich progress display on stderr (download: bytes, ingest: files), or none."""
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
def _cli_session() -> Iterator[Callable[[str, int, int | None], None] | None]:
    """Progress display and log filtering for one CLI command (details stay with --verbose)."""
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


def _report_cli(report: CrawlReport) -> None:
    for program in report.no_data:
        warn(f"no guide-star data found for program {program}")
    if report.unsafe:
        first = next(iter(report.unsafe.items()))
        warn(
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
    from ..crawl import ingest_programs, mast_config, parse_program, raise_remote_failures

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
    raise_remote_failures(report, programs=ids, token_given=bool(config.token))
    return dict(report.failed)


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
    from ..crawl import crawl, exp_types_of, mast_config, parse_date, raise_remote_failures

    since_mjd = parse_date(since, "--since") if since is not None else None
    until_mjd = parse_date(until, "--until") if until is not None else None
    exp_types_of(products)
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
        warn(
            f"{len(report.auth)} file(s) are exclusive access and were skipped "
            "(give --token or MAST_API_TOKEN with rights to them)"
        )
    raise_remote_failures(
        report, programs=report.programs, token_given=bool(config.token), auth=bool(config.token)
    )
    return report


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def crawl(
        since: Annotated[
            str | None,
            typer.Option("--since", help="Start date (2022-12-04 or MJD) (default 2022-07-12)."),
        ] = None,
        until: Annotated[
            str | None, typer.Option("--until", help="End date (2022-12-31 or MJD) (default now).")
        ] = None,
        limit: Annotated[
            int | None,
            typer.Option("--limit", help="Download and ingest at most N files in this run."),
        ] = None,
        window_days: Annotated[
            float, typer.Option("--window-days", help="Length of one MAST query window (days).")
        ] = 7.0,
        products: Annotated[
            str, typer.Option("--products", help="fg: fine-guide only; all: every guider product.")
        ] = "fg",
        workers: Annotated[int, typer.Option("--workers", help="Parallel downloads/readers.")] = 2,
        refresh: Annotated[
            bool, typer.Option("--refresh", help="Query windows finished by earlier runs again.")
        ] = False,
        cache: CacheOption = None,
        token: TokenOption = None,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Crawl MAST for public guide-star data by date windows; resumable at any point."""
        crawl_cli(
            db,
            since=since,
            until=until,
            limit=limit,
            window_days=window_days,
            products=products,
            workers=workers,
            cache=cache,
            token=token,
            refresh=refresh,
        )

    @app.command()
    @handle_errors
    def telemetry(
        mnemonics: Annotated[
            list[str] | None,
            typer.Argument(
                help="EDB mnemonics (default SA_ZHGAUPST INIS_FWMTRCURR SA_ZFGGSPOSX "
                "SA_ZFGGSPOSY SA_ZFGDETID)."
            ),
        ] = None,
        program: Annotated[
            int | None,
            typer.Option("--program", "-p", help="Only the time spans of this program, e.g. 1534."),
        ] = None,
        window_hours: Annotated[
            float, typer.Option("--window-hours", help="Longest EDB request window (hours).")
        ] = 1.0,
        token: TokenOption = None,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Fetch engineering telemetry for the archive's time spans, then derive events."""
        from ..crawl import mast_config, parse_program
        from ..errors import ArchiveError, UsageError
        from ..mast import MastClient, MastError
        from ..telemetry import derive_events, fetch_telemetry

        pid = parse_program(program) if program is not None else None
        if not window_hours > 0:
            raise UsageError(f"--window-hours must be positive (got {window_hours})")
        archive = open_db(db)
        if not archive.path.exists():
            raise ArchiveError(f"no archive at {archive.path}: ingest some files first")
        config = mast_config(token, on_retry=retry_notice)
        failure: MastError | None = None
        with progress_bar("telemetry", unit="windows") as update, MastClient(config) as client:
            try:
                report = fetch_telemetry(
                    archive,
                    client,
                    mnemonics or None,
                    program=pid,
                    window_s=window_hours * 3600.0,
                    progress=update,
                    warn=warn,
                )
            except MastError as exc:  # still derive what can be derived offline
                failure, report = exc, None
        events = derive_events(archive)
        if report is not None:
            err.print(
                f"telemetry: {report.fetched_windows} window(s) fetched ({report.rows:,} records), "
                f"{report.cached_windows} already in the archive, over {report.spans} span(s); "
                f"{len(report.unknown)} unknown mnemonic(s)",
                highlight=False,
            )
        err.print(
            "events: " + ", ".join(f"{k} {v}" for k, v in events.items()),
            highlight=False,
        )
        if failure is not None:
            raise failure

    @app.command()
    @handle_errors
    def events(db: DbOption = DEFAULT_DB_PATH) -> None:
        """Derive events again from files, pointing and stored telemetry (no network)."""
        from ..errors import ArchiveError
        from ..telemetry import derive_events

        archive = open_db(db)
        if not archive.path.exists():
            raise ArchiveError(f"no archive at {archive.path}: ingest some files first")
        counts = derive_events(archive)
        err.print("events: " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)

    @app.command()
    @handle_errors
    def stars(
        refresh: Annotated[
            bool, typer.Option("--refresh", help="Look up every star again, not only new ones.")
        ] = False,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Cross-match the archive's guide stars with the Guide Star Catalog (GSC 2.4.3)."""
        from ..crawl import mast_config
        from ..errors import ArchiveError
        from ..guidestars import lookup_stars
        from ..mast import MastClient

        archive = open_db(db)
        if not archive.path.exists():
            raise ArchiveError(f"no archive at {archive.path}: ingest some files first")
        with (
            progress_bar("stars", unit="stars") as update,
            MastClient(mast_config(on_retry=retry_notice)) as client,
        ):
            report = lookup_stars(
                archive,
                client,
                refresh=refresh,
                progress=update,
                warn=warn,
            )
        c = report.counts
        err.print(
            f"guide stars: {c['found']} found, {c['not_found']} not in the catalog, "
            f"{c['error']} failed (retried next run)",
            highlight=False,
        )
