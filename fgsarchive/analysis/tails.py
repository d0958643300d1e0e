"""Tails of the Gaussian, Student-t and chi-squared distributions, from ``scipy.special``.

The same functions ``scipy.stats`` evaluates (``norm.sf``/``isf``, ``t.isf``, ``chi2.ppf``), without
importing ``scipy.stats``: that import costs ~1 s in every CLI stage and every pool worker.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def norm_sf(x):
    """Upper tail of the standard normal, P(Z > x)."""
    return special.ndtr(-np.asarray(x, dtype=np.float64))


def norm_isf(q):
    """x with P(Z > x) = q for the standard normal (precise for tiny q)."""
    return -special.ndtri(np.asarray(q, dtype=np.float64))


def student_t_isf(q: float, dof: float) -> float:
    """x with P(T > x) = q for Student's t with ``dof`` degrees of freedom."""
    return float(-special.stdtrit(dof, q))


def chi2_ppf(p: float, dof: float) -> float:
    """x with P(X < x) = p for chi-squared with ``dof`` degrees of freedom."""
    return float(2.0 * special.gammaincinv(dof / 2.0, p))
