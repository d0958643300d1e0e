"""The analyses' forkserver warm-up (fgsarchive.analysis.warmup): what it runs must work (its errors
are suppressed in the server), and importing it leaves the kernels and libraries loaded."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from fgsarchive.analysis.anomalies import detect_anomalies
from fgsarchive.analysis.periodogram import periodogram_series
from fgsarchive.analysis.warmup import synthetic_visit


def test_synthetic_visit_takes_the_fft_path_with_two_offsets_and_masks():
    time_mjd, series = synthetic_visit()
    names = [n for n in series if n != "background"]
    values = np.vstack([series[n] for n in names])
    assert (~np.isfinite(values)).sum(axis=1).tolist() == [3] * len(names)
    res = periodogram_series(time_mjd * 86_400.0, values, names=names)
    assert res.backend == "fft"
    assert res.peaks.height > 0
    anomalies = detect_anomalies(time_mjd, series, workers=1)
    assert "kind" in anomalies.columns


def test_importing_the_warmup_loads_kernels_and_libraries():
    code = (
        "import sys, fgsarchive.analysis.warmup\n"
        "from fgsarchive.analysis import periodogram as P\n"
        "print(len(P._fft_power.signatures), len(P._missing_sums.signatures),"
        " 'nifty_ls' in sys.modules, 'scipy.stats' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] != "0" and out[1] != "0"  # compiled (or loaded from cache) in this process
    assert out[2] == "True"  # nifty-ls imported (the fallback's ~1.4 s)
    assert out[3] == "False"  # the tails come from scipy.special: scipy.stats stays out
