"""``fgsarchive demo``: the whole job, offline, on a simulated program.

Simulates a program like PID 1534 (four visits, two guide stars, injected flux drop, centroid jump,
mirror-tilt PSF change, a 5-minute oscillation, a variable guide star, HGA and filter-wheel moves),
serves it from the MAST-compatible server on 127.0.0.1 so the real client code discovers, downloads
and ingests it, fits every frame, fetches its telemetry and derives events, cross-matches its guide
stars, runs the analyses (all through ``fgsarchive.pipeline.update_archive``), and prints a summary
and example queries (``fgsarchive.cli.demo`` prints; this module holds the demo's pieces).
"""

from __future__ import annotations

from pathlib import Path

from .db import Database

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


def frames_per_visit(total_frames: int) -> int:
    """Frames the demo simulates per visit for a requested total (at least MIN_FRAMES_PER_VISIT)."""
    return max(MIN_FRAMES_PER_VISIT, total_frames // N_VISITS)


def simulate_demo_program(products: Path, *, total_frames: int = 200_000, seed: int = 1):
    """Write the demo's program (4 visits, 2 guide stars, the injected events) into ``products``."""
    from .simulate import simulate_program

    n_visits = N_VISITS
    injections, variables = demo_injections()
    return simulate_program(
        products,
        program=DEMO_PROGRAM,
        n_observations=2,
        n_visits=n_visits // 2,
        frames_per_file=frames_per_visit(total_frames),
        n_guide_stars=2,
        seed=seed,
        injections=injections,
        variable_stars=variables,
    )


def update_demo_archive(db: Database, sim, workdir: Path, workers: int, **callbacks):
    """The demo's steps 2-4 through the loopback MAST server (MAST, EDB, GSC on 127.0.0.1):
    :func:`fgsarchive.pipeline.update_archive`, the call behind ``fgsarchive crawl`` and
    ``fgsarchive ingest PROGRAM`` (download, ingest, fit, telemetry, events, stars, analyses).
    ``callbacks``: ``progress``, ``on_step``, ``on_warning`` as ``update_archive`` takes them."""
    from .pipeline import FromPrograms, update_archive
    from .testing.serve import loopback_mast

    with loopback_mast(sim) as (_server, config, program):
        source = FromPrograms([program], products="all", cache_dir=Path(workdir) / "cache")
        return update_archive(db, source, config=config, workers=workers, **callbacks)
