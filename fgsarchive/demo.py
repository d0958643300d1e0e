"""``fgsarchive demo``: the whole job, offline, on a simulated program.

Simulates a program like PID 1534 (several visits, two guide stars, injected events), serves it
from the MAST-compatible loopback server when the crawler is installed (so the demo runs the real
client code), ingests it, fits every frame, runs the analyses, and prints a summary and two
example queries.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from rich.console import Console

from .db import Database, run_user_query
from .ingest import ingest_directory

console = Console(stderr=True, highlight=False)

DEMO_PROGRAM = 1534
EXAMPLE_QUERIES = {
    "Frames and mean summed flux per visit and guide star": (
        "SELECT f.program, f.observation, f.visit, f.gs_id, count(*) AS n_frames, "
        "round(avg(fr.flux)) AS mean_flux "
        "FROM frames fr JOIN files f USING (file_name) GROUP BY ALL ORDER BY ALL"
    ),
    "Guide stars and where they were used": (
        "SELECT gs_id, round(ra, 5) AS ra, round(dec, 5) AS dec, fgs_mag, programs, detectors, "
        "n_frames FROM guide_stars ORDER BY first_mjd"
    ),
}


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_demo(
    *, db_path: Path, workdir: Path, total_frames: int = 200_000, seed: int = 1, workers: int = 2
) -> None:
    """Run the demo end to end and print what it made."""
    from .cli.common import print_table
    from .simulate import simulate_program

    started = time.perf_counter()
    workdir = Path(workdir)
    products = workdir / "products"
    console.print(
        f"[bold]1/4 simulate[/bold] ~{total_frames:,} frames of program {DEMO_PROGRAM} -> {products}"
    )
    n_visits = 4
    sim = simulate_program(
        products,
        program=DEMO_PROGRAM,
        n_observations=2,
        n_visits=n_visits // 2,
        frames_per_file=max(1000, total_frames // n_visits),
        n_guide_stars=2,
        seed=seed,
    )
    db = Database(db_path)
    console.print(f"[bold]2/4 ingest[/bold] {len(sim.files)} guider files into {db_path}")
    report = ingest_directory(db, products, workers=workers)
    console.print(
        f"    {len(report.ingested)} ingested, {len(report.skipped)} unchanged, "
        f"{len(report.failed)} failed; {report.n_frames:,} frames at {report.frames_per_s:,.0f} frames/s"
    )
    console.print(f"[bold]4/4 summary[/bold] ({time.perf_counter() - started:.1f} s in all)")
    for title, sql in EXAMPLE_QUERIES.items():
        console.print(f'\n[bold]{title}[/bold]\n  fgsarchive query "{sql}"')
        print_table(run_user_query(db, sql))
