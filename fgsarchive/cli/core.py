"""Core commands: ingest, status, query, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ..errors import UsageError
from .common import (
    DEFAULT_DB_PATH,
    DbOption,
    err,
    handle_errors,
    open_db,
    print_table,
    to_jsonable,
)
from .crawl import (
    AnalyseOption,
    CacheOption,
    FitOption,
    StarsOption,
    TelemetryOption,
    TokenOption,
    resolve_steps,
    update_cli,
)

if TYPE_CHECKING:  # the stages and pyarrow load when a command runs: `--version` stays fast
    import pyarrow as pa


Format = Literal["table", "csv", "json", "parquet"]


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def ingest(
        programs: Annotated[
            list[str] | None,
            typer.Argument(help="Program ids to fetch from MAST (e.g. 1534 1803)."),
        ] = None,
        source: Annotated[
            list[Path] | None,
            typer.Option("--from", help="Ingest local guider files from this folder (repeatable)."),
        ] = None,
        obs: Annotated[int | None, typer.Option("--obs", help="Only this observation.")] = None,
        visit: Annotated[int | None, typer.Option("--visit", help="Only this visit.")] = None,
        products: Annotated[
            str, typer.Option("--products", help="fg: fine-guide only; all: every guider product.")
        ] = "fg",
        workers: Annotated[int, typer.Option("--workers", help="Parallel readers.")] = 2,
        force: Annotated[bool, typer.Option("--force", help="Re-ingest unchanged files.")] = False,
        fit: FitOption = True,
        telemetry: TelemetryOption = None,
        stars: StarsOption = None,
        analyse: AnalyseOption = True,
        cache: CacheOption = None,
        token: TokenOption = None,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Ingest guider files (from MAST by program, or from a local folder with --from) and bring
        them through the chain: fit, telemetry and events, catalog cross-match, analyses."""
        from ..pipeline import FromFolders, FromPrograms

        if not programs and not source:
            raise UsageError("give program ids (e.g. `fgsarchive ingest 1534`) or --from DIR")
        if workers < 1:
            raise UsageError(f"--workers must be at least 1 (got {workers})")
        if programs:
            from ..crawl import parse_program

            ids = [parse_program(p) for p in programs]  # usage errors before any request
        steps = resolve_steps(
            online=bool(programs), fit=fit, telemetry=telemetry, stars=stars, analyse=analyse
        )
        if source and programs:  # both: the folders first, then the programs and the chain
            update_cli(db, FromFolders(list(source), force=force), steps=[], workers=workers)
        if programs:
            chosen = FromPrograms(
                ids, obs=obs, visit=visit, products=products, cache_dir=cache, force=force
            )
        else:
            chosen = FromFolders(list(source or []), force=force)
        update_cli(db, chosen, steps=steps, token=token, workers=workers)

    @app.command()
    @handle_errors
    def status(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Programs, files by status, frames, and what later stages have filled."""
        import pyarrow as pa

        from ..archive import Archive

        info = Archive(db).status()
        if as_json:
            typer.echo(json.dumps(info, default=str, indent=2))
            return
        print_table(
            pa.Table.from_pylist(info["programs"])
            if info["programs"]
            else pa.table({"program": []}),
            title="programs",
        )
        print_table(
            pa.Table.from_pylist(info["files"]) if info["files"] else pa.table({"product": []}),
            title="files by status",
        )
        stages = pa.Table.from_pylist([{"table": k, "rows": v} for k, v in info["tables"].items()])
        print_table(stages, title="tables")
        if info["failed"]:
            print_table(pa.Table.from_pylist(info["failed"]), title="failed files")

    @app.command()
    @handle_errors
    def query(
        sql: Annotated[str, typer.Argument(help="One SELECT statement; `-` reads it from stdin.")],
        fmt: Annotated[
            str, typer.Option("--format", "-f", help="table, csv, json or parquet.")
        ] = "table",
        as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
        output: Annotated[
            Path | None, typer.Option("--out", "-o", help="Write to this file.")
        ] = None,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Run SQL on a read-only, sandboxed connection to the archive."""
        fmt = "json" if as_json else fmt
        if fmt not in ("table", "csv", "json", "parquet"):
            raise UsageError(f"--format {fmt!r}: choose one of table, csv, json, parquet")
        if sql == "-":
            sql = sys.stdin.read()
        from ..db import run_user_query

        result = run_user_query(open_db(db), sql)
        write_result(result, fmt, output)

    @app.command()
    @handle_errors
    def migrate(db: DbOption = DEFAULT_DB_PATH) -> None:
        """Upgrade an archive made by an older fgsarchive to this schema version."""
        from ..migrate import migrate as run_migrate

        report = run_migrate(open_db(db))
        if report.steps:
            err.print(
                f"{db}: schema version {report.from_version} -> {report.to_version} "
                f"({', '.join(report.steps)})",
                highlight=False,
            )
        else:
            err.print(f"{db}: schema version {report.to_version}, up to date", highlight=False)

    @app.command()
    @handle_errors
    def demo(
        workdir: Annotated[
            Path, typer.Option("--workdir", help="Where the simulated guider files are written.")
        ] = Path("fgsarchive-demo"),
        frames: Annotated[
            int,
            typer.Option(
                "--frames",
                help="Frames to simulate in total, over 4 visits (at least 8000: 2000 per visit).",
            ),
        ] = 200_000,
        seed: Annotated[int, typer.Option("--seed", help="Simulator seed.")] = 1,
        workers: Annotated[
            int, typer.Option("--workers", help="Parallel downloads, readers and fitters.")
        ] = 2,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Run the whole job offline on a simulated program: simulate, serve, ingest, fit, analyse."""
        from ..demo import MIN_FRAMES
        from .demo import run_demo

        if frames < MIN_FRAMES:
            raise UsageError(f"--frames {frames}: the demo needs at least {MIN_FRAMES:,} frames")
        if workers < 1:
            raise UsageError(f"--workers {workers}: give 1 or more")
        run_demo(db_path=db, workdir=workdir, total_frames=frames, seed=seed, workers=workers)


def write_result(result: pa.Table, fmt: Format | str, output: Path | None) -> None:
    """Print or write a query result in the chosen format."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    created = None
    if output is not None:
        try:
            if not output.parent.exists():
                created = output.parent
            output.parent.mkdir(parents=True, exist_ok=True)
            sink = output.open("wb")
        except OSError as exc:
            raise UsageError(f"--out {output}: cannot write ({exc.strerror})") from exc
    else:
        sink = None
    try:
        if fmt == "table":
            if sink is not None:
                pacsv.write_csv(_flat(result), sink)
            else:
                print_table(result)
        elif fmt == "csv":
            pacsv.write_csv(_flat(result), sink or sys.stdout.buffer)
        elif fmt == "json":
            text = json.dumps(to_jsonable(result), indent=None)
            (sink.write(text.encode()) if sink else typer.echo(text))
        elif fmt == "parquet":
            if sink is None and sys.stdout.isatty():
                raise UsageError(
                    "--format parquet writes binary: give --out FILE or redirect stdout"
                )
            pq.write_table(result, sink or sys.stdout.buffer)
    finally:
        if sink is not None:
            sink.close()
    if output is not None:  # say what was written (stdout stays the data's)
        what = "csv" if fmt == "table" else str(getattr(fmt, "value", fmt))
        err.print(
            f"wrote {result.num_rows:,} row(s) as {what} to {output}"
            + (f" (created folder {created})" if created is not None else ""),
            highlight=False,
        )


def _flat(table: pa.Table) -> pa.Table:
    """CSV cannot hold lists: turn list columns into JSON text."""
    import pyarrow as pa

    columns = []
    for col in table.columns:
        if (
            pa.types.is_list(col.type)
            or pa.types.is_fixed_size_list(col.type)
            or pa.types.is_large_list(col.type)
            or pa.types.is_struct(col.type)
        ):
            columns.append(pa.array([json.dumps(v) for v in col.to_pylist()], pa.string()))
        else:
            columns.append(col)
    return pa.table(columns, names=table.column_names)
