"""The ``fgsarchive`` command: thin typer commands over the stages, errors mapped to exit codes."""

from __future__ import annotations

import inspect
import logging
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from .. import __version__
from . import analysis, core, crawl, fit, people
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


_PLAIN_TYPES = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "path": "PATH", "Path": "PATH"}


def _plain_type(param, ctx: click.Context) -> str | None:
    """The value column of ``--help``: nothing for on/off flags, INTEGER / TEXT / PATH / ... for
    values (typer's default shows Python types: ``<bool>``, ``<list[Path]>``)."""
    if getattr(param, "metavar", None) is not None:
        return param.metavar
    if getattr(param, "is_flag", False):
        return None
    label = (typer.core.TyperOption.display_type(param, ctx) or "").strip("<>")
    many = label.startswith("list[")
    label = label.removeprefix("list[").removesuffix("]")
    text = "|".join(_PLAIN_TYPES.get(part, part) for part in label.split("|"))
    if isinstance(param, typer.core.TyperArgument):
        return text  # its name already ends in "..." when it takes many
    return text + ("..." if many or getattr(param, "nargs", 1) != 1 else "")


typer.core.TyperOption.display_type_rich = _plain_type  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = _plain_type  # type: ignore[method-assign]

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


for _area in (core, crawl, fit, analysis, people):  # one module per area: cli/<area>.py
    _area.register(app)

#: Examples shown at the end of each command's ``--help`` (plot, animate and report have theirs in
#: their docstrings).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "ingest": ("fgsarchive ingest 1534 --obs 1", "fgsarchive ingest --from products/ --no-fit"),
    "status": ("fgsarchive status", "fgsarchive status --json --db other.duckdb"),
    "query": (
        'fgsarchive query "SELECT gs_id, n_frames FROM guide_stars"',
        'fgsarchive query "SELECT * FROM anomalies" --format csv --out anomalies.csv',
    ),
    "migrate": ("fgsarchive migrate --db old.duckdb",),
    "demo": ("fgsarchive demo", "fgsarchive demo --frames 40000 --workdir /tmp/demo"),
    "crawl": ("fgsarchive crawl --since 2022-12-04 --until 2022-12-11 --limit 20",),
    "telemetry": ("fgsarchive telemetry", "fgsarchive telemetry SA_ZHGAUPST --program 1534"),
    "events": ("fgsarchive events",),
    "stars": ("fgsarchive stars", "fgsarchive stars --refresh"),
    "fit": ("fgsarchive fit --program 1534 --workers 2",),
    "periodogram": ("fgsarchive periodogram --program 1534 --by visit",),
    "anomalies": ("fgsarchive anomalies --program 1534 --min-sigma 6",),
    "variables": ("fgsarchive variables --top 10",),
    "analyse": ("fgsarchive analyse", "fgsarchive analyse --program 1534"),
}


def _add_examples() -> None:
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else None)
        examples = EXAMPLES.get(name or "")
        if not examples or info.callback is None:
            continue
        text = info.help or inspect.getdoc(info.callback) or ""
        info.help = text + "\n\n" + "\n\n".join(f"Example: {e}" for e in examples)


_add_examples()


def main() -> None:
    """Console-script entry point."""
    app()
