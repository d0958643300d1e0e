"""``fgsarchive demo``: the whole job, offline, on a simulated program.

Simulates a program like PID 1534 (four visits, two guide stars, injected flux drop, centroid jump,
mirror-tilt PSF change, a 5-minute oscillation, a variable guide star, HGA and filter-wheel moves),
serves it from the MAST-compatible server on 127.0.0.1 so the real client code discovers, downloads
and ingests it, fits every frame, derives telemetry events, runs the analyses, and prints a summary
and example queries.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from .db import Database, run_user_query

console = Console(stderr=True, highlight=False)

DEMO_PROGRAM = 1534
#: Visits the demo simulates, and the fewest frames per visit (and so in all) it accepts.
N_VISITS = 4
MIN_FRAMES_PER_VISIT = 2000
MIN_FRAMES = N_VISITS * MIN_FRAMES_PER_VISIT
EXAMPLE_QUERIES = {
    "Frames, mean summed flux and fitted width per visit and guide star": (
        "SELECT f.observation AS obs, f.visit, f.gs_id, count(*) AS n_frames, "
        "round(avg(fr.flux)) AS mean_flux, round(avg(x.x_stddev) FILTER (WHERE x.status = 0), 4) AS mean_x_stddev_px "
        "FROM frames fr JOIN files f USING (file_name) "
        "LEFT JOIN fits x USING (file_name, frame) GROUP BY ALL ORDER BY ALL"
    ),
    "Guide stars and where they were used": (
        "SELECT gs_id, round(ra, 5) AS ra, round(dec, 5) AS dec, fgs_mag, programs, detectors, "
        "n_frames FROM guide_stars ORDER BY first_mjd"
    ),
}


def demo_injections():
    """The events the demo plants in its program (seconds after each visit's fine-guide start)."""
    from .simulate import (
        CentroidJump,
        FilterWheelMove,
        FluxDrop,
        HgaMove,
        PeriodicSignal,
        PsfWidthChange,
        VariableStar,
    )

    injections = [
        FluxDrop(start_s=600.0, duration_s=30.0, depth=0.02, observation=1, visit=1),
        HgaMove(start_s=1200.0, duration_s=120.0, observation=1, visit=1),
        CentroidJump(time_s=1800.0, dx=0.08, observation=1, visit=1),
        FilterWheelMove(start_s=300.0, duration_s=6.0, observation=1, visit=2),
        PsfWidthChange(time_s=900.0, frac_x=0.08, observation=1, visit=2),
        PeriodicSignal(period_s=300.0, amplitude=0.003, quantity="flux", observation=2, visit=1),
    ]
    variables = [VariableStar(star=1, kind="sinusoid", period_s=7200.0, amplitude=0.01)]
    return injections, variables


def run_demo(
    *, db_path: Path, workdir: Path, total_frames: int = 200_000, seed: int = 1, workers: int = 2
) -> None:
    """Run the demo end to end and print what it made."""
    from .cli.common import print_table
    from .simulate import simulate_program

    started = time.perf_counter()
    workdir = Path(workdir)
    products = workdir / "products"
    n_visits = N_VISITS
    per_visit = max(MIN_FRAMES_PER_VISIT, total_frames // n_visits)
    console.print(
        f"[bold]1/5 simulate[/bold] {per_visit * n_visits:,} frames of program {DEMO_PROGRAM} "
        f"({n_visits} visits, 2 guide stars, injected events) -> {products}"
    )
    injections, variables = demo_injections()
    sim = simulate_program(
        products,
        program=DEMO_PROGRAM,
        n_observations=2,
        n_visits=n_visits // 2,
        frames_per_file=per_visit,
        n_guide_stars=2,
        seed=seed,
        injections=injections,
        variable_stars=variables,
    )
    db = Database(db_path)
    console.print(f"[bold]2/5 ingest[/bold] {len(sim.files)} guider files into {db_path}")
    report = _ingest(db, sim, workdir, workers)
    console.print(
        f"    {len(report.ingested)} ingested, {len(report.skipped)} unchanged, "
        f"{len(report.failed)} failed; {report.n_frames:,} frames in {report.seconds:.1f} s"
    )
    console.print("[bold]3/5 fit[/bold] every frame: 2D Gaussian, moments, photometry")
    from .fit.runner import fit_archive

    fitted = fit_archive(db, workers=workers)
    console.print(
        f"    {fitted.frames:,} frames fitted in {fitted.seconds:.1f} s "
        f"({fitted.frames_per_s:,.0f} frames/s); {fitted.skipped_files} file(s) already fitted"
    )
    console.print("[bold]4/5 analyse[/bold]")
    _analyse(db)
    console.print(f"[bold]5/5 summary[/bold] ({time.perf_counter() - started:.1f} s in all)")
    for title, sql in EXAMPLE_QUERIES.items():
        console.print(f'\n[bold]{title}[/bold]\n  fgsarchive query "{sql}"')
        print_table(run_user_query(db, sql))
    size = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file())
    console.print(
        f"\nThe simulated guider files and the download cache stay in {workdir}/ "
        f"({size / 1e6:,.0f} MB): the archive does not need them; delete the folder when done "
        f"(rm -r {workdir}). The archive is {db_path}.",
        highlight=False,
    )


def _ingest(db: Database, sim, workdir: Path, workers: int):
    """Through the MAST-compatible loopback server when the crawler is present, else from disk."""
    try:
        from .crawl import serve_and_ingest
    except ImportError:
        from .ingest import ingest_directory

        return ingest_directory(db, sim.out_dir, workers=workers)
    return serve_and_ingest(db, sim, cache_dir=workdir / "cache", workers=workers)


def _analyse(db: Database) -> None:
    """Telemetry events and the analyses, each when its stage is installed."""
    try:
        from .analysis.run import run_all_analyses
    except ImportError:
        console.print("    (analyses not available in this build)")
        return
    run_all_analyses(db, console=console)
