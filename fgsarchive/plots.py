"""Matplotlib figures of guide-star data; each function returns its ``Figure``.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot state, works headless and in
notebooks, where a returned Figure is shown inline); ``save="plot.png"`` (or ``.pdf``, ``.svg``)
also writes it. Most functions take an :class:`~fgsarchive.archive.Archive` and a selection
(``program``, ``obs``, ``visit``, ``gs_id``); :func:`plot_flux` and :func:`plot_parameters` also
take a time-series DataFrame from ``Archive.timeseries``.

>>> from fgsarchive import Archive
>>> from fgsarchive.plots import plot_flux
>>> arc = Archive("fgsarchive.duckdb")
>>> fig = plot_flux(arc, program=1534, obs=1, visit=1, bin_s=10, save="flux.png")

Time axes show time since the first frame of the selection (minutes or hours), with the start in
UTC and MJD in the axis label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .choices import PLOT_KIND_NAMES
from .errors import NotComputedError, SelectionError, UsageError, describe_selection

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .archive import Archive

__all__ = [
    "PLOT_KINDS",
    "plot",
    "plot_flux",
    "plot_parameters",
    "plot_periodogram",
    "plot_telemetry",
    "plot_anomalies",
    "plot_guide_star_positions",
    "auto_bin_s",
    "flux_column",
    "format_fap",
    "save_figure",
]

SECONDS_PER_DAY = 86400.0
#: Target number of points in a binned time-series plot when ``bin_s`` is not given.
TARGET_POINTS = 1500

PARAMETER_LABELS: dict[str, str] = {
    "flux": "raw 64-pixel sum\n(sky included) [DN/s]",
    "star_flux": "star flux\n(sky subtracted) [DN/s]",
    "amplitude": "amplitude\n[DN/s]",
    "x_mean": "x centroid\n[px]",
    "y_mean": "y centroid\n[px]",
    "x_stddev": "x width σx\n[px]",
    "y_stddev": "y width σy\n[px]",
    "theta": "θ\n[rad]",
    "offset": "offset\n[DN/s]",
    "background": "background\n[DN/s]",
    "flux_opt": "star flux, optimal\naperture (sky subtr.) [DN/s]",
    "flux_r1": "flux r=1.5 px\n[DN/s]",
    "flux_r2": "flux r=2.5 px\n[DN/s]",
    "flux_r3": "flux r=3.5 px\n[DN/s]",
}
EVENT_STYLE: dict[str, dict[str, Any]] = {
    "hga_move": {"color": "tab:orange", "alpha": 0.25, "label": "HGA move"},
    "hga_motion_pointing": {"color": "gold", "alpha": 0.25, "label": "HGA motion (POINTING)"},
    "filter_wheel_move": {"color": "tab:purple", "alpha": 0.45, "label": "filter-wheel move"},
}
#: Shaded events are drawn at least this fraction of the time axis wide (a 6-s filter-wheel move
#: in a 2-hour visit would otherwise be thinner than a pixel).
MIN_EVENT_WIDTH = 0.004
MNEMONIC_LABELS: dict[str, str] = {
    "SA_ZHGAUPST": "HGA state\n(SA_ZHGAUPST)",
    "INIS_FWMTRCURR": "NIRISS FW motor\ncurrent [A]",
}
STAR_COLORS = ["tab:blue", "tab:green", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


# --- helpers ----------------------------------------------------------------------------------------
def save_figure(fig: Figure, save: str | Path | None, *, dpi: int = 110) -> Figure:
    """Write ``fig`` to ``save`` (format from the suffix: png, pdf, svg) when given; return it.

    Raises UsageError naming the path when it cannot be written.
    """
    if save is None:
        return fig
    path = Path(save)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg", "jpg", "jpeg"):
        raise UsageError(f"{path}: choose a .png, .pdf or .svg file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return fig


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def auto_bin_s(duration_s: float, target: int = TARGET_POINTS) -> float:
    """A round bin width (s) giving about ``target`` bins over ``duration_s`` (at least 1 s)."""
    raw = max(duration_s / max(target, 1), 1.0)
    for nice in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if nice >= raw:
            return float(nice)
    return float(math.ceil(raw / 3600.0) * 3600.0)


def _mjd_to_utc(mjd: float) -> str:
    from astropy.time import Time

    return Time(mjd, format="mjd", scale="utc").iso[:19]


class _TimeAxis:
    """Elapsed time since ``t0_mjd`` in minutes (spans < 3 h) or hours."""

    def __init__(self, t0_mjd: float, span_days: float) -> None:
        self.t0 = t0_mjd
        self.unit, self.scale = ("min", 1440.0) if span_days * 24 < 3 else ("h", 24.0)

    def __call__(self, mjd: Any) -> np.ndarray:
        return (np.asarray(mjd, dtype=np.float64) - self.t0) * self.scale

    @property
    def label(self) -> str:
        return f"time since {_mjd_to_utc(self.t0)} UTC (MJD {self.t0:.5f}) [{self.unit}]"


def _time_axis(times: np.ndarray, t0: float | None = None) -> _TimeAxis:
    t = np.asarray(times, dtype=np.float64)
    start = float(np.nanmin(t)) if t0 is None else min(t0, float(np.nanmin(t)))
    return _TimeAxis(start, float(np.nanmax(t)) - start)


def _with_gaps(x: np.ndarray, y: np.ndarray, max_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where consecutive x differ by more than ``max_gap`` so lines break at gaps."""
    if x.size < 2:
        return x, y
    cut = np.flatnonzero(np.diff(x) > max_gap) + 1
    if cut.size == 0:
        return x, y
    return np.insert(x, cut, np.nan), np.insert(y.astype(np.float64), cut, np.nan)


