"""analysis.tails: the scipy.special functions scipy.stats evaluates, bit for bit (the analyses import
these instead of scipy.stats, ~1 s per process)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fgsarchive.analysis import tails


def test_normal_tails_equal_scipy_stats():
    x = np.linspace(0.0, 12.0, 241)
    q = np.logspace(-300, -0.01, 300)
    np.testing.assert_array_equal(tails.norm_sf(x), stats.norm.sf(x))
    np.testing.assert_array_equal(tails.norm_isf(q), stats.norm.isf(q))
    assert tails.norm_isf(stats.norm.sf(5.0)) == pytest.approx(5.0, rel=1e-12)


@pytest.mark.parametrize("dof", [2.0, 2.7, 5.0, 30.3, 1000.0])
def test_student_t_and_chi2_equal_scipy_stats(dof):
    for q in (1e-12, 1e-7, 0.01, 0.3, 0.9):
        assert tails.student_t_isf(q, dof) == stats.t.isf(q, dof)
        assert tails.chi2_ppf(q, dof) == stats.chi2.ppf(q, dof)
