"""Crawler commands: crawl, telemetry, events, stars (``fgsarchive ingest PROGRAM`` is in core)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    DEFAULT_DB_PATH,
    DbOption,
    err,
    handle_errors,
    open_db,
    progress_bar,
    retry_notice,
)

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


def _warn(text: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {text}", markup=True, highlight=False)


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
        from ..crawl import crawl_cli

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
        from ..errors import UsageError
        from ..mast import MastClient, MastError
        from ..telemetry import derive_events, fetch_telemetry

        pid = parse_program(program) if program is not None else None
        if not window_hours > 0:
            raise UsageError(f"--window-hours must be positive (got {window_hours})")
        archive = open_db(db)
        if not archive.path.exists():
            raise UsageError(f"no archive at {archive.path}: ingest some files first")
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
                    warn=_warn,
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
        from ..errors import UsageError
        from ..telemetry import derive_events

        archive = open_db(db)
        if not archive.path.exists():
            raise UsageError(f"no archive at {archive.path}: ingest some files first")
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
        from ..errors import UsageError
        from ..guidestars import lookup_stars
        from ..mast import MastClient

        archive = open_db(db)
        if not archive.path.exists():
            raise UsageError(f"no archive at {archive.path}: ingest some files first")
        with (
            progress_bar("stars", unit="stars") as update,
            MastClient(mast_config(on_retry=retry_notice)) as client,
        ):
            report = lookup_stars(
                archive,
                client,
                refresh=refresh,
                progress=update,
                warn=_warn,
            )
        c = report.counts
        err.print(
            f"guide stars: {c['found']} found, {c['not_found']} not in the catalog, "
            f"{c['error']} failed (retried next run)",
            highlight=False,
        )
