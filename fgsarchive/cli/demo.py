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
        simulate_demo_program,
        update_demo_archive,
    )
    from .analysis import (
        print_anomaly_summary,
        print_periodogram_summary,
        print_variability_summary,
    )
    from .crawl import step_line

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

    def on_step(step) -> None:
        """Print each step of the chain as it ends (fgsarchive.pipeline.update_archive)."""
        if step.step == "ingest":
            ing = step.detail.ingest
            console.print(
                f"    {len(ing.ingested)} ingested, {len(ing.skipped)} unchanged, "
                f"{len(ing.failed)} failed; {ing.n_frames:,} frames in {step.seconds:.1f} s",
                highlight=False,
            )
            console.print(
                "[bold]3/5 fit[/bold] every frame: 2D Gaussian, moments, photometry; then "
                "telemetry, events and the guide-star catalog",
                highlight=False,
            )
        elif step.step == "fit" and step.detail is not None:
            fitted = step.detail
            console.print(
                f"    {fitted.frames:,} frames fitted in {fitted.seconds:.1f} s "
                f"({fitted.frames_per_s:,.0f} frames/s); {fitted.skipped_files} file(s) already "
                "fitted",
                highlight=False,
            )
        elif step.step == "stars":
            console.print(f"    {step_line(step)}", highlight=False)
            console.print("[bold]4/5 analyse[/bold]", highlight=False)
        elif step.step == "analyse" and step.detail is not None:
            results = step.detail
            seconds = results.seconds
            print_periodogram_summary(console, results.peaks, seconds=seconds.get("periodograms"))
            print_anomaly_summary(console, results.anomalies, seconds=seconds.get("anomalies"))
            print_variability_summary(
                console, results.variability, seconds=seconds.get("variables")
            )
        else:
            console.print(f"    {step_line(step)}", highlight=False)

    def warn_indented(text: str) -> None:
        console.print(f"    [yellow]warning:[/yellow] {text}", highlight=False)

    update_demo_archive(db, sim, workdir, workers, on_step=on_step, on_warning=warn_indented)
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
