"""Commands for people looking at the data: plot, animate, report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..choices import PLOT_KIND_NAMES
from ..errors import UsageError
from .common import DEFAULT_DB_PATH, DbOption, err, handle_errors, progress_bar

ProgramOpt = Annotated[int | None, typer.Option("--program", "-p", help="Program id, e.g. 1534.")]
ObsOpt = Annotated[int | None, typer.Option("--obs", help="Observation number.")]
VisitOpt = Annotated[int | None, typer.Option("--visit", help="Visit number.")]
GsOpt = Annotated[str | None, typer.Option("--gs-id", help="Guide-star id (GDSTARID).")]


def _archive(db: Path):
    from ..archive import Archive

    return Archive(db)


def _check_writable(out: Path, *, directory: bool = False) -> None:
    """Fail before any work when ``out`` cannot be written (one line naming it)."""
    folder = out if directory else out.parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot write there ({probe} is not a writable folder)")
    if not directory and out.exists() and (out.is_dir() or not os.access(out, os.W_OK)):
        raise UsageError(f"--out {out}: cannot write that file")


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def plot(
        kind: Annotated[
            str,
            typer.Argument(help=f"What to plot: {', '.join(PLOT_KIND_NAMES)}.", show_default=False),
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Figure file: .png, .pdf or .svg.")],
        program: ProgramOpt = None,
        obs: ObsOpt = None,
        visit: VisitOpt = None,
        gs_id: GsOpt = None,
        bin_s: Annotated[
            float | None,
            typer.Option("--bin-s", help="Bin width in seconds (default: ~1500 bins)."),
        ] = None,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Plot a selection: flux, parameters, periodogram, telemetry, anomalies or guide-stars.

        Every kind takes the same selection flags and uses those that apply. Flux is the star's
        (sky subtracted) once fitted.

        Examples:
          fgsarchive plot flux --program 1534 --obs 1 --visit 1 --bin-s 10 --out flux.png
          fgsarchive plot periodogram --program 1534 --obs 2 --visit 1 --out pgram.png
          fgsarchive plot guide-stars --program 1534 --obs 1 --out stars.png
        """
        if kind not in PLOT_KIND_NAMES:
            raise UsageError(
                f"unknown plot kind {kind!r}; choose one of: {', '.join(PLOT_KIND_NAMES)}"
            )
        if out.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise UsageError(f"--out {out}: choose a .png, .pdf or .svg file name")
        _check_writable(out)
        from ..plots import ignored
        from ..plots import plot as make_plot

        selection = {"program": program, "obs": obs, "visit": visit, "gs_id": gs_id, "bin_s": bin_s}
        unused = ignored(kind, **selection)
        if unused:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in unused)
            err.print(f"note: plot {kind} does not use {flags}", highlight=False)
        make_plot(kind, _archive(db), save=out, **selection)
        err.print(f"wrote {out}", highlight=False)

    @app.command()
    @handle_errors
    def animate(
        out: Annotated[
            Path,
            typer.Option("--out", "-o", help="Animation file: .gif (Pillow) or .mp4 (ffmpeg)."),
        ],
        program: Annotated[int, typer.Option("--program", "-p", help="Program id, e.g. 1534.")],
        obs: ObsOpt = None,
        visit: VisitOpt = None,
        gs_id: GsOpt = None,
        start_s: Annotated[
            float,
            typer.Option("--start-s", help="Start, seconds after the selection's first frame."),
        ] = 0.0,
        duration_s: Annotated[
            float, typer.Option("--duration-s", help="Length of the clip in seconds.")
        ] = 30.0,
        step: Annotated[int, typer.Option("--step", help="Draw every N-th frame.")] = 1,
        fps: Annotated[float, typer.Option("--fps", help="Animation frames per second.")] = 15.0,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Animate the 8x8 frames beside the flux trace with a moving cursor.

        Example: fgsarchive animate --program 1534 --obs 1 --visit 1 --start-s 60 --duration-s 20 --step 2 --out clip.gif
        """
        from ..animate import ANIMATION_FORMATS
        from ..animate import animate as make_animation

        if out.suffix.lower() not in ANIMATION_FORMATS:
            raise UsageError(
                f"--out {out}: choose a file name ending in {' or '.join(ANIMATION_FORMATS)}"
            )
        _check_writable(out)
        make_animation(
            _archive(db),
            program=program,
            obs=obs,
            visit=visit,
            gs_id=gs_id,
            start_s=start_s,
            duration_s=duration_s,
            step=step,
            fps=fps,
            out=out,
        )
        err.print(f"wrote {out}", highlight=False)

    @app.command()
    @handle_errors
    def report(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the HTML page(s).")],
        program: Annotated[
            int | None,
            typer.Argument(help="Program id (or --archive for every program).", show_default=False),
        ] = None,
        whole: Annotated[
            bool,
            typer.Option(
                "--archive", help="An index over all programs, linking a page per program."
            ),
        ] = False,
        max_visits: Annotated[
            int, typer.Option("--max-visits", help="Visits per program that get figures.")
        ] = 8,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Write a self-contained static HTML report of a program (or of the whole archive).

        Example: fgsarchive report 1534 --out report/   (then open report/program-1534.html)
        """
        from ..report import write_archive_report, write_program_report

        if (program is None) == (not whole):
            raise UsageError("give a PROGRAM or --archive (not both)")
        _check_writable(out, directory=True)
        arc = _archive(db)
        with progress_bar("report", unit="figures") as update:

            def progress(done: int, total: int, label: str) -> None:
                update(done, total, extra=label)

            if whole:
                result = write_archive_report(arc, out, max_visits=max_visits, progress=progress)
            else:
                result = write_program_report(
                    arc, program, out, max_visits=max_visits, progress=progress
                )
        err.print(
            f"wrote {len(result.pages)} page(s) with {result.figures} figures in {result.seconds:.1f} s: "
            f"{result.pages[0]}",
            highlight=False,
        )
        if result.missing:
            from ..archive import FILLED_BY

            hints = sorted({FILLED_BY[t] for t in result.missing if t in FILLED_BY})
            err.print(
                f"not computed yet: {', '.join(sorted(result.missing))} (run: {'; '.join(hints)})",
                highlight=False,
            )
