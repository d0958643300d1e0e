"""The ``fgsarchive`` command: thin typer commands over the stages, errors mapped to exit codes."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .. import __version__
from . import analysis, core, crawl, fit, people
from .common import state

app = typer.Typer(
    name="fgsarchive",
    help="A queryable archive of JWST Fine Guidance Sensor guide-star frames.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fgsarchive {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log details and show tracebacks on errors.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """fgsarchive: crawl, ingest, fit and analyse JWST guide-star data in one DuckDB archive."""
    state.verbose = verbose
    state.quiet = quiet
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _area in (core, crawl, fit, analysis, people):  # one module per area: cli/<area>.py
    _area.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
