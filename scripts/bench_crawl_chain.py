"""A crawl of a new program through the whole chain, per step; then a crawl with nothing new.

Usage: python scripts/bench_crawl_chain.py [--frames-per-file 25000] [--visits 2] [--workers 2]

The simulator's program is served by the loopback MAST server (MAST, EDB telemetry and GSC rows on
127.0.0.1) and crawled with ``fgsarchive.pipeline.update_archive(FromCrawl(...))``, the call behind
``fgsarchive crawl``: download, ingest, fit, telemetry, events, stars, analyse. The second crawl finds
nothing new. Prints both runs' seconds per step side by side (loopback: no network latency; the
machine may be shared, so timings are noisy).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames-per-file", type=int, default=25_000)
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()

    from fgsarchive.crawl import parse_date
    from fgsarchive.db import Database
    from fgsarchive.mast import MastClient, MastConfig
    from fgsarchive.pipeline import ALL_STEPS, FromCrawl, update_archive
    from fgsarchive.simulate import FluxDrop, simulate_program
    from fgsarchive.telemetry import DEFAULT_MNEMONICS
    from fgsarchive.testing.mast_server import MastTestServer
    from fgsarchive.testing.serve import products_span, simulated_catalog, simulated_edb

    work = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    t = time.perf_counter()
    sim = simulate_program(
        work / "products",
        program=1534,
        n_observations=1,
        n_visits=opts.visits,
        frames_per_file=opts.frames_per_file,
        include_other_products=True,
        seed=2,
        injections=[FluxDrop(start_s=300.0, duration_s=20.0, depth=0.05, observation=1, visit=1)],
    )
    print(f"simulated {len(sim.files)} files in {time.perf_counter() - t:.1f} s -> {work}")
    edb = simulated_edb(sim.telemetry, *products_span(sim.out_dir))
    for name in DEFAULT_MNEMONICS:
        edb.setdefault(name, ([], []))
    source = FromCrawl(
        since_mjd=parse_date("2022-12-04"),
        until_mjd=parse_date("2022-12-08"),
        window_days=1.0,
        cache_dir=work / "cache",
    )
    db = Database(work / "a.duckdb")
    runs = []
    with MastTestServer(
        products_dir=sim.out_dir, telemetry=edb, catalog=simulated_catalog(sim.stars)
    ) as srv:
        config = MastConfig(mast_url=srv.url, gsc_url=srv.url, poll_interval_s=0.02)
        for label in ("new program", "nothing new"):
            srv.reset_stats()
            with MastClient(config) as client:
                report = update_archive(db, source, client=client, workers=opts.workers)
            runs.append((label, report, srv.stats["requests"]))
    frames = runs[0][1].steps["ingest"].counts["frames"]
    print(f"\n{frames:,} frames in {len(sim.fg_files)} fine-guide files, workers={opts.workers}")
    print(f"{'step':<10}" + "".join(f"{label:>16}" for label, _, _ in runs) + "   what (first run)")
    for step in ("ingest", *ALL_STEPS):
        cells = "".join(f"{r.steps[step].seconds:>14.2f} s" for _, r, _ in runs)
        counts = runs[0][1].steps[step].counts
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) if counts else ""
        print(f"{step:<10}{cells}   {shown}")
    print(f"{'total':<10}" + "".join(f"{r.seconds:>14.2f} s" for _, r, _ in runs))
    print(f"{'requests':<10}" + "".join(f"{n:>16}" for _, _, n in runs))


if __name__ == "__main__":
    multiprocessing.freeze_support()
    main()