def _series(
    source: Archive | pl.DataFrame,
    *,
    program: int | None,
    obs: int | None,
    visit: int | None,
    gs_id: str | None,
    bin_s: float | None,
    columns: Sequence[str] | None,
    start_mjd: float | None = None,
    end_mjd: float | None = None,
) -> tuple[pl.DataFrame, float | None, float]:
    """(series, bin_s, t0_mjd): given as a DataFrame, or read (binned) from the archive."""
    if isinstance(source, pl.DataFrame):
        if source.is_empty():
            raise SelectionError("the time series to plot is empty")
        if "time_mjd" not in source.columns:
            raise UsageError(f"a time series needs a time_mjd column; got {source.columns}")
        source = source.sort("time_mjd")
        return source, bin_s, float(source["time_mjd"].min())
    files = source.fg_files(program, obs, visit, gs_id=gs_id, start_mjd=start_mjd, end_mjd=end_mjd)
    lo = start_mjd if start_mjd is not None else float(files["data_start_mjd"].min())
    hi = end_mjd if end_mjd is not None else float(files["data_end_mjd"].max())
    if bin_s is None:
        guided_s = float((files["data_end_mjd"] - files["data_start_mjd"]).sum()) * SECONDS_PER_DAY
        bin_s = auto_bin_s(min(guided_s, (hi - lo) * SECONDS_PER_DAY))
    df = source.timeseries(
        program,
        obs,
        visit,
        gs_id=gs_id,
        columns=columns,
        bin_s=bin_s,
        start_mjd=start_mjd,
        end_mjd=end_mjd,
    )
    return df, bin_s, lo


def _title(
    what: str, program: Any = None, obs: Any = None, visit: Any = None, gs_id: Any = None
) -> str:
    parts = [what]
    if program is not None:
        parts.append(f"program {program}")
    if obs is not None:
        parts.append(f"obs {obs}")
    if visit is not None:
        parts.append(f"visit {visit}")
    if gs_id is not None:
        parts.append(f"guide star {gs_id}")
    return " · ".join(parts)


def _plot_by_star(
    ax: Axes,
    df: pl.DataFrame,
    column: str,
    axis: _TimeAxis,
    max_gap_x: float,
    *,
    marker: str | None = None,
    label_stars: bool = True,
) -> None:
    """One line per guide star (colour by star), broken at gaps."""
    stars = df["gs_id"].unique(maintain_order=True).to_list() if "gs_id" in df.columns else [None]
    for i, star in enumerate(stars):
        part = df if star is None else df.filter(pl.col("gs_id") == star)
        x = axis(part["time_mjd"].to_numpy())
        y = part[column].cast(pl.Float64).to_numpy()
        x, y = _with_gaps(x, y, max_gap_x)
        ax.plot(
            x,
            y,
            lw=0.8,
            marker=marker,
            ms=2,
            color=STAR_COLORS[i % len(STAR_COLORS)],
            label=f"{star}" if (label_stars and star is not None) else None,
            rasterized=x.size > 20000,
        )


def _gap_x(df: pl.DataFrame, axis: _TimeAxis, bin_s: float | None) -> float:
    t = df["time_mjd"].to_numpy()
    step = np.median(np.diff(t)) * SECONDS_PER_DAY if t.size > 1 else 1.0
    cadence = max(bin_s or 0.0, float(step) if np.isfinite(step) else 1.0)
    return 10 * cadence / SECONDS_PER_DAY * axis.scale


def flux_column(source: Archive | pl.DataFrame, column: str | None = None) -> str:
    """The flux column to draw: ``column`` when given, else ``star_flux`` (sky subtracted, from
    the photometry) when the archive (or DataFrame) has it, else the raw 64-pixel sum ``flux``."""
    if column is not None:
        return column
    if isinstance(source, pl.DataFrame):
        return "star_flux" if "star_flux" in source.columns else "flux"
    return "star_flux" if "photometry" in source.tables() else "flux"


def _short(column: str) -> str:
    """A one-line axis name of a column, without its unit."""
    return PARAMETER_LABELS.get(column, column).replace("\n", " ").split(" [")[0]


def _plain_y(ax: Axes) -> None:
    """Y tick labels as plain numbers (no '1e6' offset text colliding with the title)."""
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4", wrap=True
    )
    ax.set_xticks([])
    ax.set_yticks([])


