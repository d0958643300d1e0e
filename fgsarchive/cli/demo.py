"""``fgsarchive demo``: run the demo end to end (fgsarchive.demo) and print what it made."""

from __future__ import annotations

import time
from pathlib import Path

from .common import err, print_table


def run_demo(
    *, db_path: Path, workdir: Path, total_frames: int = 200_000, seed: int = 1, workers: int = 2
) -> None:
    """Simulate, serve and ingest, fit, analyse; print each step and the example queries."""
    from ..db import Database, run_user_query
    from ..demo import (
        DEMO_PROGRAM,
        EXAMPLE_QUERIES,
        N_VISITS,
        frames_per_visit,
        serve_and_ingest_demo,
        simulate_demo_program,
    )
    from ..fit.runner import fit_archive
    from .analysis import run_and_print_all_analyses

    console = err
    started = time.perf_counter()
    workdir = Path(workdir)
    products = workdir / "products"
    console.print(
        f"[bold]1/5 simulate[/bold] {frames_per_visit(total_frames) * N_VISITS:,} frames of "
        f"program {DEMO_PROGRAM} ({N_VISITS} visits, 2 guide stars, injected events) -> {products}",
        highlight=False,
    )
    sim = simulate_demo_program(products, total_frames=total_frames, seed=seed)
    db = Database(db_path)
    console.print(
        f"[bold]2/5 ingest[/bold] {len(sim.files)} guider files into {db_path}", highlight=False
    )
    report = serve_and_ingest_demo(db, sim, workdir, workers)
    console.print(
        f"    {len(report.ingested)} ingested, {len(report.skipped)} unchanged, "
        f"{len(report.failed)} failed; {report.n_frames:,} frames in {report.seconds:.1f} s",
        highlight=False,
    )
    console.print(
        "[bold]3/5 fit[/bold] every frame: 2D Gaussian, moments, photometry", highlight=False
    )
    fitted = fit_archive(db, workers=workers)
    console.print(
        f"    {fitted.frames:,} frames fitted in {fitted.seconds:.1f} s "
        f"({fitted.frames_per_s:,.0f} frames/s); {fitted.skipped_files} file(s) already fitted",
        highlight=False,
    )
    console.print("[bold]4/5 analyse[/bold]", highlight=False)
    run_and_print_all_analyses(db, console=console)
    console.print(
        f"[bold]5/5 summary[/bold] ({time.perf_counter() - started:.1f} s in all)", highlight=False
    )
    for title, sql in EXAMPLE_QUERIES.items():
        console.print(f'\n[bold]{title}[/bold]\n  fgsarchive query "{sql}"', highlight=False)
        print_table(run_user_query(db, sql))
    size = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file())
    console.print(
        f"\nThe simulated guider files and the download cache stay in {workdir}/ "
        f"({size / 1e6:,.0f} MB): the archive does not need them; delete the folder when done "
        f"(rm -r {workdir}). The archive is {db_path}.",
        highlight=False,
    )
