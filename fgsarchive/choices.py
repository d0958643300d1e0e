"""The named choices the stages accept and the CLI offers, each listed once.

A light module (no numpy, numba or matplotlib): the CLI reads these lists for its help texts and
checks without loading the stages, and the stages (fit model, Python API, analyses, plots) take
their own lists from here.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "FIT_PARAMETERS",
    "FIT_PRODUCTS",
    "GROUPINGS",
    "PERIODOGRAM_PARAMETERS",
    "PLOT_KIND_NAMES",
    "FitParameter",
    "FitProduct",
    "Grouping",
    "PlotKind",
]

FitParameter = Literal["amplitude", "x_mean", "y_mean", "x_stddev", "y_stddev", "theta", "offset"]
#: The 7 parameters of the per-frame Gaussian fit (``fits`` table columns, DN/s, px and rad), in
#: the order of every parameter array of :mod:`fgsarchive.fit.model`.
FIT_PARAMETERS: tuple[FitParameter, ...] = get_args(FitParameter)

#: Series of ``fgsarchive periodogram --param``: the 7 Gaussian parameters, the summed flux of the
#: frame (``frames.flux``) and the optimal-aperture flux (``photometry.flux_opt``).
PERIODOGRAM_PARAMETERS: tuple[str, ...] = (*FIT_PARAMETERS, "flux", "flux_opt")

FitProduct = Literal["gauss", "quick", "phot"]
#: What ``fgsarchive fit --what`` computes: gauss (2D Gaussian -> ``fits``), quick (moments ->
#: ``quickfits``), phot (aperture photometry -> ``photometry``).
FIT_PRODUCTS: tuple[FitProduct, ...] = get_args(FitProduct)

Grouping = Literal["file", "visit", "guide_star"]
#: How series are grouped for one periodogram (``--by``): a guide period's file (segments
#: joined), a visit's files of one guide star, or all files of a guide star in a program.
GROUPINGS: tuple[Grouping, ...] = get_args(Grouping)

PlotKind = Literal["flux", "parameters", "periodogram", "telemetry", "anomalies", "guide-stars"]
#: Plot kinds by name (``fgsarchive plot KIND``, :func:`fgsarchive.plots.plot`).
PLOT_KIND_NAMES: tuple[PlotKind, ...] = get_args(PlotKind)