# --- flux ------------------------------------------------------------------------------------------
def plot_flux(
    source: Archive | pl.DataFrame,
    *,
    program: int | None = None,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    bin_s: float | None = None,
    column: str | None = None,
    relative: bool | None = None,
    start_mjd: float | None = None,
    end_mjd: float | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure:
    """Binned flux time series (one colour per guide star, lines broken at gaps).

    ``source``: an Archive (with the selection; ``bin_s`` seconds, default ~1500 bins) or a
    DataFrame from ``Archive.timeseries``. ``column``: default ``star_flux`` (the star's flux,
    sky subtracted: ``flux - 64 x background`` from the photometry; DN/s) when fitted, else
    ``flux`` (the raw sum of the 64 pixels, sky included); or flux_opt, flux_r2, ...
    ``relative``: plot ``flux / median - 1`` in parts per thousand per guide star (default: when
    several guide stars are shown); the axis label names the column. Example:
    ``plot_flux(arc, program=1534, obs=1, visit=1, bin_s=10, save="flux.png")``
    """
    column = flux_column(source, column)
    columns = [] if column == "flux" else [column]
    df, bin_s, t0 = _series(
        source,
        program=program,
        obs=obs,
        visit=visit,
        gs_id=gs_id,
        bin_s=bin_s,
        columns=columns,
        start_mjd=start_mjd,
        end_mjd=end_mjd,
    )
    if column not in df.columns:
        raise UsageError(f"no column {column!r} in the time series; columns: {df.columns}")
    stars = df["gs_id"].n_unique() if "gs_id" in df.columns else 1
    relative = stars > 1 if relative is None else relative
    if relative:
        by = ["gs_id"] if "gs_id" in df.columns else []
        med = pl.col(column).median().over(by) if by else pl.col(column).median()
        df = df.with_columns(((pl.col(column) / med - 1.0) * 1e3).alias(column))
    fig = _figure(11, 4)
    ax = fig.add_subplot()
    axis = _time_axis(df["time_mjd"].to_numpy(), t0)
    _plot_by_star(ax, df, column, axis, _gap_x(df, axis, bin_s))
    name = PARAMETER_LABELS.get(column, column).replace("\n", " ")
    ax.set_ylabel(f"{_short(column)} / median − 1 [ppt]" if relative else name)
    _plain_y(ax)
    ax.set_xlabel(axis.label)
    ax.grid(alpha=0.3)
    if stars > 1 or gs_id is None:
        ax.legend(title="guide star", fontsize=8, loc="best")
    binned = f", {bin_s:g}-s bins" if bin_s else ""
    what = "Guide-star flux (sky subtracted)" if column == "star_flux" else f"Guide-star {column}"
    ax.set_title(title or _title(f"{what}{binned}", program, obs, visit, gs_id))
    return save_figure(fig, save)


# --- parameters ------------------------------------------------------------------------------------
PARAMETER_STACK = ("flux", "x_mean", "y_mean", "x_stddev", "y_stddev", "theta", "offset")


def plot_parameters(
    source: Archive | pl.DataFrame,
    *,
    program: int | None = None,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    bin_s: float | None = None,
    parameters: Sequence[str] = PARAMETER_STACK,
    start_mjd: float | None = None,
    end_mjd: float | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure:
    """Stacked panels sharing the time axis: flux, x/y centroid, x/y width, theta, offset.

    Values are per-bin means of the Gaussian fits (``fits`` table: run ``fgsarchive fit``);
    centroids and widths in pixels (0.069"/px), theta in radians, flux and offset in DN/s.
    "flux" is drawn as ``star_flux`` (sky subtracted) when the photometry exists.
    Example: ``plot_parameters(arc, program=1534, obs=1, visit=1, bin_s=10)``
    """
    params = [flux_column(source) if p == "flux" else p for p in parameters]
    df, bin_s, t0 = _series(
        source,
        program=program,
        obs=obs,
        visit=visit,
        gs_id=gs_id,
        bin_s=bin_s,
        columns=[p for p in params if p != "flux"],
        start_mjd=start_mjd,
        end_mjd=end_mjd,
    )
    missing = [p for p in params if p not in df.columns]
    if missing:
        raise UsageError(f"the time series lacks {', '.join(missing)}; columns: {df.columns}")
    fig = _figure(11, 1.35 * len(params) + 1.2)
    axes = fig.subplots(len(params), 1, sharex=True)
    axes = np.atleast_1d(axes)
    axis = _time_axis(df["time_mjd"].to_numpy(), t0)
    gap = _gap_x(df, axis, bin_s)
    for ax, param in zip(axes, params, strict=True):
        if df[param].null_count() == df.height:
            _no_data(ax, f"{param}: no converged fits")
        else:
            _plot_by_star(ax, df, param, axis, gap, label_stars=ax is axes[0])
        ax.set_ylabel(PARAMETER_LABELS.get(param, param), fontsize=8)
        ax.tick_params(labelsize=8)
        _plain_y(ax)
        ax.grid(alpha=0.3)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        title="guide star",
        fontsize=7,
        title_fontsize=7,
        loc="outside upper right",
        ncol=4,
    )
    axes[-1].set_xlabel(axis.label)
    binned = f", {bin_s:g}-s bins" if bin_s else ""
    fig.suptitle(
        title or _title(f"Gaussian-fit parameters{binned}", program, obs, visit, gs_id),
        fontsize=11,
    )
    fig.align_ylabels(axes)
    return save_figure(fig, save)


# --- periodogram -------------------------------------------------------------------------------------
#: The false-alarm probabilities the periodogram plot draws the power level of.
FAP_LEVELS = (0.01, 0.001)


def _fap_levels(res: Any, name: str, faps: Sequence[float] = FAP_LEVELS) -> list[np.ndarray]:
    """Power at each false-alarm probability of ``faps``, at every grid frequency of ``res``.

    The analysis' own measure (``res.significance``): against the noise continuum the peaks were
    judged on (``res.continuum``: the fitted model, or the local continuum where the model
    misfits), the level is the continuum times the ratio whose :func:`continuum_fap` is that FAP
    (found by bisection
    on the same function, so a peak lies above the 1 % curve exactly when its stored fap < 0.01);
    for ``"white"`` results, Baluev's level of the conditioned series (flat)."""
    from .analysis.periodogram import continuum_fap, noise_continuum

    t, values = res.extra["series"]
    i = res.names.index(name)
    ok = np.isfinite(values[i]) & np.isfinite(t)
    power = res.power[i]
    if res.significance == "white":
        from astropy.timeseries import LombScargle

        ls = LombScargle(t[ok], values[i][ok], normalization="standard")
        levels = ls.false_alarm_level(
            list(faps), method="baluev", minimum_frequency=res.f0_hz, maximum_frequency=res.fmax_hz
        )
        return [np.full(power.size, float(lv)) for lv in np.atleast_1d(levels)]
    if res.continuum is not None and res.continuum_var_log is not None:
        continuum = res.continuum[i].astype(np.float64)  # the peaks' own
        var_log = res.continuum_var_log[i].astype(np.float64)
    else:
        samples_per_peak = 1.0 / (res.df_hz * res.baseline_s)  # the grid's bins per resolution
        continuum, var_log = noise_continuum(power, res.f0_hz, res.df_hz, samples_per_peak)
    curves = []
    for fap in faps:
        lo = np.full(power.size, -10.0)  # log of the ratio to the continuum
        hi = np.full(power.size, 40.0)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = continuum_fap(np.exp(mid), var_log, t[ok], res.fmax_hz) > fap
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        curves.append(continuum * np.exp(0.5 * (lo + hi)))
    return curves


def _label_levels(freqs: Sequence[float], min_dex: float) -> list[int]:
    """A stacking level per label (frequencies in any order) so labels closer than ``min_dex``
    in log10 frequency sit on different rows."""
    order = np.argsort(np.log10(np.asarray(freqs, dtype=np.float64)))
    levels = [0] * len(order)
    placed: list[tuple[float, int]] = []
    for i in order:
        lf = float(np.log10(freqs[i]))
        busy = {lvl for x, lvl in placed if abs(lf - x) < min_dex}
        level = next(k for k in range(len(order) + 1) if k not in busy)
        levels[i] = level
        placed.append((lf, level))
    return levels


def format_fap(fap: Any) -> str:
    """A false-alarm probability in scientific notation ('<1e-300' below what a float holds)."""
    if fap is None or not np.isfinite(fap):
        return "–"
    if fap <= 0:
        return "<1e-300"
    return f"{fap:.1e}" if fap < 0.01 else f"{fap:.2f}"


def plot_periodogram(
    arc: Archive,
    *,
    program: int | None = None,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    parameters: Sequence[str] | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure:
    """Lomb-Scargle periodograms (power vs frequency, Hz) of one guide star in one visit.

    The spectra are those ``fgsarchive periodogram`` searched (the same code path: the per-frame
    series cleaned of spikes and of the archive's anomaly intervals, cut at steps, conditioned),
    so the marked peaks sit on the curve drawn. One panel per parameter (default: flux_opt, the
    star's sky-subtracted optimal-aperture flux (raw flux without photometry), x_mean, y_mean);
    red curves: the power at false-alarm probability 1 % (dashed) and 0.1 % (dotted) by the
    measure the peaks' FAP uses, the local continuum of each spectrum times the ratio that gives
    that FAP (a curve over frequency: higher where the noise is red); blue triangles: peaks from ``periodogram_peaks`` numbered by rank, listed with period
    and FAP; grey: peaks flagged instrumental (shared by many guide stars, or the pointing).
    Without obs/visit the selection's first visit is shown (and said in the title).
    Example: ``plot_periodogram(arc, program=1534, obs=1, visit=1, save="pgram.png")``
    """
    from .analysis.runner import periodogram_spectra

    tables = arc.tables()
    if "fits" not in tables:
        raise NotComputedError("fits", "periodogram plot")
    if parameters is None:  # the star's own flux (sky subtracted) when the photometry exists
        parameters = ["flux_opt" if "photometry" in tables else "flux", "x_mean", "y_mean"]
    params = list(parameters)
    files = arc.fg_files(program, obs, visit, gs_id=gs_id).sort("data_start_mjd")
    first = files.row(0, named=True)
    picked = []
    if obs is None or visit is None:
        picked.append("first visit of the selection")
    obs, visit = first["observation"], first["visit"]
    if gs_id is None:
        stars = files.filter((pl.col("observation") == obs) & (pl.col("visit") == visit))
        if stars["gs_id"].n_unique() > 1:
            picked.append("its first guide star")
        gs_id = first["gs_id"]  # one star at a time: a periodogram across stars means nothing
    program = first["program"] if program is None else program
    found, skipped = periodogram_spectra(
        arc.db, program, obs, visit, gs_id, params=params, by="visit"
    )
    if not found:
        raise SelectionError(
            "no periodogram could be computed for "
            + describe_selection(program=program, obs=obs, visit=visit, gs_id=gs_id)
            + (f" ({'; '.join(skipped[:2])})" if skipped else "")
        )
    meta, res = found[0]
    freq = res.frequency_hz()
    params = [p for p in params if p in res.names]
    peaks = pl.DataFrame()
    if "periodogram_peaks" in tables:
        try:
            peaks = arc.periodogram(program, obs, visit, gs_id=gs_id)
        except SelectionError:
            peaks = pl.DataFrame()
        if "grouped_by" in peaks.columns:
            peaks = peaks.filter(pl.col("grouped_by") == "visit")
    fig = _figure(11, 2.4 * len(params) + 0.9)
    axes = np.atleast_1d(fig.subplots(len(params), 1, sharex=True))
    for i, (ax, param) in enumerate(zip(axes, params, strict=True)):
        power = res.power_of(param)
        ax.plot(freq, power, lw=0.6, color="0.15", rasterized=freq.size > 20000)
        levels = _fap_levels(res, param)
        measure = " (white noise)" if res.significance == "white" else " (noise continuum)"
        for level, style, fap in zip(levels, ("--", ":"), FAP_LEVELS, strict=True):
            label = f"FAP {fap * 100:g} %{measure}"
            ax.plot(freq, level, ls=style, color="tab:red", lw=0.9, label=label, gid=f"fap_{fap:g}")
        top = max(float(np.nanmax(power)), float(np.nanmin(levels[1])) * 1.5)
        mine = (
            peaks.filter(pl.col("parameter") == param).sort("rank")
            if not peaks.is_empty() and "parameter" in peaks.columns
            else pl.DataFrame()
        )
        listing = []
        if not mine.is_empty():
            instr = (
                mine["instrumental"].fill_null(False).to_list()
                if "instrumental" in mine.columns
                else [False] * mine.height
            )
            rows = list(mine.iter_rows(named=True))
            stack = _label_levels([r["frequency_hz"] for r in rows], min_dex=0.09)
            for row, is_instr, level in zip(rows, instr, stack, strict=True):
                f = row["frequency_hz"]
                p = float(np.interp(f, freq, power))
                color = "0.5" if is_instr else "tab:blue"
                ax.plot([f], [p], "v", color=color, ms=6, mfc="none" if is_instr else color)
                ax.annotate(
                    str(row["rank"]),
                    (f, p),
                    xytext=(0, 7 + 9 * level),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color=color,
                )
                listing.append(
                    f"{row['rank']}: {row['period_s']:.4g} s, FAP {format_fap(row['fap'])}"
                    + (" (instr.)" if is_instr else "")
                )
        if listing:
            ax.text(
                0.995,
                0.97,
                "\n".join(listing),
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=7,
                family="monospace",
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.8"},
            )
        ax.set_xscale("log")
        ax.set_ylabel(
            PARAMETER_LABELS.get(param, param).split("[")[0].strip() + "\nLS power", fontsize=8
        )
        ax.set_ylim(0, top * 1.35)
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=8)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
            sec = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
            sec.set_xlabel("period [s]", fontsize=8)
            sec.tick_params(labelsize=8)
    axes[-1].set_xlabel("frequency [Hz]")
    note = f" ({', '.join(picked)})" if picked else ""
    fig.suptitle(
        title
        or _title("Lomb-Scargle periodogram, cleaned series", program, obs, visit, gs_id) + note,
        fontsize=11,
    )
    return save_figure(fig, save)


def _inverse(x: Any) -> Any:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), np.inf)


