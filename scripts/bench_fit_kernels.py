"""Benchmark the per-frame fitters against scipy curve_fit (spelunker's method) on seeded frames.

Usage::

    python scripts/bench_fit_kernels.py                       # defaults: 2000 / 200k frames
    python scripts/bench_fit_kernels.py --n-ref 500 --n 50000 # quicker
    python scripts/bench_fit_kernels.py --spelunker-python /path/to/venv/bin/python

Prints, side by side on the same frames: (a) curve_fit per frame with astropy's Gaussian2D + offset
started from a moments guess, one process; (b) fit_gaussian_stack with 2 and 1 threads;
quick fit, background and aperture photometry rates; accuracy against curve_fit and the truth;
numba first-call (compile) time with a cold and a warm cache; (c) the production fit before and
after weighting by the noise model (issue 13), interleaved in one run, optionally against the
fit/model.py of another git ref (``--before-ref``, e.g. the merge base; ``--only-weighting`` runs
(c) alone). Optionally runs spelunker's own
``gauss2d_fit`` (ray) in another interpreter where spelunker is installed.

Rates are wall clock (best of --repeats) and, in brackets, frames per CPU-second of this process
(steadier on a shared machine). Nothing here is asserted: it only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

YY, XX = np.mgrid[:8, :8].astype(np.float64)
XY = np.vstack([XX.ravel(), YY.ravel()])


def simulate(n: int, seed: int, *, jitter: float | None = None):
    """Poisson + read-noise frames (amplitude 5e4-7e5, offset 3000, sigma 0.55-0.7 px).

    With ``jitter`` (px), one star guided at a fixed place with white jitter of that size
    (amplitude 2.8e5, fixed shape): what consecutive real frames look like.
    """
    from fgsarchive.fit.model import gaussian2d

    rng = np.random.default_rng(seed)
    if jitter is None:
        amp = rng.uniform(5e4, 7e5, n)
        x = rng.uniform(2.5, 4.5, n)
        y = rng.uniform(2.5, 4.5, n)
        sx = rng.uniform(0.55, 0.7, n)
        sy = rng.uniform(0.55, 0.7, n)
        th = rng.uniform(0.0, np.pi, n)
    else:
        amp = 2.8e5 * (1 + rng.normal(0, 1e-3, n))
        x = 3.4 + rng.normal(0, jitter, n)
        y = 3.6 + rng.normal(0, jitter, n)
        sx = np.full(n, 0.64)
        sy = np.full(n, 0.60)
        th = np.full(n, 0.7)
    truth = np.stack([amp, x, y, sx, sy, th, np.full(n, 3000.0)], axis=1)
    frames = np.empty((n, 8, 8), np.float32)
    for s in range(0, n, 100_000):  # bounded memory
        t = truth[s : s + 100_000]
        model = gaussian2d(XX, YY, *(c[:, None, None] for c in t.T))
        frames[s : s + 100_000] = rng.poisson(model) + rng.normal(0.0, 10.0, model.shape)
    return frames, truth


def astropy_model(xy, amplitude, x_mean, y_mean, x_stddev, y_stddev, theta, offset):
    from astropy.modeling.functional_models import Gaussian2D

    return (
        Gaussian2D.evaluate(xy[0], xy[1], amplitude, x_mean, y_mean, x_stddev, y_stddev, theta)
        + offset
    )


def curve_fit_stack(frames: np.ndarray, guesses: np.ndarray) -> np.ndarray:
    """spelunker's method: scipy curve_fit per frame, astropy Gaussian2D + offset, unweighted."""
    from scipy.optimize import curve_fit

    out = np.full((len(frames), 7), np.nan)
    for i, f in enumerate(frames):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                popt, _ = curve_fit(astropy_model, XY, f.ravel().astype(np.float64), p0=guesses[i])
                out[i] = popt
            except RuntimeError:
                pass
    # canonical: x_stddev >= y_stddev > 0, theta in [0, pi)
    out[:, 3:5] = np.abs(out[:, 3:5])
    swap = out[:, 3] < out[:, 4]
    out[swap, 3], out[swap, 4] = out[swap, 4], out[swap, 3].copy()
    out[swap, 5] += np.pi / 2
    out[:, 5] = np.mod(out[:, 5], np.pi)
    return out


