"""The ``fgsarchive`` command: thin typer commands over the stages, errors mapped to exit codes."""

from __future__ import annotations

import logging
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from .. import __version__
from . import core
from .common import state

#: Flags of the whole program, accepted before or after the subcommand.
GLOBAL_FLAGS = ("--verbose", "-v", "--quiet", "-q")


class _AnywhereGroup(TyperGroup):
    """The command group: global flags (--verbose, --quiet) are accepted after the subcommand
    too, and ``--db PATH`` before it (it belongs to the subcommand)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, reorder_global_flags(args, set(self.commands)))


def reorder_global_flags(args: list[str], commands: set[str]) -> list[str]:
    """``[--db P] CMD ... --verbose`` -> ``--verbose CMD --db P ...`` (nothing moves past ``--``)."""
    flags: list[str] = []  # global flags, moved to the front
    before: list[str] = []  # up to the subcommand's name
    db: list[str] = []  # --db given before the subcommand: it is the subcommand's option
    after: list[str] = []
    seen_command = False
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            after.extend(args[i:])
            break
        if token in GLOBAL_FLAGS:
            flags.append(token)
        elif not seen_command and token == "--db" and i + 1 < len(args):
            db += [token, args[i + 1]]
            i += 1
        elif not seen_command and token.startswith("--db="):
            db.append(token)
        elif not seen_command:
            before.append(token)
            seen_command = token in commands
        else:
            after.append(token)
        i += 1
    return flags + before + db + after


app = typer.Typer(
    cls=_AnywhereGroup,
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
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log fgsarchive's details and show tracebacks on errors (here or after the command).",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars (here or after the command).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """fgsarchive: crawl, ingest, fit and analyse JWST guide-star data in one DuckDB archive."""
    state.verbose = verbose
    state.quiet = quiet
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # --verbose: our own DEBUG logs only (matplotlib's font manager alone prints thousands of lines)
    logging.getLogger("fgsarchive").setLevel(logging.DEBUG if verbose else logging.NOTSET)


core.register(app)


def _register_optional() -> None:
    """Commands of the later stages, each in its own module (cli/<area>.py)."""
    import importlib

    for area in ("crawl", "fit", "analysis", "people"):
        try:
            module = importlib.import_module(f"{__name__}.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{area}":
                raise
            continue
        module.register(app)


_register_optional()


def main() -> None:
    """Console-script entry point."""
    app()