# --- telemetry overlay -------------------------------------------------------------------------------
def _events_for(
    arc: Archive, tables: set[str], program: Any, obs: Any, visit: Any
) -> tuple[pl.DataFrame, list[str]]:
    """Events of the selection from the ``events`` table (derived by the events stage; one
    derivation, fgsarchive/sql/events/), and a note naming the command when there are none."""
    if "events" in tables:
        ev = arc.events(program, obs, visit)
        if not ev.is_empty():
            return ev, []
    empty = pl.DataFrame(
        schema={
            "kind": pl.String,
            "start_mjd": pl.Float64,
            "end_mjd": pl.Float64,
            "detail": pl.String,
        }
    )
    return empty, ["no events derived yet: run `fgsarchive events`"]


def _detail_text(row: dict[str, Any], key: str = "gs_id") -> str:
    detail = row.get("detail")
    if isinstance(detail, dict):
        return str(detail.get(key) or detail.get("to_gs_id") or detail.get("new_gs_id") or "")
    if isinstance(detail, str) and detail.startswith("{"):
        import json

        try:
            parsed = json.loads(detail)
        except ValueError:
            return detail
        if isinstance(parsed, dict):
            return str(parsed.get(key) or parsed.get("to_gs_id") or parsed.get("new_gs_id") or "")
    return "" if detail is None else str(detail)


