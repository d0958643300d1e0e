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
    from ..ingest import IngestReport
    from ..pipeline import StepReport, UpdateReport

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

FitOption = Annotated[
    bool, typer.Option("--fit/--no-fit", help="Fit the new frames (frames without a fit).")
]
TelemetryOption = Annotated[
    bool | None,
    typer.Option(
        "--telemetry/--no-telemetry",
        help="Fetch EDB telemetry for the new spans (needs a MAST token with EDB rights; "
        "default: on when reading MAST, off for --from).",
        show_default=False,
    ),
]
StarsOption = Annotated[
    bool | None,
    typer.Option(
        "--stars/--no-stars",
        help="Cross-match new guide stars with the Guide Star Catalog (default: on when "
        "reading MAST, off for --from).",
        show_default=False,
    ),
]
AnalyseOption = Annotated[
    bool,
    typer.Option(
        "--analyse/--no-analyse", help="Run the analyses (anomalies, periodograms, variability)."
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
            unit = {"telemetry": "windows", "stars": "stars"}.get(stage, "files")
            count = f"{done}/{total or 0} {unit}"
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


def summarise_ingest(report: IngestReport) -> None:
    err.print(
        f"ingested {len(report.ingested)} file(s), {report.n_frames:,} frames "
        f"in {report.seconds:.1f} s ({report.frames_per_s:,.0f} frames/s); "
        f"skipped {len(report.skipped)} unchanged; failed {len(report.failed)}",
        highlight=False,
    )


def _acquired_cli(acquired: Any, *, crawled: bool, config: Any) -> None:
    """The acquisition's summary: an ingest of folders, or what MAST listed, fetched, ingested."""
    from ..crawl import CrawlReport

    if not isinstance(acquired, CrawlReport):
        summarise_ingest(acquired)
        return
    _report_cli(acquired)
    if crawled:
        err.print(
            f"windows: {acquired.windows_queried} queried, {acquired.windows_skipped} done "
            f"before, {acquired.windows_done} finished now; {len(acquired.programs)} program(s)"
            + ("; stopped at --limit: re-run to continue" if acquired.stopped_at_limit else ""),
            highlight=False,
        )
        if acquired.auth and not config.token:
            warn(
                f"{len(acquired.auth)} file(s) are exclusive access and were skipped "
                "(give --token or MAST_API_TOKEN with rights to them)"
            )


def step_line(step: StepReport) -> str:
    """One summary line of a chain step (counts, seconds), or why it did not run."""
    if step.skipped is not None:
        return f"{step.step}: skipped ({step.skipped})"
    counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in step.counts.items())
    state = "failed" if step.error is not None else "done"
    return f"{step.step}: {counts or state} in {step.seconds:.1f} s"


def resolve_steps(
    *, online: bool, fit: bool, telemetry: bool | None, stars: bool | None, analyse: bool
) -> list[str]:
    """The chain's steps from the CLI opt-outs: telemetry and stars default on only when the
    command already talks to MAST (``crawl``, ``ingest PROGRAM``), off for ``ingest --from``."""
    telemetry = online if telemetry is None else telemetry
    stars = online if stars is None else stars
    wanted = {
        "fit": fit,
        "telemetry": telemetry,
        "events": True,
        "stars": stars,
        "analyse": analyse,
    }
    return [name for name, on in wanted.items() if on]


def update_cli(
    db_path: Path | str,
    source: Any,
    *,
    steps: Sequence[str],
    token: str | None = None,
    workers: int = 2,
    scheduler: str | None = None,
) -> UpdateReport:
    """Run :func:`fgsarchive.pipeline.update_archive`: progress and one line per step on stderr.

    Exit codes: MAST refusing or failing downloads -> 4 (as before); files that failed to
    download or ingest -> 1 naming them; a later step that failed (EDB, GSC, fit) -> 4 for a
    remote step, else 1, naming the command that re-runs it (everything else is kept).
    """
    from ..crawl import CrawlReport, mast_config, raise_remote_failures
    from ..errors import IngestError, StepsFailedError
    from ..pipeline import FromCrawl, FromFolders, update_archive

    online = not isinstance(source, FromFolders) or any(s in steps for s in ("telemetry", "stars"))
    config = mast_config(token, on_retry=retry_notice) if online else None
    db = open_db(Path(db_path))
    with _cli_session() as update:

        def on_step(step: StepReport) -> None:
            if step.step == "ingest":
                _acquired_cli(step.detail, crawled=isinstance(source, FromCrawl), config=config)
            elif step.step == "fit" and step.detail is not None:
                from .fit import fit_summary

                err.print(f"fit: {fit_summary(step.detail)}", highlight=False)
            else:
                err.print(step_line(step), highlight=False)

        report = update_archive(
            db,
            source,
            steps=steps,
            config=config,
            workers=workers,
            scheduler=scheduler,
            progress=update,
            on_step=on_step,
            on_warning=warn,
        )
    err.print(
        "steps: "
        + ", ".join(
            f"{name} {s.seconds:.1f} s" for name, s in report.steps.items() if s.skipped is None
        )
        + f"; {report.seconds:.1f} s in all",
        highlight=False,
    )
    acquired = report.acquired
    failed: dict[str, str] = {}
    if isinstance(acquired, CrawlReport):
        raise_remote_failures(
            acquired,
            programs=acquired.programs,
            token_given=bool(config.token),
            auth=bool(config.token) or not isinstance(source, FromCrawl),
        )
        failed.update(acquired.failed)
    elif acquired is not None:
        failed.update(acquired.failed)
    if failed:
        raise IngestError(failed)
    if report.failures:
        raise StepsFailedError({k: (s.rerun, s.exit_code) for k, s in report.failures.items()})
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
        fit: FitOption = True,
        telemetry: TelemetryOption = None,
        stars: StarsOption = None,
        analyse: AnalyseOption = True,
        cache: CacheOption = None,
        token: TokenOption = None,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Crawl MAST by date windows and bring new files through the whole chain: download,
        ingest, fit, telemetry and events, catalog cross-match, analyses; resumable at any step."""
        from ..crawl import exp_types_of, parse_date
        from ..errors import UsageError
        from ..pipeline import FromCrawl

        if workers < 1:
            raise UsageError(f"--workers must be at least 1 (got {workers})")
        exp_types_of(products)  # a usage error before any request
        source = FromCrawl(
            since_mjd=parse_date(since, "--since") if since is not None else None,
            until_mjd=parse_date(until, "--until") if until is not None else None,
            window_days=window_days,
            limit=limit,
            products=products,
            cache_dir=cache,
            refresh=refresh,
        )
        steps = resolve_steps(
            online=True, fit=fit, telemetry=telemetry, stars=stars, analyse=analyse
        )
        update_cli(db, source, steps=steps, token=token, workers=workers)

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
