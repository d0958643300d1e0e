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


def _peak_counts(peaks) -> tuple[int, int]:
    """(guide-star series, peaks on instrumental lines) of a periodogram_peaks frame."""
    n_series = peaks.select("program", "file_name", "gs_id").n_unique() if peaks.height else 0
    n_instr = int(peaks["instrumental"].sum()) if "instrumental" in peaks.columns else 0
    return n_series, n_instr


def _anomaly_counts(anomalies) -> tuple[str, int]:
    """("kind n, ..." most frequent first, anomalies with a coincident observatory event)."""
    counts = anomalies.group_by("kind").len().sort(["len", "kind"], descending=[True, False])
    kinds = ", ".join(f"{r['kind']} {r['len']}" for r in counts.iter_rows(named=True))
    return kinds, int((anomalies["coincident_kinds"].list.len() > 0).sum())


def _g(x, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def _where(r: dict) -> str:
    if r.get("observation") is None:
        return f"program {r['program']}"
    return f"program {r['program']} obs {r['observation']} visit {r['visit']}"


def print_periodogram_summary(
    console, peaks, *, top: int = 5, seconds: float | None = None
) -> None:
    """The strongest non-instrumental peak of each parameter (lowest FAP, then highest power)."""
    import polars as pl

    n_groups, n_instr = _peak_counts(peaks)
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    console.print(
        f"    periodograms: {n_groups} guide-star series, {peaks.height} peaks "
        f"({n_instr} on instrumental lines){took}; strongest non-instrumental peak per parameter:",
        highlight=False,
    )
    star = peaks.filter(~pl.col("instrumental")) if "instrumental" in peaks.columns else peaks
    best = (
        star.sort(["fap", "power"], descending=[False, True])
        .group_by("parameter", maintain_order=True)
        .head(1)
        .head(max(top, 1) * 2)
    )
    for r in best.iter_rows(named=True):
        console.print(
            f"      {r['parameter']:<9} {_where(r)} {r['gs_id']}: P = {_g(r['period_s'], '.5g')} s, "
            f"power {_g(r['power'], '.3f')}, FAP {_g(r['fap'], '.1e')}",
            highlight=False,
        )


def print_anomaly_summary(
    console, anomalies, *, top: int = 10, seconds: float | None = None
) -> None:
    """Counts by kind, then the most significant anomalies (time order) with their coincident events."""
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    if anomalies.is_empty():
        console.print(f"    anomalies: none found{took}", highlight=False)
        return
    kinds, n_ev = _anomaly_counts(anomalies)
    console.print(
        f"    anomalies: {anomalies.height} ({kinds}); {n_ev} with a coincident observatory event{took}",
        highlight=False,
    )
    shown = anomalies.sort("significance", descending=True).head(top).sort("start_mjd")
    for r in shown.iter_rows(named=True):
        events = ", ".join(r["coincident_kinds"] or [])
        console.print(
            f"      {_where(r)} {r['gs_id']} {r['kind']:<14} at {_g(r['start_s'], '.1f')} s into the visit, "
            f"{_g(r['duration_s'], '.1f')} s, amplitude {_g(r['amplitude'], '.3g')}, "
            f"{_g(r['significance'], '.0f')} sigma" + (f" <- {events}" if events else ""),
            highlight=False,
        )


def print_variability_summary(
    console, variability, *, top: int = 5, seconds: float | None = None
) -> None:
    """The most variable guide stars, one line each."""
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    console.print(
        f"    variability: {variability.height} guide star(s) ranked{took}; most variable:",
        highlight=False,
    )
    for r in variability.sort("rank").head(top).iter_rows(named=True):
        console.print(
            f"      {r['rank']:>2}. {r['gs_id']} score {_g(r['score'], '.1f')}: rms {_g(r['rms_ppm'], '.0f')} ppm "
            f"(expected {_g(r['expected_rms_ppm'], '.0f')}), eta {_g(r['eta'], '.2f')}, skew {_g(r['skew'], '.2f')}, "
            + (
                f"best period {_g(r['best_period_s'], '.5g')} s (FAP {_g(r['best_fap'], '.1e')})"
                if r.get("best_period_s") is not None and r["best_period_s"] == r["best_period_s"]
                else "no period found"
            ),
            highlight=False,
        )


def run_and_print_all_analyses(
    db,
    *,
    console,
    program: int | None = None,
    min_sigma: float = 5.0,
    top: int = 5,
    workers: int = 1,
    scheduler: str | None = None,
    full: bool = False,
):
    """``fgsarchive analyse`` and the demo's step 4: run every analysis, print the top results."""
    if workers > 1 and scheduler is None:
        # the pool's server imports and warms the unit code while this process imports and plans
        from ..config import ANALYSIS_PRELOAD
        from ..workers import start_forkserver

        start_forkserver(ANALYSIS_PRELOAD)
    from ..analysis.incremental import run_all_analyses

    def warn_indented(text: str) -> None:
        console.print(f"    [yellow]warning:[/yellow] {text}", highlight=False)

    def events(derived: dict[str, int]) -> None:
        shown = ", ".join(f"{k} {v}" for k, v in derived.items() if v)
        console.print(
            f"    events derived from files and pointing: {shown or 'none'}", highlight=False
        )

    results = run_all_analyses(
        db,
        program=program,
        min_sigma=min_sigma,
        workers=workers,
        scheduler=scheduler,
        full=full,
        on_warning=warn_indented,
        on_events=events,
    )
    seconds = results.seconds
    units = results.units
    if units is not None:
        console.print(
            f"    analysis units (a visit of one guide star): {units.units_computed} computed, "
            f"{units.units_unchanged} unchanged, {units.units_removed} removed "
            f"({units.frames_read:,} frames read)",
            highlight=False,
        )
    print_periodogram_summary(console, results.peaks, top=top, seconds=seconds.get("periodograms"))
    print_anomaly_summary(console, results.anomalies, top=2 * top, seconds=seconds.get("anomalies"))
    print_variability_summary(
        console, results.variability, top=top, seconds=seconds.get("variables")
    )
    return results


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
        from ..analysis.runner import run_periodograms
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
        n_series, n_instr = _peak_counts(peaks)
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
        from ..analysis.runner import run_anomalies

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
        kinds, n_ev = _anomaly_counts(table)
        err.print(
            f"{table.height} anomalies written to table anomalies: {kinds}"
            f"; {n_ev} coincide with an observatory event",
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
        from ..analysis.runner import run_variables

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
        workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 2,
        scheduler: Annotated[
            str | None,
            typer.Option(
                "--scheduler",
                help="Dask scheduler address (tcp://host:8786), or 'local' for a local cluster.",
            ),
        ] = None,
        full: Annotated[
            bool,
            typer.Option("--full", help="Recompute every unit, not only the new and changed ones."),
        ] = False,
        db: DbOption = DEFAULT_DB_PATH,
    ) -> None:
        """All analyses: anomalies, periodograms (by visit), variability ranks; prints the top results.

        Incremental: only visits (per guide star) that are new or whose files, fits or method
        changed are computed; instrumental lines and ranks are updated from stored results."""
        run_and_print_all_analyses(
            open_db(db),
            console=err,
            program=program,
            min_sigma=min_sigma,
            workers=workers,
            scheduler=scheduler,
            full=full,
        )