def _change_time() -> pl.Expr:
    """When a guide-star change takes effect (MJD): the new star's first frame (end_mjd)."""
    return pl.coalesce(pl.col("end_mjd"), pl.col("start_mjd"))


def _visible_events(ev: pl.DataFrame, t_lo: float, t_hi: float) -> pl.DataFrame:
    """Events overlapping [t_lo, t_hi] (MJD), one HGA band: the EDB ``hga_move`` when present,
    else the files' POINTING ``hga_motion_pointing`` (the two mark the same motion)."""
    if ev.is_empty():
        return ev
    end = pl.col("end_mjd")
    change = pl.col("kind") == "guide_star_change"
    interval = (
        ~change & (pl.coalesce(end, pl.col("start_mjd")) >= t_lo) & (pl.col("start_mjd") <= t_hi)
    )
    # a guide-star change happens when the new star's guiding starts (its end_mjd): shown when
    # that is in the span, not when the span merely ends where the next star's gap begins
    at = _change_time()
    ev = ev.filter(interval | (change & (at >= t_lo) & (at < t_hi)))
    if (ev["kind"] == "hga_move").any():
        ev = ev.filter(pl.col("kind") != "hga_motion_pointing")
    return ev


def _draw_events(ax: Axes, ev: pl.DataFrame, axis: _TimeAxis, *, label_changes: bool) -> None:
    seen: set[str] = set()
    span = 0.0
    if ev.height:
        span = float(axis(ev["start_mjd"].max()) - axis(ev["start_mjd"].min()))
    lo, hi = ax.get_xlim() if ax.has_data() else (0.0, span)
    min_width = max(axis.scale / SECONDS_PER_DAY, MIN_EVENT_WIDTH * abs(hi - lo))
    for row in ev.iter_rows(named=True):
        kind = row["kind"]
        x0 = float(axis(row["start_mjd"]))
        end = row.get("end_mjd")
        if kind in EVENT_STYLE:
            style = EVENT_STYLE[kind]
            x1 = float(axis(end)) if end is not None else x0
            if x1 - x0 < min_width:  # widen about the centre, to be seen
                mid = 0.5 * (x0 + x1)
                x0, x1 = mid - 0.5 * min_width, mid + 0.5 * min_width
            ax.axvspan(
                x0,
                x1,
                color=style["color"],
                alpha=style["alpha"],
                lw=0,
                label=style["label"] if kind not in seen else None,
            )
        elif kind == "file_boundary":
            ax.axvline(
                x0,
                color="0.55",
                ls="--",
                lw=0.7,
                label="file boundary" if kind not in seen else None,
            )
        elif kind == "guide_star_change":
            x0 = float(axis(end if end is not None else row["start_mjd"]))
            ax.axvline(
                x0, color="black", lw=1.4, label="guide-star change" if kind not in seen else None
            )
            if label_changes:
                ax.text(
                    x0,
                    0.98,
                    " → " + _detail_text(row),
                    transform=ax.get_xaxis_transform(),
                    fontsize=7,
                    va="top",
                    rotation=90,
                    clip_on=True,
                )
        seen.add(kind)


