"""``fgsarchive fit``: fit every frame without a fit of the current version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..choices import FIT_PRODUCTS

if TYPE_CHECKING:
    from ..fit.runner import FitReport

from .common import DEFAULT_DB_PATH, DbOption, err, handle_errors, open_db, progress_bar


def _status_label(code: int) -> str:
    """A per-frame fit status code as the summary names it (codes of fit.model.FitStatus)."""
    from ..fit.model import FitStatus

    try:
        status = FitStatus(code)
    except ValueError:
        return str(code)
    if status is FitStatus.MAX_ITER:
        return "not converged"
    return status.name.lower().replace("_", " ")


def fit_summary(report: FitReport) -> str:
    """One line: frames and files fitted, speed, files already fitted, frames by fit status."""
    statuses = ", ".join(
        f"{_status_label(k)} {v:,}" for k, v in sorted(report.status_counts.items())
    )
    return (
        f"fitted {report.frames:,} frames in {report.files} file(s) in {report.seconds:.1f} s "
        f"({report.frames_per_s:,.0f} frames/s); {report.skipped_files} file(s) already fitted"
        + (f"; {statuses}" if statuses else "")
    )


def run_fit(
    db_path: Path, *, program: int | None, what: str, workers: int, scheduler: str | None
) -> None:
    from ..fit.runner import fit_archive

    db = open_db(db_path)
    with progress_bar("fit") as update:

        def progress(done: int, total: int, frames: int) -> None:
            update(done, total, extra=f"{frames:,} frames")

        report = fit_archive(
            db,
            program=program,
            what=[w.strip() for w in what.split(",") if w.strip()],
            workers=workers,
            scheduler=scheduler,
            progress=progress,
        )
    err.print(fit_summary(report), highlight=False)
    if report.failed:
        from ..errors import FgsArchiveError

        names = ", ".join(f"{k} ({v})" for k, v in report.failed.items())
        raise FgsArchiveError(f"{len(report.failed)} file(s) could not be fitted: {names}")


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def fit(
        program: Annotated[
            int | None, typer.Option("--program", "-p", help="Only this program.")
        ] = None,
        what: Annotated[
            str,
            typer.Option(
                "--what",
                help="Comma-separated: gauss (2D Gaussian), quick (moments), phot (photometry).",
            ),
        ] = ",".join(FIT_PRODUCTS),
        workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 2,
        scheduler: Annotated[
            str | None,
            typer.Option(
                "--scheduler",
                help="Dask scheduler address (tcp://host:8786), or 'local' for a local cluster.",
            ),
        ] = None,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Fit every frame without a fit of the current version (resumable)."""
        run_fit(db, program=program, what=what, workers=workers, scheduler=scheduler)
