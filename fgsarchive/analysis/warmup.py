"""Imported by the analyses' forkserver before it forks the pool's workers (``ANALYSIS_PRELOAD``).

Each worker would otherwise load, on its first unit, the compiled kernels from numba's cache and
the libraries the periodogram imports on first use (nifty-ls, which imports astropy.timeseries:
~1.4 s; scipy.fft): ~2 s of CPU per worker per run, measured. Done once here, the forked workers
inherit them. The forkserver starts at the beginning of ``fgsarchive analyse``, so this runs
while the main process imports and plans. Nothing here may fail the server: errors are ignored
(a worker then loads what it needs itself, as before).
"""

from __future__ import annotations

import contextlib

import numpy as np

CADENCE_S = 0.064  # s, the guider's frame time: the FFT periodogram's grid


def synthetic_visit(n_frames: int = 3_000, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Frame times (MJD) of two runs offset by a fraction of a cadence (two FFT offset classes),
    and noise series named as the analyses name them, a few frames masked."""
    from ..choices import PERIODOGRAM_PARAMETERS

    rng = np.random.default_rng(seed)
    half = n_frames // 2
    t_s = np.arange(n_frames) * CADENCE_S
    t_s[half:] += 30.0 + 0.37 * CADENCE_S
    series = {}
    for name in (*PERIODOGRAM_PARAMETERS, "background"):
        values = rng.normal(size=n_frames)
        values[rng.choice(n_frames, 3, replace=False)] = np.nan
        series[name] = values
    return 60_000.0 + t_s / 86_400.0, series


def warm_up() -> None:
    """Run the unit kernels once on a small synthetic visit (results discarded)."""
    from .anomalies import detect_anomalies
    from .periodogram import periodogram_series, spike_mask

    time_mjd, series = synthetic_visit()
    with contextlib.suppress(Exception):
        detect_anomalies(time_mjd, series, workers=1)  # one thread: no threads before a fork
    names = [n for n in series if n != "background"]
    values = np.vstack([series[n] for n in names])
    with contextlib.suppress(Exception):
        for row in values:
            spike_mask(row)
        periodogram_series(time_mjd * 86_400.0, values, names=names)
    with contextlib.suppress(Exception):
        import nifty_ls  # noqa: F401  (imported, not run: no OpenMP threads before a fork)
    with contextlib.suppress(Exception):
        import scipy.fft  # noqa: F401


warm_up()
