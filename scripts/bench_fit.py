"""The fitter, side by side in one run on the same simulated frames.

Usage: python scripts/bench_fit.py [--frames 200000] [--n-ref 2000] [--rss-frames 2000000]
                                   [--spelunker-python PATH]

(a) spelunker's method: scipy ``curve_fit`` of astropy's Gaussian2D + offset, per frame, one process
    (and, with --spelunker-python, spelunker's own shipped ``gauss2d_fit`` run in that interpreter);
(b) our fitter, ``fit_gaussian_stack`` on the in-memory stack, one process (numba 1 and 2 threads);
(c) the whole ``fgsarchive fit`` command, 2 workers, reading frames from and writing fits to the
    archive (wall time of the command, Python start included);
then quick fit and photometry rates, ``fgsarchive fit`` through a 2-worker local Dask cluster against
the process pool, and peak RSS of a fit of ``--rss-frames`` frames against one of half as many.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit_kernels import XY, astropy_model, moments_guess, run_spelunker  # noqa: E402

from fgsarchive.db import Database  # noqa: E402
from fgsarchive.fit.model import fit_gaussian_stack, quick_fit_stack  # noqa: E402
from fgsarchive.fit.photometry import aperture_photometry_stack, background_stack  # noqa: E402
from fgsarchive.ingest import ingest_directory  # noqa: E402
from fgsarchive.simulate import read_frame_truth, simulate_program  # noqa: E402

SPELUNKER_SHIPPED_FPS = 187.0  # measured here (../shared/measurements.md), every row NaN


def curve_fit_stack(frames: np.ndarray, guesses: np.ndarray) -> np.ndarray:
    """spelunker's method, per frame, with NaN pixels left out (curve_fit refuses NaN), canonical."""
    import warnings

    from scipy.optimize import curve_fit

    out = np.full((len(frames), 7), np.nan)
    for i, frame in enumerate(frames):
        y = frame.ravel().astype(np.float64)
        ok = np.isfinite(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[i] = curve_fit(astropy_model, XY[:, ok], y[ok], p0=np.nan_to_num(guesses[i]))[0]
            except (RuntimeError, ValueError):
                pass
    out[:, 3:5] = np.abs(out[:, 3:5])
    swap = out[:, 3] < out[:, 4]
    out[swap, 3], out[swap, 4] = out[swap, 4], out[swap, 3].copy()
    out[swap, 5] += np.pi / 2
    out[:, 5] = np.mod(out[:, 5], np.pi)
    return out


def build_archive(workdir: Path, frames: int, seed: int) -> Database:
    """Simulate a program of ``frames`` frames and ingest it (cached between runs)."""
    products = workdir / f"products-{frames}"
    db = Database(workdir / f"fit-{frames}.duckdb")
    if not (workdir / f".done-{frames}").exists():
        shutil.rmtree(products, ignore_errors=True)
        for p in workdir.glob(f"fit-{frames}.duckdb*"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        n_files = max(1, frames // 50_000)
        simulate_program(
            products,
            program=2000 + seed,
            n_visits=n_files,
            frames_per_file=frames // n_files,
            seed=seed,
            include_other_products=False,
        )
        ingest_directory(db, products)
        (workdir / f".done-{frames}").write_text("ok")
    return db


def clear_fits(db: Database) -> None:
    for name in ("fits", "quickfits", "photometry"):
        shutil.rmtree(db.parts.root / name, ignore_errors=True)


def fit_command(db: Database, *extra: str) -> tuple[float, dict]:
    """Wall time and peak RSS (MB) of `fgsarchive fit` in a fresh process: of the main process, and
    of the whole process tree (pool workers fork from a forkserver, so they are grandchildren)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fgsarchive", "-q", "fit", "--db", str(db.path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    main_peak = tree_peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            family = [root, *root.children(recursive=True)]
            rss = [p.memory_info().rss for p in family]
        except psutil.Error:
            rss = [0]
        main_peak = max(main_peak, rss[0])
        tree_peak = max(tree_peak, sum(rss))
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"fgsarchive fit failed: {stderr.strip()[-400:]}")
    return wall, {"main": main_peak / 2**20, "tree": tree_peak / 2**20}


def load_frames(db: Database, n: int) -> tuple[np.ndarray, np.ndarray, list]:
    with db.reader() as con:
        t = con.sql(
            f"SELECT file_name, frame, pixels FROM frames ORDER BY time_mjd LIMIT {int(n)}"
        ).to_arrow_table()
    pixels = t.column("pixels").combine_chunks().flatten().to_numpy().reshape(-1, 8, 8)
    return (
        pixels.astype(np.float32),
        t.column("frame").to_numpy(),
        t.column("file_name").to_pylist(),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--n-ref", type=int, default=2000)
    ap.add_argument("--rss-frames", type=int, default=2_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/fgsarchive-bench-fit"))
    ap.add_argument("--spelunker-python", default=None)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    import numba

    db = build_archive(args.workdir, args.frames, seed=1)
    frames, frame_no, names = load_frames(db, args.frames)
    n = len(frames)
    print(
        f"{n:,} simulated fine-guide frames (8x8 float32), {numba.config.NUMBA_NUM_THREADS} cores"
    )

    # (a) curve_fit, one process, on the first n_ref frames
    ref = frames[: args.n_ref]
    t0 = time.perf_counter()
    cf = curve_fit_stack(ref, moments_guess(ref))
    a_fps = len(ref) / (time.perf_counter() - t0)

    # (b) our stack fitter, one process
    fit_gaussian_stack(frames[:1000])  # compile / load the cache
    b = {}
    for threads in (1, 2):
        t0 = time.perf_counter()
        ours = fit_gaussian_stack(frames, n_threads=threads)
        b[threads] = n / (time.perf_counter() - t0)

    # (c) the whole command, 2 workers, archive in and out
    clear_fits(db)
    c_wall, _ = fit_command(db, "--workers", "2", "--what", "gauss")
    c_fps = n / c_wall
    clear_fits(db)
    call_wall, _ = fit_command(db, "--workers", "2")
    clear_fits(db)
    dask_wall, _ = fit_command(db, "--workers", "2", "--what", "gauss", "--scheduler", "local")

    # accuracy on the reference frames
    p = ours.params[: args.n_ref]
    ok = np.isfinite(cf[:, 1]) & (ours.status[: args.n_ref] == 0)
    dpos = np.maximum(np.abs(p[ok, 1] - cf[ok, 1]), np.abs(p[ok, 2] - cf[ok, 2]))
    damp = np.abs(p[ok, 0] / cf[ok, 0] - 1)
    agree = np.mean((dpos < 1e-4) & (damp < 1e-4))
    truth = read_frame_truth(db.path.parent / f"products-{args.frames}" / "truth")
    key = {
        (f, int(i)): k
        for k, (f, i) in enumerate(
            zip(truth["file_name"].to_list(), truth["frame"].to_list(), strict=True)
        )
    }
    idx = np.array([key[(names[k], int(frame_no[k]))] for k in range(args.n_ref)])
    tx, ty = truth["x_mean"].to_numpy()[idx], truth["y_mean"].to_numpy()[idx]
    ours_err = np.median(np.hypot(p[ok, 1] - tx[ok], p[ok, 2] - ty[ok]))
    cf_err = np.median(np.hypot(cf[ok, 1] - tx[ok], cf[ok, 2] - ty[ok]))

    # quick fit and photometry
    t0 = time.perf_counter()
    quick_fit_stack(frames)
    q_fps = n / (time.perf_counter() - t0)
    background_stack(frames[:1000])  # compile / load the cache
    aperture_photometry_stack(frames[:1000], ours.x_mean[:1000], ours.y_mean[:1000])
    t0 = time.perf_counter()
    bg = background_stack(frames)
    aperture_photometry_stack(frames, ours.x_mean, ours.y_mean, background=bg)
    ph_fps = n / (time.perf_counter() - t0)

    print(f"\n{'':58s} {'frames/s':>12s} {'vs (a)':>9s}")
    print(
        f"{'(a) curve_fit per frame, one process (spelunker method)':58s} {a_fps:12,.0f} {1:9.0f}x"
    )
    print(
        f"{'    spelunker gauss2d_fit as shipped (measured here, ncpus=2)':58s} {SPELUNKER_SHIPPED_FPS:12,.0f}"
    )
    print(
        f"{'(b) fit_gaussian_stack, one process, 1 numba thread':58s} {b[1]:12,.0f} {b[1] / a_fps:9.0f}x"
    )
    print(
        f"{'(b) fit_gaussian_stack, one process, 2 numba threads':58s} {b[2]:12,.0f} {b[2] / a_fps:9.0f}x"
    )
    print(
        f"{'(c) fgsarchive fit --what gauss, 2 workers, archive in/out':58s} {c_fps:12,.0f} {c_fps / a_fps:9.0f}x"
    )
    print(
        f"{'    the same, all stages (gauss, quick, phot)':58s} {n / call_wall:12,.0f} {n / call_wall / a_fps:9.0f}x"
    )
    print(
        f"{'    the same (gauss) on a 2-worker local Dask cluster':58s} {n / dask_wall:12,.0f} {n / dask_wall / a_fps:9.0f}x"
    )
    print(f"{'quick fit (moments), one process':58s} {q_fps:12,.0f}")
    print(f"{'background + 3 apertures, one process':58s} {ph_fps:12,.0f}")
    print(
        f"\n(c) / spelunker's shipped gauss2d_fit: {c_fps / SPELUNKER_SHIPPED_FPS:,.0f}x (target >= 100x); "
        f"(b) / (a): {b[1] / a_fps:,.0f}x (target >= 60x)"
    )
    print(
        f"accuracy on {ok.sum()} reference frames: {agree:.2%} agree with curve_fit within 1e-4 px and 1e-4 "
        f"relative amplitude; median |position - truth| ours {ours_err:.5f} px, curve_fit {cf_err:.5f} px"
    )
    if args.spelunker_python:
        # spelunker's curve_fit refuses NaN pixels: give it each frame's median there instead.
        clean = ref.copy()
        bad = ~np.isfinite(clean)
        clean[bad] = np.broadcast_to(np.nanmedian(clean, axis=(1, 2))[:, None, None], clean.shape)[
            bad
        ]
        print(run_spelunker(args.spelunker_python, clean))

    # peak RSS, flat in program size
    rows = []
    for size in (args.rss_frames // 2, args.rss_frames):
        big = build_archive(args.workdir, size, seed=2 if size == args.rss_frames else 3)
        clear_fits(big)
        wall, rss = fit_command(big, "--workers", "2")
        rows.append((size, wall, rss))
    for size, wall, rss in rows:
        print(
            f"fit of {size:,} frames (all stages, 2 workers): {size / wall:,.0f} frames/s; peak RSS "
            f"main {rss['main']:.0f} MB, whole process tree {rss['tree']:.0f} MB"
        )
    growth = rows[1][2]["tree"] / rows[0][2]["tree"]
    print(f"RSS growth {rows[1][0]:,} vs {rows[0][0]:,} frames: {growth:.2f} (flat means ~1.0)")


if __name__ == "__main__":
    main()
