"""Shared pieces of the CLI: options, error mapping, progress bars, table output."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ..config import DEFAULT_DB, Settings
from ..errors import ExitCode, FgsArchiveError

if TYPE_CHECKING:  # duckdb and pyarrow load when a command runs: `--version` stays fast
    import pyarrow as pa

    from ..db import Database


@dataclass
class CliState:
    verbose: bool = False
    quiet: bool = False


state = CliState()
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="FGSARCHIVE_DB",
        help="The archive's DuckDB file (Parquet parts live beside it in <db>.parts/).",
        show_default=True,
    ),
]
DEFAULT_DB_PATH = Path(DEFAULT_DB)


def warn(text: str) -> None:
    """Print one warning line on stderr (the stages' ``warn``/``on_warning`` callback)."""
    err.print(f"[yellow]warning:[/yellow] {text}", markup=True, highlight=False)


def open_db(path: Path) -> Database:
    """The archive at ``path`` (settings from the environment, this path)."""
    from ..db import Database

    return Database(path, settings=Settings(db_path=path))


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print fgsarchive errors as one line on stderr and exit with their code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FgsArchiveError as exc:
            if state.verbose:
                traceback.print_exc()
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err.print("interrupted: re-run the same command to resume", highlight=False)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # an unexpected failure: still one line, traceback with -v
            if state.verbose:
                traceback.print_exc()
            text = str(exc).splitlines()[0] if str(exc) else ""
            err.print(
                f"[red]error:[/red] {type(exc).__name__}: {text} (run with --verbose for details)",
                markup=True,
                highlight=False,
            )
            raise typer.Exit(int(ExitCode.FAILED)) from None

    return wrapper


def show_progress() -> bool:
    return not state.quiet and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(
    description: str, total: int | None = None, unit: str = "files"
) -> Iterator[Callable]:
    """A rich progress bar on stderr (silent when not a terminal or with --quiet).

    Yields ``update(completed, total=None, **fields)``.
    """
    if not show_progress():
        yield lambda *a, **k: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(description, total=total, extra="")

        def update(completed: int, total: int | None = None, extra: str = "") -> None:
            progress.update(task, completed=completed, total=total, extra=extra)

        yield update


def retry_notice(what: str, reason: str, attempt: int, max_attempts: int, delay_s: float) -> None:
    """Show a MAST/GSC retry on the terminal (``MastConfig.on_retry``): what failed and when the
    next try is. Silent with --quiet or when stderr is not a terminal."""
    if not show_progress():
        return
    err.print(
        f"[yellow]retrying[/yellow] {what}: {reason}; attempt {attempt + 1} of {max_attempts} "
        f"in {delay_s:.0f} s",
        markup=True,
        highlight=False,
    )


def print_table(table: pa.Table, *, title: str | None = None, max_rows: int = 50) -> None:
    """Print an Arrow table as a rich table (first ``max_rows`` rows).

    Floats keep their precision: MJD columns (``*mjd*``) at least 1e-6 d (0.09 s), other float
    columns with as many significant digits (6 to 15) as it takes to tell the shown rows apart.
    """
    from rich.table import Table

    view = Table(title=title, show_lines=False, header_style="bold")
    shown = table.slice(0, max_rows)
    formatters = [
        _column_formatter(name, shown.column(name).to_pylist()) for name in shown.column_names
    ]
    for name in table.column_names:
        view.add_column(name, overflow="ellipsis", no_wrap=True, max_width=44)
    for row in shown.to_pylist():
        view.add_row(*(fmt(v) for fmt, v in zip(formatters, row.values(), strict=True)))
    out.print(view)
    if table.num_rows > max_rows:
        out.print(f"... {table.num_rows - max_rows} more rows (use --format csv for all)")


#: Decimals of an MJD in table output: at least 1e-6 d = 0.0864 s, up to 1e-9 d (86 us) when the
#: shown rows need them to differ (frames are 64 ms apart).
MJD_DECIMALS = 6
MJD_MAX_DECIMALS = 9


def _column_formatter(name: str, values: list[object]) -> Callable[[object], str]:
    """A formatter for one column's values: enough digits that distinct floats print distinct."""
    floats = sorted({v for v in values if isinstance(v, float) and v == v})
    if "mjd" in name.lower():
        decimals = MJD_DECIMALS
        while decimals < MJD_MAX_DECIMALS and len({f"{v:.{decimals}f}" for v in floats}) < len(
            floats
        ):
            decimals += 1
        return lambda v: f"{v:.{decimals}f}" if isinstance(v, float) and v == v else _fmt(v)
    digits = 6
    while digits < 15 and len({_fmt(v, digits) for v in floats}) < len(floats):
        digits += 1
    return lambda v: _fmt(v, digits)


def _fmt(value: object, digits: int = 6) -> str:
    """A value as table text; floats with ``digits`` significant digits (all integer digits of
    large numbers, scientific notation only below 1e-4)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value != 0 and abs(value) < 1e-4:
            return f"{value:.{digits}g}"
        integer_digits = len(str(int(abs(value)))) if abs(value) >= 1 else 0
        text = f"{value:.{max(0, digits - integer_digits)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, list) and len(value) > 8:
        return "[" + ", ".join(_fmt(v) for v in value[:4]) + f", ... ({len(value)} values)]"
    return str(value)


def to_jsonable(table: pa.Table) -> list[dict[str, object]]:
    return json.loads(json.dumps(table.to_pylist(), default=str))