def moments_guess(frames: np.ndarray) -> np.ndarray:
    """A good start for curve_fit: our quick fit + peak amplitude + background, theta = 0."""
    from fgsarchive.fit.model import quick_fit_stack
    from fgsarchive.fit.photometry import background_stack

    q = quick_fit_stack(frames)
    bg = background_stack(frames)
    amp = frames.reshape(len(frames), -1).max(axis=1) - bg
    return np.stack([amp, q.x_mean, q.y_mean, q.x_stddev, q.y_stddev, 0 * bg, bg], axis=1)


def rate(fn, n: int, repeats: int) -> tuple[float, float, object]:
    """(best wall-clock frames/s, frames per CPU-second of the best run, last result)."""
    best_wall, best_cpu, res = 0.0, 0.0, None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        res = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if n / wall > best_wall:
            best_wall, best_cpu = n / wall, n / max(cpu, 1e-9)
    return best_wall, best_cpu, res


def fmt(r: tuple[float, float, object]) -> str:
    return f"{r[0]:>12,.0f} /s  [{r[1]:>11,.0f} /CPU-s]"


def compile_times() -> dict[str, float]:
    """First-call times in fresh interpreters: empty numba cache, then the cache it left."""
    code = textwrap.dedent(
        """
        import time, json, numpy as np
        t0 = time.perf_counter()
        from fgsarchive.fit.model import fit_gaussian_stack, quick_fit_stack
        from fgsarchive.fit.photometry import background_stack, aperture_photometry_stack
        t1 = time.perf_counter()
        f = np.random.default_rng(0).normal(3000, 50, (4, 8, 8)).astype(np.float32)
        f[:, 3:5, 3:5] += 1e5
        fit_gaussian_stack(f); t2 = time.perf_counter()
        quick_fit_stack(f); t3 = time.perf_counter()
        aperture_photometry_stack(f, 3.5, 3.5); t4 = time.perf_counter()
        print(json.dumps({"import": t1 - t0, "fit": t2 - t1, "quick": t3 - t2, "phot": t4 - t3}))
        """
    )
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for label in ("cold", "warm"):
            p = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            for k, v in json.loads(p.stdout.strip().splitlines()[-1]).items():
                out[f"{label}_{k}"] = v
    return out


def run_spelunker(python: str, frames: np.ndarray) -> str:
    """spelunker.load().gauss2d_fit(fg_array=..., ncpus=2) in another interpreter."""
    code = textwrap.dedent(
        """
        import sys, time, os, json, tempfile, numpy as np
        import spelunker
        frames = np.load(sys.argv[1])
        os.chdir(tempfile.mkdtemp())
        spk = spelunker.load(dir=os.getcwd())
        t0 = time.perf_counter()
        table = spk.gauss2d_fit(fg_array=frames, ncpus=2)
        dt = time.perf_counter() - t0
        x = np.asarray(table["x_mean"], dtype=float)
        print(json.dumps({"n": len(frames), "seconds": dt, "nan_rows": int(np.isnan(x).sum()),
                          "x_mean": x.tolist()}))
        """
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames)
        p = subprocess.run(
            [python, "-c", code, str(path)], capture_output=True, text=True, timeout=1800
        )
    if p.returncode != 0:
        return "spelunker gauss2d_fit failed: " + p.stderr.strip().splitlines()[-1][:300]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return (
        f"spelunker gauss2d_fit (ray, ncpus=2), {r['n']} frames: {r['n'] / r['seconds']:,.0f} "
        f"frames/s; {r['nan_rows']} of {r['n']} rows NaN"
    )


