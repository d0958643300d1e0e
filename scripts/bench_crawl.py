"""Benchmark the crawler against the loopback MAST server (no network needed).

1. A 20-file program (fine-guide files) downloaded and ingested with faults on: faults injected,
   retries made, files intact by sha256.
2. Download throughput on loopback: MastClient.parallel_download (1 and 4 workers) beside a plain
   single-stream copy of the same bytes (requests GET of each file in turn, no retry logic).
3. Resume: `fgsarchive crawl` in a subprocess killed (SIGKILL) half-way through the downloads, then
   run again: time to finish, and how many finished files were requested again (must be 0).

Usage: python scripts/bench_crawl.py [--frames-per-file 10000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from fgsarchive.crawl import crawl, ingest_programs
from fgsarchive.db import Database
from fgsarchive.mast import MastClient, MastConfig
from fgsarchive.simulate import simulate_program
from fgsarchive.testing.mast_server import FaultPlan, MastTestServer

PROGRAM = 1534


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config(srv: MastTestServer, **kw) -> MastConfig:
    base = dict(
        mast_url=srv.url,
        gsc_url=srv.url,
        backoff_s=0.02,
        backoff_max_s=0.5,
        poll_interval_s=0.02,
        max_retries=8,
    )
    base.update(kw)
    cfg = MastConfig(**base)
    object.__setattr__(cfg, "token", None)  # never send a token from the environment here
    return cfg


def faults_run(products: Path, work: Path, originals: dict[str, str]) -> None:
    print("== 1. 20-file program, downloaded and ingested with faults on")
    plan = FaultPlan(
        seed=2024,
        schedule={"invoke": ["503"]},
        probabilities={"503": 0.15, "429": 0.1, "drop": 0.15, "truncate": 0.1, "reset": 0.05},
        retry_after="0",
        partial_fraction=0.5,
    )
    db = Database(work / "faults.duckdb")
    with MastTestServer(products, faults=plan, checksums=True) as srv:
        started = time.perf_counter()
        with MastClient(config(srv)) as client:
            report = ingest_programs(
                db,
                [PROGRAM],
                client=client,
                products="fg",
                cache_dir=work / "cache-faults",
                workers=4,
            )
        seconds = time.perf_counter() - started
        stats = srv.stats
    n = len(originals)
    got = {p.name: sha256(p) for p in (work / "cache-faults").rglob("*.fits")}
    intact = sum(got.get(name) == digest for name, digest in originals.items())
    downloads = stats["by_endpoint"].get("download", 0)
    invokes = stats["by_endpoint"].get("invoke", 0)
    print(
        f"files listed {report.listed}, ingested {len(report.ingest.ingested)}, "
        f"frames {report.ingest.n_frames:,}, in {seconds:.2f} s"
    )
    print(
        f"faults injected: {sum(stats['faults'].values())} {dict(sorted(stats['faults'].items()))}"
    )
    print(
        f"retries made: {downloads - n} download retries ({stats['range_requests']} resumed "
        f"with Range), {invokes - 1 - stats['executing']} query retries"
    )
    print(f"files intact by sha256: {'all' if intact == n else intact} ({intact}/{n})")
    print(f"failed: {len(report.failed) + len(report.unavailable)}")


def throughput(products: Path, work: Path, originals: dict[str, str]) -> None:
    print("\n== 2. download throughput on loopback (same bytes, no faults)")
    total = sum(p.stat().st_size for p in products.rglob("*_cal.fits"))
    names = sorted(originals)
    with MastTestServer(products, chunk_size=1 << 20) as srv:
        # plain single stream: GET each file in turn, no retries, no checks
        dest = work / "plain"
        dest.mkdir()
        started = time.perf_counter()
        with requests.Session() as session:
            for name in names:
                url = f"{srv.url}/api/v0.1/Download/file"
                with session.get(
                    url, params={"uri": f"mast:JWST/product/{name}"}, stream=True
                ) as r:
                    r.raise_for_status()
                    with open(dest / name, "wb") as fh:
                        for chunk in r.iter_content(1 << 16):
                            fh.write(chunk)
        plain = time.perf_counter() - started
        results = {"plain requests GET, 1 stream": plain}
        for workers in (1, 4):
            out = work / f"client-{workers}"
            with MastClient(config(srv)) as client:
                started = time.perf_counter()
                outcomes = client.parallel_download(names, out, workers=workers)
                results[f"MastClient.parallel_download, {workers} worker(s)"] = (
                    time.perf_counter() - started
                )
            assert all(o.ok for o in outcomes)
            assert all(sha256(out / n) == originals[n] for n in names)
    print(f"{len(names)} files, {total / 1e6:.1f} MB")
    for label, seconds in results.items():
        print(f"  {label:<44s} {seconds:6.2f} s  {total / 1e6 / seconds:8.1f} MB/s")


def resume(products: Path, work: Path, originals: dict[str, str]) -> None:
    print("\n== 3. crawl killed half-way through the downloads, then resumed")
    db_path, cache = work / "crawl.duckdb", work / "cache-crawl"
    n = len(originals)
    with MastTestServer(
        products, faults=FaultPlan(probabilities={"slow": 1.0}, slow_s=0.05)
    ) as srv:
        env = {
            **os.environ,
            "FGSARCHIVE_MAST_URL": srv.url,
            "FGSARCHIVE_MAST_POLL": "0.02",
            "FGSARCHIVE_MAST_BACKOFF": "0.02",
        }
        env.pop("MAST_API_TOKEN", None)
        cmd = [
            sys.executable,
            "-m",
            "fgsarchive",
            "--quiet",
            "crawl",
            "--since",
            "2022-12-03",
            "--until",
            "2022-12-06",
            "--window-days",
            "1",
            "--db",
            str(db_path),
            "--cache",
            str(cache),
            "--workers",
            "2",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = time.perf_counter()
        while proc.poll() is None:
            done = [p for p in cache.rglob("*_cal.fits")] if cache.exists() else []
            if len(done) >= n // 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait()
        proc.stderr.close()
        first = time.perf_counter() - started
        finished = {p.name for p in cache.rglob("*_cal.fits")}
        partial = list(cache.rglob("*.part"))
        print(
            f"killed after {first:.2f} s with {len(finished)}/{n} files complete in the cache, "
            f"{len(partial)} partial"
        )
        before = dict(srv.stats["by_file"])
        db = Database(db_path)
        with db.reader() as con:
            states = con.execute("SELECT state, count(*) FROM mast_files GROUP BY 1").fetchall()
        print(f"mast_files states after the kill: {dict(sorted(states))}")
        started = time.perf_counter()
        with MastClient(config(srv)) as client:
            report = crawl(
                db,
                client=client,
                since_mjd=59916.0,
                until_mjd=59919.0,
                window_days=1.0,
                cache_dir=cache,
                workers=2,
            )
        seconds = time.perf_counter() - started
        after = srv.stats["by_file"]
    again = sorted(name for name in finished if after.get(name, 0) > before.get(name, 0))
    print(
        f"resume: {seconds:.2f} s to finish; {len(report.downloaded)} downloaded, "
        f"{len(report.cached)} taken from the cache, {len(report.skipped)} already ingested, "
        f"{len(report.ingest.ingested)} ingested now"
    )
    print(f"finished files requested again: {len(again)}")
    with db.reader() as con:
        states = con.execute("SELECT state, count(*) FROM mast_files GROUP BY 1").fetchall()
    print(f"mast_files states after the resume: {dict(sorted(states))}")
    got = {p.name: sha256(p) for p in cache.rglob("*_cal.fits")}
    print(f"files intact by sha256: {'all' if got == originals else 'NOT ALL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames-per-file", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    work.mkdir(parents=True, exist_ok=True)
    products = work / "products"
    started = time.perf_counter()
    if not products.exists():
        simulate_program(
            products,
            program=PROGRAM,
            n_observations=2,
            n_visits=5,
            files_per_visit=2,
            frames_per_file=args.frames_per_file,
            include_other_products=False,
            seed=1,
        )
    originals = {p.name: sha256(p) for p in products.rglob("*_cal.fits")}
    print(
        f"simulated {len(originals)} files of program {PROGRAM} "
        f"({sum(p.stat().st_size for p in products.rglob('*_cal.fits')) / 1e6:.1f} MB) "
        f"in {time.perf_counter() - started:.1f} s; workdir {work}\n"
    )
    for step in (faults_run, throughput, resume):
        step(products, work, originals)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
