"""Analysis commands: periodogram, anomalies, variables, analyse (docs/analyses.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..choices import GROUPINGS, PERIODOGRAM_PARAMETERS
from .common import (
    DEFAULT_DB_PATH,
    DbOption,
    err,
    handle_errors,
    open_db,
    print_table,
    progress_bar,
    warn,
)

_PERIODOGRAM_COLUMNS = [
    "observation",
    "visit",
    "gs_id",
    "grouped_by",
    "parameter",
    "rank",
    "period_s",
    "frequency_hz",
    "power",
    "fap",
    "instrumental",
]
_ANOMALY_COLUMNS = [
    "observation",
    "visit",
    "gs_id",
    "kind",
    "start_mjd",
    "start_s",
    "duration_s",
    "parameters",
    "amplitude",
    "significance",
    "coincident_kinds",
]
_VARIABILITY_COLUMNS = [
    "rank",
    "gs_id",
    "score",
    "n_visits",
    "n_frames",
    "rms_ppm",
    "expected_rms_ppm",
    "excess",
    "eta",
    "skew",
    "best_period_s",
    "best_fap",
    "programs",
]


# From the light choices module, so the CLI starts without importing the analyses (numba).
PARAMETERS_HELP = ", ".join(PERIODOGRAM_PARAMETERS)


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def periodogram(
        program: Annotated[
            int | None, typer.Option("--program", "-p", help="Only this program (default: all).")
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option(
                "--param",
                help=f"Parameter(s) to analyse, repeatable or comma-separated: {PARAMETERS_HELP} (default: all).",
            ),
        ] = None,
        by: Annotated[
            str,
            typer.Option(
                "--by",
                help="One periodogram per: file (a guide period, segments joined), visit (a visit's files of one "
                "guide star), guide_star (all files of a star in a program). Never across guide stars.",
            ),
        ] = "visit",
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", help="Also write the full spectra (long format) to this Parquet file."
            ),
        ] = None,
        top: Annotated[int, typer.Option("--top", help="Peaks to print (all are stored).")] = 20,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Lomb-Scargle periodograms of every fitted parameter; peaks into table periodogram_peaks."""
        from ..analysis.archive_io import run_periodograms
        from ..errors import UsageError

        if by not in GROUPINGS:
            raise UsageError(f"unknown --by {by!r}; valid values: {', '.join(GROUPINGS)}")
        archive = open_db(db)
        with progress_bar("periodogram", unit="series") as update:
            peaks = run_periodograms(
                archive,
                program=program,
                params=param,
                by=by,
                out=out,
                on_warning=warn,
                progress=update,
            )
        n_series = peaks.select("program", "file_name", "gs_id").n_unique()
        n_instr = int(peaks["instrumental"].sum())
        err.print(
            f"{peaks.height} peaks of {n_series} guide-star series ({n_instr} on instrumental lines) "
            f"written to periodogram_peaks" + (f"; spectra in {out}" if out else ""),
            highlight=False,
        )
        shown = peaks.sort(["instrumental", "fap", "power"], descending=[False, False, True]).head(
            top
        )
        print_table(
            shown.select([c for c in _PERIODOGRAM_COLUMNS if c in shown.columns]).to_arrow(),
            title="strongest peaks (non-instrumental first)",
        )

    @app.command()
    @handle_errors
    def anomalies(
        program: Annotated[
            int | None, typer.Option("--program", "-p", help="Only this program (default: all).")
        ] = None,
        min_sigma: Annotated[
            float,
            typer.Option(
                "--min-sigma",
                help="False-alarm level in Gaussian sigmas (raised per filter scale).",
            ),
        ] = 5.0,
        top: Annotated[
            int, typer.Option("--top", help="Anomalies to print (all are stored).")
        ] = 30,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Flux drops, centroid jumps, PSF changes, jitter bursts per visit and guide star; table anomalies."""
        from ..analysis.archive_io import run_anomalies

        archive = open_db(db)
        with progress_bar("anomalies", unit="runs") as update:
            table = run_anomalies(
                archive,
                program=program,
                min_sigma=min_sigma,
                on_warning=warn,
                progress=update,
            )
        if table.is_empty():
            err.print(
                "no anomalies found (table anomalies emptied for the selection)", highlight=False
            )
            return
        kinds = table.group_by("kind").len().sort("len", descending=True)
        n_ev = int((table["coincident_kinds"].list.len() > 0).sum())
        err.print(
            f"{table.height} anomalies written to table anomalies: "
            + ", ".join(f"{r['kind']} {r['len']}" for r in kinds.iter_rows(named=True))
            + f"; {n_ev} coincide with an observatory event",
            highlight=False,
        )
        shown = table.sort("significance", descending=True).head(top).sort("start_mjd")
        print_table(
            shown.select(_ANOMALY_COLUMNS).to_arrow(),
            title="anomalies (most significant, in time order)",
        )

    @app.command()
    @handle_errors
    def variables(
        top: Annotated[
            int | None,
            typer.Option("--top", help="Print only the N most variable stars (all are stored)."),
        ] = None,
        mask: Annotated[
            str,
            typer.Option(
                "--mask",
                help="Anomalies left out: all (default), instrumental (only those with an observatory event or "
                "seen in centroid / PSF / background / jitter: keeps a star's own dips), none.",
            ),
        ] = "all",
        flux: Annotated[
            str,
            typer.Option(
                "--flux",
                help="total (sum of the 64 pixels minus the fitted sky) or flux_opt (optimal aperture; follows "
                "pointing and PSF changes).",
            ),
        ] = "total",
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """Rank every guide star by variability over all its visits and programs; table variability."""
        from ..analysis.archive_io import run_variables

        archive = open_db(db)
        with progress_bar("variables", unit="stars") as update:
            table = run_variables(
                archive,
                top=top,
                mask=mask,
                flux=flux,
                on_warning=warn,
                progress=update,
            )
        err.print("variability of every guide star written to table variability", highlight=False)
        print_table(
            table.select(_VARIABILITY_COLUMNS).to_arrow(),
            title="guide stars by variability (rank 1 = most variable)",
        )

    @app.command()
    @handle_errors
    def analyse(
        program: Annotated[
            int | None, typer.Option("--program", "-p", help="Only this program (default: all).")
        ] = None,
        min_sigma: Annotated[
            float, typer.Option("--min-sigma", help="Anomaly false-alarm level (sigma).")
        ] = 5.0,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """All analyses: anomalies, periodograms (by visit), variability ranks; prints the top results."""
        from ..analysis.run import run_all_analyses

        run_all_analyses(open_db(db), console=err, program=program, min_sigma=min_sigma)
