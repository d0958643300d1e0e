"""Fit pulls: are the Gaussian fit's errors honest? Before (unweighted, chi2-scaled) and after (noise model).

Usage::

    python scripts/bench_fit_pulls.py                  # 4000 frames per amplitude and noise kind
    python scripts/bench_fit_pulls.py --n 1000 --seed 3

For each noise kind and amplitude it simulates one guided star (fixed shape, 0.02 px white jitter,
offset 3000 DN/s) and prints std((fit - truth) / sigma), the pull, for x_mean, y_mean, amplitude,
x_stddev, y_stddev and offset, side by side: ``before`` = the fit as it was (unweighted, covariance
scaled by chi2/dof, curve_fit's default), ``after`` = weighted by the per-file noise model
(fgsarchive.fit.noise) with absolute errors, the model taken from ERR (``err``) or from the frames
(``frames``). Honest errors give 1. Also: the median reduced chi2 of the weighted fit, and the
scatter of x_mean after/before (weighting should make the estimates scatter less).

Noise kinds (e- = DN/s x gain x 0.032 s; gain 2 e-/DN, read noise 12 e-):

- ``poisson``: Poisson electrons + Gaussian read noise; ERR = the true sigma (as the simulator).
- ``gain``: the same, but the true gain is 1.4 e-/DN while ERR assumes 2 (not tuned to: ERR is
  wrong by 20-40 % in variance; the ``frames`` model sees the real noise).
- ``rowcorr``: ``poisson`` plus a read-noise pattern shared by each row of a frame (sd 1.5x the
  read noise, not in any model): pixel-correlated noise the fit does not know about.

:func:`pulls` is the function the science bench (scripts/bench_science.py) can call.
Nothing is asserted here; tests/test_fit_pulls.py asserts at a small size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fgsarchive.fit.model import PARAM_NAMES, fit_gaussian_stack, gaussian2d  # noqa: E402
from fgsarchive.fit.noise import noise_from_err, noise_from_frames  # noqa: E402

GAIN, EXPOSURE_S, READ_NOISE_E, OFFSET = 2.0, 0.032, 12.0, 3000.0
AMPLITUDES = (5e3, 5e4, 5e5, 7e5)
KINDS = ("poisson", "gain", "rowcorr")
PULL_PARAMS = ("x_mean", "y_mean", "amplitude", "x_stddev", "y_stddev", "offset")
YY, XX = np.mgrid[:8, :8].astype(np.float64)


def simulate(n: int, amplitude: float, kind: str, seed: int):
    """``(frames (n, 8, 8) float32, err (n, 8, 8) float32, truth (n, 7))`` of one guided star."""
    rng = np.random.default_rng(seed)
    truth = np.empty((n, 7))
    truth[:, 0] = amplitude
    truth[:, 1] = 3.4 + rng.normal(0, 0.02, n)
    truth[:, 2] = 3.6 + rng.normal(0, 0.02, n)
    truth[:, 3] = 0.65
    truth[:, 4] = 0.58
    truth[:, 5] = 0.4
    truth[:, 6] = OFFSET
    model = gaussian2d(XX[None], YY[None], *(truth[:, j, None, None] for j in range(7)))
    gain = 1.4 if kind == "gain" else GAIN
    gt = gain * EXPOSURE_S
    electrons = rng.poisson(model * gt).astype(np.float64)
    electrons += rng.normal(0.0, READ_NOISE_E, model.shape)
    if kind == "rowcorr":
        electrons += rng.normal(0.0, 1.5 * READ_NOISE_E, (n, 8, 1))
    frames = (electrons / gt).astype(np.float32)
    gt_err = GAIN * EXPOSURE_S  # what ERR assumes
    err = np.sqrt(model / gt_err + (READ_NOISE_E / gt_err) ** 2).astype(np.float32)
    return frames, err, truth


def _fitted(result) -> np.ndarray:
    """Frames with a fit and finite errors: converged, or NO_STAR after fitting (amplitude under
    5 sigma, which a faint star's frames often are: leaving them out would bias the pulls)."""
    good = np.isin(result.status, (0, 3)) & np.all(np.isfinite(result.errors), axis=1)
    return good & np.all(np.isfinite(result.params), axis=1)


def _pull_std(result, truth: np.ndarray, ok: np.ndarray) -> dict[str, float]:
    out = {}
    for name in PULL_PARAMS:
        j = PARAM_NAMES.index(name)
        z = (getattr(result, name)[ok] - truth[ok, j]) / getattr(result, name + "_err")[ok]
        out[name] = float(np.std(z)) if z.size > 1 else float("nan")
    return out


def pulls(
    n: int = 4000,
    amplitudes=AMPLITUDES,
    kinds=KINDS,
    seed: int = 1,
    sources=("err", "frames"),
    n_threads: int | None = None,
) -> list[dict]:
    """One row per (kind, amplitude): pull stds before and after (per noise source), chi2_red.

    Row keys: ``kind, amplitude, source, noise_a, noise_b, before, after`` (dicts param -> pull
    std), ``chi2_red`` (median, weighted fit), ``scatter_ratio`` (std of x_mean - truth, after /
    before), ``converged`` (share of frames fitted in both, see :func:`_fitted`).
    """
    rows = []
    for k, kind in enumerate(kinds):
        for i, amp in enumerate(amplitudes):
            frames, err, truth = simulate(n, amp, kind, seed * 1000 + 10 * k + i)
            before = fit_gaussian_stack(frames, n_threads=n_threads)
            for source in sources:
                model = (
                    noise_from_err(frames, err) if source == "err" else noise_from_frames(frames)
                )
                after = fit_gaussian_stack(frames, noise=model.params, n_threads=n_threads)
                ok = _fitted(before) & _fitted(after)
                dx_b = before.x_mean[ok] - truth[ok, 1]
                dx_a = after.x_mean[ok] - truth[ok, 1]
                rows.append(
                    {
                        "kind": kind,
                        "amplitude": amp,
                        "source": source,
                        "noise_a": model.a,
                        "noise_b": model.b,
                        "before": _pull_std(before, truth, ok),
                        "after": _pull_std(after, truth, ok),
                        "chi2_red": float(np.nanmedian(after.chi2_red[ok])),
                        "scatter_ratio": float(np.std(dx_a) / np.std(dx_b)),
                        "converged": float(ok.mean()),
                    }
                )
    return rows


def print_table(rows: list[dict]) -> None:
    heads = [p.replace("_mean", "").replace("_stddev", "_sd") for p in PULL_PARAMS]
    print(
        f"{'noise':8} {'ampl':>7} {'model':6} {'b (true 15.6)':>13} | "
        + " ".join(f"{h:>12}" for h in heads)
        + f" | {'chi2_red':>8} {'scatter':>7} {'conv':>5}"
    )
    print(f"{'':8} {'':>7} {'':6} {'':>13} | " + " ".join(f"{'bef -> aft':>12}" for _ in heads))
    for r in rows:
        cells = " ".join(f"{r['before'][p]:5.2f} ->{r['after'][p]:5.2f}" for p in PULL_PARAMS)
        print(
            f"{r['kind']:8} {r['amplitude']:7.0e} {r['source']:6} {r['noise_b']:13.2f} | {cells}"
            f" | {r['chi2_red']:8.3f} {r['scatter_ratio']:7.3f} {r['converged']:5.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="frames per amplitude and noise kind")
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args()
    started = time.perf_counter()
    rows = pulls(opts.n, seed=opts.seed)
    print(f"pull = std((fit - truth) / sigma), {opts.n} frames each; honest errors give 1.00")
    print_table(rows)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
