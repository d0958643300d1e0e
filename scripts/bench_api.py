"""Benchmark: open an archive and return a binned light curve of a 1M-frame visit.

Simulates one visit of ``--frames`` frames in files of ``--frames-per-file`` (default 1M in 20
files of 50k), ingests it, fits it (unless ``--no-fit``), then times in fresh processes:

* ``Archive(path).timeseries(program, obs=1, visit=1, bin_s=10)`` (flux only, and with the
  Gaussian-fit and photometry columns when the fit ran), measured inside the process after imports;
* the whole process (python start, imports, open, query) from the outside.

Target: < 1 s for the in-process call. Run: ``python scripts/bench_api.py [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from fgsarchive import Archive
import fgsarchive.archive  # noqa: F401  (import cost counted apart)
t1 = time.perf_counter()
arc = Archive(sys.argv[1])
columns = json.loads(sys.argv[2])
lc = arc.timeseries(program=1534, obs=1, visit=1, bin_s=10, columns=columns)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "query_s": t2 - t1, "rows": lc.height,
                  "frames": int(lc["n_frames"].sum()), "columns": lc.columns}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--frames-per-file", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-fit", action="store_true")
    args = parser.parse_args()

    from fgsarchive.archive import Archive
    from fgsarchive.simulate import simulate_program

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_api_"))
    db_path = work / "bench.duckdb"
    if not db_path.exists():
        t = time.perf_counter()
        n_files = max(1, args.frames // args.frames_per_file)
        simulate_program(
            work / "products",
            program=1534,
            n_observations=1,
            n_visits=1,
            files_per_visit=n_files,
            frames_per_file=args.frames_per_file,
            include_other_products=False,
            seed=1,
        )
        print(f"simulated {n_files} files in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        arc = Archive(db_path, writable=True)
        t = time.perf_counter()
        report = arc.ingest(work / "products", workers=2)
        print(
            f"ingested {report.n_frames:,} frames in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
        if not args.no_fit:
            t = time.perf_counter()
            arc.fit(workers=2)
            print(f"fitted in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    cases = {"flux only": []}
    if Archive(db_path).has("fits"):
        cases["flux + 7 Gaussian parameters + background, flux_opt"] = None
    results = {}
    for label, columns in cases.items():
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(db_path), json.dumps(columns)],
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - t
            runs.append({**json.loads(proc.stdout), "process_s": wall})
        results[label] = {
            "query_s (median)": statistics.median(r["query_s"] for r in runs),
            "import_s (median)": statistics.median(r["import_s"] for r in runs),
            "process_s (median)": statistics.median(r["process_s"] for r in runs),
            "frames": runs[0]["frames"],
            "bins": runs[0]["rows"],
            "columns": runs[0]["columns"],
        }
    print(json.dumps({"archive": str(db_path), "results": results}, indent=2))


if __name__ == "__main__":
    main()