def load_model_at(ref: str):
    """fgsarchive/fit/model.py as it was at git ``ref``, imported as a separate module."""
    import importlib.util

    code = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:fgsarchive/fit/model.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="fgs_model_before_"))
    path = folder / "fgs_model_before.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("fgs_model_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weighted_vs_unweighted(frames, jframes, args) -> None:
    """(c) The production fit before (unweighted) and after (noise model), interleaved runs."""
    from fgsarchive.fit.model import fit_gaussian_stack

    noise = (100.0, 1.0)  # these frames: Poisson counts + 10 e read noise, var = 100 + signal
    variants = {}
    if args.before_ref:
        before = load_model_at(args.before_ref)
        before.fit_gaussian_stack(frames[:64])  # compile outside the timings
        variants[f"unweighted, model.py at {args.before_ref}"] = before.fit_gaussian_stack
    variants["unweighted, this tree"] = fit_gaussian_stack
    variants["noise model (FIT_VERSION 2)"] = lambda f, **kw: fit_gaussian_stack(
        f, noise=noise, **kw
    )
    print(
        "\n(c) before/after weighting, 1 thread, 20k-frame runs interleaved, best of "
        f"{3 * args.repeats} each (per CPU-s is the steadier figure on a shared machine):"
    )
    for label, data in (("random frames", frames[:20000]), ("guided star", jframes[:20000])):
        best = dict.fromkeys(variants, (0.0, 0.0, None))
        ratios = {name: [] for name in variants}  # per round, CPU-s rate / the first variant's
        for _ in range(3 * args.repeats):
            first_cpu = None
            for name, fn in variants.items():
                r = rate(lambda fn=fn, data=data: fn(data, n_threads=1), len(data), 1)
                first_cpu = first_cpu or r[1]
                ratios[name].append(r[1] / first_cpu)
                if r[0] > best[name][0]:
                    best[name] = r
        first = next(iter(best.values()))
        for name, r in best.items():
            print(
                f"    {label:13} {name:40}: {fmt(r)}  steps {r[2].n_iter.mean():.2f}  "
                f"x{r[0] / first[0]:.2f} wall, x{r[1] / first[1]:.2f} per CPU-s (best); "
                f"paired per-round median x{np.median(ratios[name]):.2f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-ref", type=int, default=2000, help="frames for curve_fit")
    ap.add_argument("--n", type=int, default=200_000, help="frames for the fast kernels")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--no-compile", action="store_true", help="skip compile-time measurement")
    ap.add_argument("--spelunker-python", help="interpreter with spelunker installed")
    ap.add_argument(
        "--before-ref",
        help="git ref whose fit/model.py is timed side by side in (c), e.g. the merge base",
    )
    ap.add_argument("--only-weighting", action="store_true", help="run (c) only")
    args = ap.parse_args()

    import numba

    from fgsarchive.fit.model import fit_gaussian_stack, quick_fit_stack
    from fgsarchive.fit.photometry import (
        aperture_photometry_stack,
        background_stack,
        default_threads,
    )

    print(f"numba {numba.__version__}; {default_threads()} CPUs available to this process")
    frames, truth = simulate(args.n, args.seed)
    jframes, jtruth = simulate(args.n, args.seed + 1, jitter=0.02)
    fit_gaussian_stack(frames[:64])  # compile (or load the cache) outside the timings
    quick_fit_stack(frames[:64])
    aperture_photometry_stack(frames[:64], 3.5, 3.5)
    print(f"frames: {args.n:,} seeded random (A 5e4-7e5, sigma 0.55-0.7, random theta/position)")

    if args.only_weighting:
        weighted_vs_unweighted(frames, jframes, args)
        return

    # (a) curve_fit, one process
    ref_frames, ref_truth = frames[: args.n_ref], truth[: args.n_ref]
    guesses = moments_guess(ref_frames)
    cf = rate(lambda: curve_fit_stack(ref_frames, guesses), args.n_ref, 1)
    ref = cf[2]
    print(f"\n(a) curve_fit, astropy Gaussian2D+offset, {args.n_ref} frames: {fmt(cf)}")

    # (b) ours
    results = {}
    for nt in (2, 1):
        for warm in (True, False):
            r = rate(
                lambda nt=nt, warm=warm: fit_gaussian_stack(frames, n_threads=nt, warm_start=warm),
                args.n,
                args.repeats,
            )
            results[(nt, warm)] = r
            it = r[2].n_iter.mean()
            print(
                f"(b) fit_gaussian_stack threads={nt} warm_start={warm!s:5}: {fmt(r)}  "
                f"mean LM steps {it:.2f}"
            )
    best = results[(2, True)]
    print(
        f"    speed-up (b, 2 threads) / (a): {best[0] / cf[0]:,.0f}x wall, "
        f"{best[1] / cf[1]:,.0f}x per CPU-second"
    )
    for warm in (True, False):
        r = rate(
            lambda warm=warm: fit_gaussian_stack(jframes, n_threads=2, warm_start=warm),
            args.n,
            args.repeats,
        )
        print(
            f"    guided star, 0.02 px white jitter, warm_start={warm!s:5}: {fmt(r)}  "
            f"mean LM steps {r[2].n_iter.mean():.2f}"
        )

    weighted_vs_unweighted(frames, jframes, args)

    # accuracy
    fit = best[2]
    ours = fit.params[: args.n_ref]
    ok = np.all(np.isfinite(ref), axis=1)
    dx = np.abs(ours[ok, 1] - ref[ok, 1])
    dy = np.abs(ours[ok, 2] - ref[ok, 2])
    da = np.abs(ours[ok, 0] / ref[ok, 0] - 1)
    within = np.mean((dx < 1e-4) & (dy < 1e-4) & (da < 1e-4))
    print(
        f"\naccuracy vs curve_fit ({ok.sum()} frames): max |dx| {dx.max():.2e} px, "
        f"max |dy| {dy.max():.2e} px, max |dA/A| {da.max():.2e}; "
        f"within 1e-4: {100 * within:.2f}%"
    )
    for name, p, t in (("ours", fit.params, truth), ("curve_fit", ref[ok], ref_truth[ok])):
        print(
            f"accuracy vs truth, {name:9}: median |dx| {np.median(np.abs(p[:, 1] - t[:, 1])):.5f} px,"
            f" |dy| {np.median(np.abs(p[:, 2] - t[:, 2])):.5f} px, "
            f"|dA/A| {np.median(np.abs(p[:, 0] / t[:, 0] - 1)):.5f}"
        )
    print(f"status counts (0..4): {np.bincount(fit.status, minlength=5).tolist()}")

    # quick fit and photometry
    print()
    for nt in (2, 1):
        q = rate(lambda nt=nt: quick_fit_stack(frames, n_threads=nt), args.n, args.repeats)
        bg = rate(lambda nt=nt: background_stack(frames, n_threads=nt), args.n, args.repeats)
        ph = rate(
            lambda nt=nt: aperture_photometry_stack(frames, fit.x_mean, fit.y_mean, n_threads=nt),
            args.n,
            args.repeats,
        )
        print(f"threads={nt}: quick_fit {fmt(q)}")
        print(f"threads={nt}: background {fmt(bg)}")
        print(f"threads={nt}: background + 3 exact apertures {fmt(ph)}")
    qf = q[2]
    print(
        f"quick fit accuracy: median |dx| {np.median(np.abs(qf.x_mean - truth[:, 1])):.4f} px, "
        f"median dx {np.median(qf.x_mean - truth[:, 1]):+.5f} px"
    )

    if not args.no_compile:
        ct = compile_times()
        print(
            "\nfirst call in a fresh interpreter (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in ct.items())
        )

    if args.spelunker_python:
        print("\n" + run_spelunker(args.spelunker_python, ref_frames))
    else:
        try:
            import spelunker  # noqa: F401

            print("\n" + run_spelunker(sys.executable, ref_frames))
        except ImportError:
            print("\nspelunker not importable here; pass --spelunker-python to include it")


if __name__ == "__main__":
    main()