#: A numeric telemetry series with more samples than this is drawn as a per-bin min-max band
#: and median line (a filter-wheel motor current sampled every second is otherwise a solid block).
TELEMETRY_MAX_POINTS = 400


def _draw_numeric(ax: Axes, x: np.ndarray, values: np.ndarray) -> None:
    """A numeric telemetry trace: every sample when few, else min-max band and median per bin."""
    ok = np.isfinite(values) & np.isfinite(x)
    x, values = x[ok], values[ok]
    if x.size <= TELEMETRY_MAX_POINTS:
        ax.step(x, values, where="post", lw=0.9, color="tab:purple")
        return
    edges = np.linspace(x.min(), x.max(), TELEMETRY_MAX_POINTS // 2 + 1)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    centres, lo, hi, med = [], [], [], []
    for b in np.unique(idx):
        v = values[idx == b]
        centres.append(0.5 * (edges[b] + edges[b + 1]))
        lo.append(v.min())
        hi.append(v.max())
        med.append(np.median(v))
    ax.fill_between(centres, lo, hi, color="tab:purple", alpha=0.25, lw=0, label="min–max")
    ax.plot(centres, med, lw=0.9, color="tab:purple", label="median")


def plot_telemetry(
    arc: Archive,
    *,
    program: int | None = None,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    bin_s: float | None = None,
    mnemonics: Sequence[str] | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure:
    """Flux with observatory events overlaid, and the telemetry values below.

    Events come from the ``events`` table (``fgsarchive events`` derives them; without it a note
    says so). Shaded: high-gain-antenna moves (orange from EDB, or yellow from the files' POINTING
    ``HGA_motion`` when EDB has none), NIRISS filter-wheel moves (purple);
    black lines: guide-star changes labelled with the new gs_id; dashed grey: file boundaries.
    A lower panel plots the ``telemetry`` samples (``mnemonics``, default all in the window).
    Example: ``plot_telemetry(arc, program=1534, obs=1, visit=1, save="telemetry.png")``
    """
    tables = arc.tables()
    files = arc.fg_files(program, obs, visit, gs_id=gs_id)
    column = flux_column(arc)
    df, bin_s, t0 = _series(
        arc,
        program=program,
        obs=obs,
        visit=visit,
        gs_id=gs_id,
        bin_s=bin_s,
        columns=[] if column == "flux" else [column],
    )
    ev, notes = _events_for(arc, tables, program, obs, visit)
    t_lo, t_hi = float(files["data_start_mjd"].min()), float(files["data_end_mjd"].max())
    ev = _visible_events(ev, t_lo, t_hi)
    tm = pl.DataFrame()
    if "telemetry" in tables:
        tm = arc.telemetry(start_mjd=t_lo, end_mjd=t_hi)
        if mnemonics:
            tm = tm.filter(pl.col("mnemonic").is_in(list(mnemonics)))
    n_tm = tm["mnemonic"].n_unique() if not tm.is_empty() else 0
    fig = _figure(11, 4.2 + 1.6 * n_tm)
    axes = np.atleast_1d(fig.subplots(1 + n_tm, 1, sharex=True, height_ratios=[3] + [1.2] * n_tm))
    ax = axes[0]
    axis = _time_axis(df["time_mjd"].to_numpy(), t_lo)
    stars = df["gs_id"].n_unique()
    if stars > 1:
        med = pl.col(column).median().over("gs_id")
        df = df.with_columns(((pl.col(column) / med - 1.0) * 1e3).alias(column))
    _plot_by_star(ax, df, column, axis, _gap_x(df, axis, bin_s))
    ax.set_xlim(float(axis(t_lo)), float(axis(t_hi)))
    ax.set_ylabel(
        f"{_short(column)}\n/ median − 1 [ppt]"
        if stars > 1
        else PARAMETER_LABELS.get(column, column),
        fontsize=8,
    )
    _plain_y(ax)
    _draw_events(ax, ev, axis, label_changes=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=3, framealpha=0.9)
    if notes:
        ax.text(
            0.995,
            0.02,
            "; ".join(notes),
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.35",
        )
    for sub, (name, part) in zip(
        axes[1:], tm.group_by("mnemonic", maintain_order=True) if n_tm else [], strict=False
    ):
        mnemonic = name[0] if isinstance(name, tuple) else name
        x = axis(part["time_mjd"].to_numpy())
        if part["value"].null_count() < part.height:  # numeric mnemonic
            values = part["value"].cast(pl.Float64).to_numpy()
            _draw_numeric(sub, x, values)
        else:  # text states (e.g. SA_ZHGAUPST MOVING / FINISHED): one level per state
            states = part["value_text"].fill_null("").str.strip_chars()
            levels = sorted(set(states.to_list()))
            codes = np.array([levels.index(v) for v in states.to_list()], dtype=np.float64)
            sub.step(x, codes, where="post", lw=0.9, color="tab:purple")
            sub.set_yticks(range(len(levels)), levels)
            sub.set_ylim(-0.5, len(levels) - 0.5)
        sub.set_ylabel(MNEMONIC_LABELS.get(str(mnemonic), str(mnemonic)), fontsize=7)
        sub.set_xlim(float(axis(t_lo)), float(axis(t_hi)))
        sub.tick_params(labelsize=7)
        sub.grid(alpha=0.3)
        _draw_events(
            sub, ev.filter(pl.col("kind") != "guide_star_change"), axis, label_changes=False
        )
    axes[-1].set_xlabel(axis.label)
    binned = f", {bin_s:g}-s bins" if bin_s else ""
    ax.set_title(
        title or _title(f"Flux and observatory events{binned}", program, obs, visit, gs_id)
    )
    return save_figure(fig, save)


# --- anomalies -------------------------------------------------------------------------------------
def plot_anomalies(
    arc: Archive,
    *,
    program: int | None = None,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    bin_s: float | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure:
    """The parameters an anomaly touched, with each anomaly shaded and marked by its kind.

    Panels: flux, plus x/y centroid and x/y width when fitted. Anomalies come from the
    ``anomalies`` table (``fgsarchive anomalies``): red shading over [start, end], a triangle at
    the start labelled with the kind and significance (sigma).
    Example: ``plot_anomalies(arc, program=1534, obs=1, visit=1, save="anomalies.png")``
    """
    an = arc.anomalies(program, obs, visit, gs_id=gs_id)
    tables = arc.tables()
    column = flux_column(arc)
    params = [column] + (["x_mean", "y_mean", "x_stddev", "y_stddev"] if "fits" in tables else [])
    df, bin_s, t0 = _series(
        arc,
        program=program,
        obs=obs,
        visit=visit,
        gs_id=gs_id,
        bin_s=bin_s,
        columns=params if column != "flux" else params[1:],
    )
    fig = _figure(11, 1.6 * len(params) + 1.3)
    axes = np.atleast_1d(fig.subplots(len(params), 1, sharex=True))
    axis = _time_axis(df["time_mjd"].to_numpy(), t0)
    gap = _gap_x(df, axis, bin_s)
    for ax, param in zip(axes, params, strict=True):
        _plot_by_star(ax, df, param, axis, gap, label_stars=ax is axes[0])
        ax.set_ylabel(PARAMETER_LABELS.get(param, param), fontsize=8)
        _plain_y(ax)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        for row in an.iter_rows(named=True):
            x0, x1 = float(axis(row["start_mjd"])), float(axis(row["end_mjd"] or row["start_mjd"]))
            x1 = max(x1, x0 + axis.scale / SECONDS_PER_DAY)  # at least 1 s wide
            ax.axvspan(x0, x1, color="tab:red", alpha=0.18, lw=0)
    for row in an.iter_rows(named=True):
        x0 = float(axis(row["start_mjd"]))
        sig = row.get("significance")
        label = str(row.get("kind", "anomaly")) + (
            f" {sig:.0f}σ" if isinstance(sig, float | int) else ""
        )
        axes[0].plot(
            [x0],
            [1.0],
            "v",
            color="tab:red",
            ms=7,
            transform=axes[0].get_xaxis_transform(),
            clip_on=False,
        )
        axes[0].annotate(
            label,
            (x0, 1.0),
            xycoords=axes[0].get_xaxis_transform(),
            xytext=(4, -10),
            textcoords="offset points",
            fontsize=7,
            color="tab:red",
        )
    if an.is_empty():  # said above the panels, not over the data
        axes[0].set_title("no anomalies found in this selection", fontsize=9, color="0.35")
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        title="guide star",
        fontsize=7,
        title_fontsize=7,
        loc="outside upper right",
        ncol=4,
    )
    axes[-1].set_xlabel(axis.label)
    binned = f", {bin_s:g}-s bins" if bin_s else ""
    fig.suptitle(
        title or _title(f"Anomalies ({an.height}){binned}", program, obs, visit, gs_id), fontsize=11
    )
    fig.align_ylabels(axes)
    return save_figure(fig, save)


# --- guide-star positions -----------------------------------------------------------------------------
def plot_guide_star_positions(
    arc: Archive,
    *,
    program: int | None = None,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure:
    """Where the guide stars were: sky positions and their offsets over visits.

    Left: RA/Dec (deg, RA increasing to the left) of each guide star as written in each visit's
    header (GS_RA/GS_DEC, filled circles, labelled with gs_id) and its Guide Star Catalog
    position when cross-matched (``fgsarchive stars``; open squares). Right: header position of
    each visit minus the star's mean (or catalog) position, in arcsec, against time.
    ``obs``, ``visit``, ``gs_id`` keep those star-visits only.
    Example: ``plot_guide_star_positions(arc, program=1534, save="stars.png")``
    """
    gv = arc.guide_star_visits(program)
    for name, value in (("observation", obs), ("visit", visit), ("gs_id", gs_id)):
        if value is not None and name in gv.columns:
            gv = gv.filter(pl.col(name) == value)
    if gv.is_empty():
        raise SelectionError(
            "no guide-star visits match "
            + describe_selection(program=program, obs=obs, visit=visit, gs_id=gs_id)
        )
    fig = _figure(12, 5)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.1, 1])
    stars = gv["gs_id"].unique(maintain_order=True).to_list()
    t0 = float(gv["start_mjd"].min())
    span_days = float(gv["end_mjd"].max()) - t0
    t_scale, t_unit = (24.0, "hours") if span_days < 2 else (1.0, "days")
    offsets_seen: list[float] = []
    has_catalog = gv["cat_ra"].drop_nulls().len() > 0
    for i, star in enumerate(stars):
        part = gv.filter(pl.col("gs_id") == star)
        color = STAR_COLORS[i % len(STAR_COLORS)]
        ra, dec = part["gs_ra"].to_numpy(), part["gs_dec"].to_numpy()
        ax.plot(
            ra,
            dec,
            "o",
            color=color,
            ms=7,
            alpha=0.8,
            label=f"{star} ({part.height} visit{'s' if part.height > 1 else ''})",
        )
        ax.annotate(
            star,
            (ra[0], dec[0]),
            xytext=(6, 4),
            textcoords="offset points",
            fontsize=8,
            color=color,
        )
        cat_ra, cat_dec = part["cat_ra"].drop_nulls(), part["cat_dec"].drop_nulls()
        if cat_ra.len():
            ax.plot([cat_ra[0]], [cat_dec[0]], "s", mfc="none", mec=color, ms=11, mew=1.5)
            ref_ra, ref_dec = float(cat_ra[0]), float(cat_dec[0])
        else:
            ref_ra, ref_dec = float(np.nanmean(ra)), float(np.nanmean(dec))
        d_ra = (ra - ref_ra) * np.cos(np.radians(ref_dec)) * 3600.0
        d_dec = (dec - ref_dec) * 3600.0
        days = (part["start_mjd"].to_numpy() - t0) * t_scale
        offsets_seen.append(float(np.nanmax(np.abs(np.r_[d_ra, d_dec]))))
        ax2.plot(days, d_ra, "o-", color=color, ms=5, lw=0.8, label=f"{star} ΔRA cos δ")
        ax2.plot(days, d_dec, "s--", color=color, ms=5, lw=0.8, mfc="none", label=f"{star} ΔDec")
    ax.invert_xaxis()
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", title="● header  □ catalog", title_fontsize=7)
    ax.ticklabel_format(useOffset=False)
    ax.set_title(f"{len(stars)} guide star(s), {gv.height} star-visits", fontsize=9)
    ax2.axhline(0, color="0.5", lw=0.7)
    ax2.set_xlabel(f"{t_unit} since {_mjd_to_utc(t0)} UTC (MJD {t0:.4f})")
    if gv.height == len(stars):
        note = "one visit per guide star here: no offsets between visits to show"
        ax2.text(0.5, 0.75, note, transform=ax2.transAxes, ha="center", fontsize=9, color="0.35")
    elif offsets_seen and max(offsets_seen) < 1e-6:
        note = "header positions identical in every visit"
        if not has_catalog:
            note += "\nno catalog cross-match yet: run `fgsarchive stars`"
        ax2.text(0.5, 0.75, note, transform=ax2.transAxes, ha="center", fontsize=9, color="0.35")
    ax2.set_ylabel("header − reference position [arcsec]")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, loc="best", ncol=2)
    ax2.set_title("reference: catalog position, else the mean header position", fontsize=9)
    fig.suptitle(title or _title("Guide-star positions", program, obs, visit, gs_id), fontsize=11)
    return save_figure(fig, save)


