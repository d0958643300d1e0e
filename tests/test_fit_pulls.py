"""Fit errors are honest: std((fit - truth) / sigma) in 0.9-1.1 with the noise model (small size).

Runs the function of scripts/bench_fit_pulls.py on Poisson + read-noise frames of a guided star,
with the noise model from ERR and from the frames, and on frames whose gain ERR gets wrong (the
frames model must still hold; the ERR model must show it in chi2_red). The old path (unweighted,
covariance scaled by chi2/dof) must fail the same check on bright stars, so the test can fail.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_fit_pulls.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_fit_pulls", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(bench):
    return bench.pulls(n=1500, amplitudes=(5e4, 5e5), kinds=("poisson", "gain"), seed=5)


def test_weighted_fit_pulls_are_one(bench, rows):
    checked = 0
    for row in rows:
        if row["kind"] == "gain" and row["source"] == "err":
            continue  # ERR itself is wrong there: see the next test
        for param, pull in row["after"].items():
            assert 0.9 < pull < 1.1, (row["kind"], row["amplitude"], row["source"], param, pull)
            checked += 1
        assert 0.9 < row["chi2_red"] < 1.1
        assert row["converged"] > 0.99
        assert row["scatter_ratio"] < 1.0  # weighting makes the positions scatter less
    assert checked == 6 * 6


def test_old_path_fails_and_a_wrong_err_shows_in_chi2(rows):
    bright = [r for r in rows if r["amplitude"] == 5e5]
    for row in bright:  # unweighted, chi2/dof-scaled errors: 2-5x too small on bright stars
        assert row["before"]["x_mean"] > 1.5 and row["before"]["amplitude"] > 1.5
    wrong = [r for r in rows if r["kind"] == "gain" and r["source"] == "err"]
    assert wrong and all(r["chi2_red"] > 1.3 for r in wrong)