# --- by name -------------------------------------------------------------------------------------------
PLOT_KINDS: dict[str, Callable[..., Figure]] = dict(
    zip(
        PLOT_KIND_NAMES,  # flux, parameters, periodogram, telemetry, anomalies, guide-stars
        (
            plot_flux,
            plot_parameters,
            plot_periodogram,
            plot_telemetry,
            plot_anomalies,
            plot_guide_star_positions,
        ),
        strict=True,
    )
)
"""Plot kinds by name (``fgsarchive plot KIND``; the names are listed in choices.py)."""

#: The selection flags every plot kind accepts (``fgsarchive plot KIND`` and :func:`plot`); each
#: kind uses those that apply to it (see :func:`ignored`).
COMMON_SELECTION = ("program", "obs", "visit", "gs_id", "bin_s")


def ignored(kind: str, **selection: Any) -> list[str]:
    """The given (not None) common selection keys that plot ``kind`` has no use for."""
    import inspect

    accepted = inspect.signature(PLOT_KINDS[kind]).parameters
    return [k for k, v in selection.items() if v is not None and k not in accepted]


def plot(kind: str, arc: Archive, **selection: Any) -> Figure:
    """Make the plot called ``kind`` (:data:`PLOT_KINDS`) for a selection; return the Figure.

    Every kind takes the common selection (:data:`COMMON_SELECTION`) and uses what applies
    (``bin_s`` means nothing to guide-stars or periodogram: it is ignored there, see
    :func:`ignored`); other keywords go to the plot function.
    Example: ``plot("telemetry", arc, program=1534, obs=1, visit=1)``
    """
    if kind not in PLOT_KINDS:
        raise UsageError(f"unknown plot kind {kind!r}; choose one of: {', '.join(PLOT_KINDS)}")
    drop = set(ignored(kind, **{k: v for k, v in selection.items() if k in COMMON_SELECTION}))
    selection = {
        k: v
        for k, v in selection.items()
        if k not in drop and not (k in COMMON_SELECTION and v is None)
    }
    return PLOT_KINDS[kind](arc, **selection)
