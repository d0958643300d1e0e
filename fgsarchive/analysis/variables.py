"""Which guide stars are variable?  Per-star variability statistics over all their visits.

``variability_stats`` takes the per-frame flux of many guide stars (any number of visits each),
normalises every visit by its median (visit-to-visit offsets are not variability), bins to
``bin_s`` seconds to beat white noise, and measures per star: robust RMS against the photon-noise
expectation, the von Neumann ratio (smooth variability), skewness (dips), and the best
periodogram peak that is not an instrumental line; a combined score ranks the stars.

Pure table maths (polars + numpy), no I/O.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .detrend import MAD_TO_SIGMA
from .periodogram import MIN_POINTS, label_instrumental, periodogram_series
from .tails import norm_isf

__all__ = [
    "variability_stats",
    "variability_bins",
    "variability_from_bins",
    "VARIABILITY_SCHEMA",
    "BIN_SCHEMA",
]

SECONDS_PER_DAY = 86400.0

VARIABILITY_SCHEMA: dict[str, pl.DataType] = {
    "gs_id": pl.String,
    "n_frames": pl.Int64,
    "n_visits": pl.Int64,
    "n_bins": pl.Int64,
    "rms_ppm": pl.Float64,
    "expected_rms_ppm": pl.Float64,
    "excess": pl.Float64,
    "excess_ppm": pl.Float64,
    "eta": pl.Float64,
    "skew": pl.Float64,
    "best_period_s": pl.Float64,
    "best_fap": pl.Float64,
    "z_excess": pl.Float64,
    "z_eta": pl.Float64,
    "z_skew": pl.Float64,
    "z_period": pl.Float64,
    "score": pl.Float64,
    "rank": pl.Int64,
}
"""Columns of ``variability_stats``' result."""


def _mask_intervals(
    frames: pl.DataFrame, anomalies: pl.DataFrame | None, time_col: str
) -> pl.DataFrame:
    """Drop frames inside any [start_mjd, end_mjd] of ``anomalies`` (per gs_id if it has one)."""
    if anomalies is None or anomalies.height == 0:
        return frames
    for col in ("start_mjd", "end_mjd"):
        if col not in anomalies.columns:
            raise ValueError(f"anomalies lacks column {col!r}; it has {anomalies.columns}")

    def inside(t: np.ndarray, iv: pl.DataFrame) -> np.ndarray:
        iv = iv.sort("start_mjd")
        starts = iv["start_mjd"].to_numpy()
        reach = np.maximum.accumulate(iv["end_mjd"].to_numpy())
        k = np.searchsorted(starts, t, side="right") - 1
        return (k >= 0) & (t <= reach[np.clip(k, 0, None)])

    if "gs_id" not in anomalies.columns:
        return frames.filter(~pl.Series(inside(frames[time_col].to_numpy(), anomalies)))
    frames = frames.with_row_index("__row")
    drop = np.zeros(frames.height, dtype=bool)
    an = anomalies.with_columns(pl.col("gs_id").cast(pl.String))
    for (gid,), iv in an.group_by("gs_id"):
        sub = frames.filter(pl.col("gs_id") == gid)
        if sub.height:
            drop[sub["__row"].to_numpy()[inside(sub[time_col].to_numpy(), iv)]] = True
    return frames.filter(~pl.Series(drop)).drop("__row")


def variability_stats(
    frames: pl.DataFrame,
    *,
    bin_s: float = 10.0,
    flux_col: str = "flux",
    err_col: str = "flux_err",
    counts_per_flux: float | None = None,
    lines: pl.DataFrame | None = None,
    anomalies: pl.DataFrame | None = None,
    rel_tol: float = 0.01,
    n_peaks: int = 10,
) -> pl.DataFrame:
    """Variability statistics and rank of every guide star in ``frames``.

    Parameters
    ----------
    frames : one row per frame with gs_id, visit_key, time_mjd, ``flux_col`` and either
        ``err_col`` (1-sigma per-frame flux uncertainty, flux units) or, with
        ``counts_per_flux``, photon noise ``sqrt(flux * counts_per_flux) / counts_per_flux``
        (e.g. ``counts_per_flux`` = frame time x gain for fluxes in DN/s).  An optional boolean
        ``masked`` column drops frames; non-finite fluxes and errors are dropped too.
    bin_s : bin length (s) within each visit; bins with fewer than half the median frames per
        bin are dropped.
    lines : instrumental lines (``instrumental_lines`` output, column frequency_hz): a
        least-squares sinusoid at each is subtracted from every binned visit (lines the visit
        resolves and the bins sample), and periodogram peaks within ``rel_tol`` of one are
        skipped.
    anomalies : intervals (start_mjd, end_mjd, optionally gs_id) whose frames are left out,
        e.g. ``detect_anomalies`` output for flux drops caused by the observatory.
    n_peaks : peaks examined per visit when skipping instrumental lines.

    Method
    ------
    Each visit's flux is divided by its median (relative flux, 0 = median).  In each bin: mean
    relative flux ``x`` and its expected error ``e = sqrt(sum err^2) / n / median``.  Per star:

    - ``rms_ppm``: 1.4826 MAD of ``x`` (robust: a short dip does not raise it);
      ``expected_rms_ppm``: median ``e``; ``excess``: 1.4826 MAD of ``x / e`` (1 = photon noise
      limited); ``excess_ppm = sqrt(max(rms^2 - expected^2, 0))``.
    - ``eta``: von Neumann ratio, mean squared difference of consecutive bins of a visit over
      the variance about the visit means (2 for white noise, << 2 for smooth variability).
    - ``skew``: skewness of ``x`` about the visit means (negative: dips, e.g. eclipses).
    - ``best_period_s``, ``best_fap``: Lomb-Scargle of the binned visit (detrend "none"), the
      strongest peak not on an instrumental line, over the visits the one with the lowest Baluev
      FAP, corrected for the number of visits searched: ``1 - (1 - fap)^n``.
    - White-noise z-scores: ``z_excess = (excess^2 - 1) sqrt((N - 1) / 2)``,
      ``z_eta = (2 - eta) / sd(eta)`` with ``sd^2 = 4 (N - 2) / ((N - 1)(N + 1))``,
      ``z_skew = |skew| / sqrt(6 / N)``, ``z_period = Phi^-1(1 - best_fap)`` (N bins).
    - ``score = sum log(1 + max(z, 0))`` over the four; ``rank`` 1 = highest score.
      Scores do not depend on the other stars in the table.
    """
    bins, n_frames = variability_bins(
        frames,
        bin_s=bin_s,
        flux_col=flux_col,
        err_col=err_col,
        counts_per_flux=counts_per_flux,
        anomalies=anomalies,
    )
    return variability_from_bins(
        bins, n_frames, bin_s=bin_s, lines=lines, rel_tol=rel_tol, n_peaks=n_peaks
    )


#: Columns of :func:`variability_bins`' bins: one row per (star, visit, bin of ``bin_s``).
BIN_SCHEMA: dict[str, pl.DataType] = {
    "gs_id": pl.String,
    "visit_key": pl.String,
    "bin": pl.Float64,
    "x": pl.Float64,  # mean relative flux of the bin (0 = the visit's median)
    "e": pl.Float64,  # its expected error (photon noise), relative
    "t_s": pl.Float64,  # mean time of the bin, s (MJD x 86400)
    "n": pl.Int64,  # frames in the bin
}


def variability_bins(
    frames: pl.DataFrame,
    *,
    bin_s: float = 10.0,
    flux_col: str = "flux",
    err_col: str = "flux_err",
    counts_per_flux: float | None = None,
    anomalies: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The per-visit half of :func:`variability_stats`: each visit normalised by its median and
    binned to ``bin_s`` seconds (:data:`BIN_SCHEMA`), and the frames used per star (gs_id,
    n_frames). Visits are independent here, so bins of one visit can be stored and reused."""
    required = ["gs_id", "visit_key", "time_mjd", flux_col]
    missing = [c for c in required if c not in frames.columns]
    if missing:
        raise ValueError(f"frames lacks column(s) {missing}; it has {frames.columns}")
    if err_col not in frames.columns and counts_per_flux is None:
        raise ValueError(
            f"frames has no {err_col!r} column: give per-frame errors in it (err_col=...) or "
            "counts_per_flux=... to use photon noise"
        )
    if not bin_s > 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s}")

    cols = [
        pl.col("gs_id").cast(pl.String),
        pl.col("visit_key").cast(pl.String),
        pl.col("time_mjd").cast(pl.Float64),
        pl.col(flux_col).cast(pl.Float64).alias("flux"),
    ]
    if err_col in frames.columns:
        cols.append(pl.col(err_col).cast(pl.Float64).alias("err"))
    else:
        c = float(counts_per_flux)
        cols.append(((pl.col(flux_col).cast(pl.Float64).abs() * c).sqrt() / c).alias("err"))
    if "masked" in frames.columns:
        cols.append(pl.col("masked").cast(pl.Boolean).fill_null(False).alias("masked"))
    df = frames.select(cols)
    if "masked" in df.columns:
        df = df.filter(~pl.col("masked")).drop("masked")
    df = df.filter(pl.col("flux").is_finite() & pl.col("err").is_finite() & (pl.col("err") > 0))
    df = _mask_intervals(df, anomalies, "time_mjd")
    if df.height == 0:
        return pl.DataFrame(schema=BIN_SCHEMA), pl.DataFrame(
            schema={"gs_id": pl.String, "n_frames": pl.Int64}
        )

    visit = ["gs_id", "visit_key"]
    df = df.with_columns(
        pl.col("flux").median().over(visit).alias("med"),
        pl.col("time_mjd").min().over(visit).alias("t0"),
    ).filter(pl.col("med") > 0)
    df = df.with_columns(
        (pl.col("flux") / pl.col("med") - 1.0).alias("rel"),
        (pl.col("err") / pl.col("med")).alias("rel_err"),
        ((pl.col("time_mjd") - pl.col("t0")) * SECONDS_PER_DAY / bin_s).floor().alias("bin"),
    )
    n_frames = df.group_by("gs_id").agg(pl.len().cast(pl.Int64).alias("n_frames"))
    bins = (
        df.group_by([*visit, "bin"])
        .agg(
            pl.col("rel").mean().alias("x"),
            ((pl.col("rel_err") ** 2).sum().sqrt() / pl.len()).alias("e"),
            (pl.col("time_mjd").mean() * SECONDS_PER_DAY).alias("t_s"),
            pl.len().alias("n"),
        )
        .sort([*visit, "bin"])
    )
    return bins.select([pl.col(c).cast(t) for c, t in BIN_SCHEMA.items()]), n_frames


LINE_REACH_BINS = 2.0
"""Instrumental lines count for the variability of binned visits only below this many times
their bin frequency (``variability_lines``): they are fitted out up to the bin Nyquist
(0.5 / bin_s) and label binned peaks, which lie below it; the pointing lines at 0.5-2 Hz never
touch 10-s bins."""


def variability_lines(lines: pl.DataFrame | None, bin_s: float) -> pl.DataFrame | None:
    """The instrumental lines that can change the variability of visits binned in ``bin_s``
    seconds (below ``LINE_REACH_BINS / bin_s``): a line elsewhere changing does not rescore."""
    if lines is None:
        return None
    return lines.filter(pl.col("frequency_hz") < LINE_REACH_BINS / float(bin_s))


def variability_from_bins(
    bins: pl.DataFrame,
    n_frames: pl.DataFrame,
    *,
    bin_s: float = 10.0,
    lines: pl.DataFrame | None = None,
    rel_tol: float = 0.01,
    n_peaks: int = 10,
) -> pl.DataFrame:
    """The per-star half of :func:`variability_stats`, from the visits' bins (:func:`variability_bins`,
    any number of visits per star) and the frames used per star (gs_id, n_frames)."""
    visit = ["gs_id", "visit_key"]
    bins = bins.filter(pl.col("n") >= 0.5 * pl.col("n").median().over("gs_id")).sort(
        [*visit, "bin"]
    )
    if bins.height == 0:
        return pl.DataFrame(schema=VARIABILITY_SCHEMA)
    lines = variability_lines(lines, bin_s)
    if lines is not None and lines.height:
        bins = _remove_lines(bins, lines["frequency_hz"].cast(pl.Float64).to_numpy(), bin_s)
    # centre each visit on its binned mean, consecutive-bin differences within a visit
    bins = bins.with_columns((pl.col("x") - pl.col("x").mean().over(visit)).alias("xc"))
    bins = bins.with_columns(
        pl.col("x").diff().over(visit).alias("dx"),
        (pl.col("bin").diff().over(visit) == 1).alias("adjacent"),
    )
    stats = bins.group_by("gs_id").agg(
        pl.col("visit_key").n_unique().cast(pl.Int64).alias("n_visits"),
        pl.len().cast(pl.Int64).alias("n_bins"),
        ((pl.col("x") - pl.col("x").median()).abs().median() * MAD_TO_SIGMA * 1e6).alias("rms_ppm"),
        (pl.col("e").median() * 1e6).alias("expected_rms_ppm"),
        ((pl.col("x") / pl.col("e")) - (pl.col("x") / pl.col("e")).median())
        .abs()
        .median()
        .mul(MAD_TO_SIGMA)
        .alias("excess"),
        (
            (pl.col("dx") ** 2).filter(pl.col("adjacent")).mean()
            / ((pl.col("xc") ** 2).sum() / (pl.len() - pl.col("visit_key").n_unique()))
        ).alias("eta"),
        ((pl.col("xc") ** 3).mean() / (pl.col("xc") ** 2).mean() ** 1.5).alias("skew"),
    )

    period = _best_periods(bins, lines, rel_tol=rel_tol, n_peaks=n_peaks)
    out = (
        stats.join(n_frames, on="gs_id", how="left")
        .join(period, on="gs_id", how="left")
        .with_columns(
            (pl.col("rms_ppm") ** 2 - pl.col("expected_rms_ppm") ** 2)
            .clip(lower_bound=0.0)
            .sqrt()
            .alias("excess_ppm"),
        )
    )
    n = pl.col("n_bins").cast(pl.Float64)
    out = out.with_columns(
        ((pl.col("excess") ** 2 - 1.0) * ((n - 1.0) / 2.0).sqrt()).alias("z_excess"),
        (
            (2.0 - pl.col("eta"))
            / (4.0 * (n - 2.0) / ((n - 1.0) * (n + 1.0))).clip(lower_bound=1e-12).sqrt()
        ).alias("z_eta"),
        (pl.col("skew").abs() / (6.0 / n).sqrt()).alias("z_skew"),
        pl.Series(
            "z_period",
            norm_isf(np.clip(out["best_fap"].fill_null(1.0).to_numpy(), 1e-300, 1.0)),
        ).clip(lower_bound=0.0),
    )
    comps = ["z_excess", "z_eta", "z_skew", "z_period"]
    out = out.with_columns(
        pl.sum_horizontal(
            [pl.col(c).fill_nan(0.0).fill_null(0.0).clip(lower_bound=0.0).log1p() for c in comps]
        ).alias("score")
    )
    out = out.sort(["score", "gs_id"], descending=[True, False]).with_row_index("rank", offset=1)
    return out.select([pl.col(c).cast(t) for c, t in VARIABILITY_SCHEMA.items()])


def _remove_lines(bins: pl.DataFrame, freqs: np.ndarray, bin_s: float) -> pl.DataFrame:
    """Subtract from each visit's binned flux a least-squares sinusoid at every instrumental
    line frequency that the visit resolves (between 1/duration and the bin Nyquist 0.5/bin_s)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    freqs = freqs[np.isfinite(freqs) & (freqs > 0) & (freqs < 0.5 / bin_s)]
    if freqs.size == 0:
        return bins
    key = (bins["gs_id"] + "\x00" + bins["visit_key"]).to_numpy()
    t = bins["t_s"].to_numpy()
    x = bins["x"].to_numpy().copy()
    bounds = np.flatnonzero(key[1:] != key[:-1]) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, key.size], strict=True):
        tt = t[a:b] - t[a]
        span = max(tt[-1], 1e-9) if b - a > 2 else 0.0
        f = _resolved(freqs[freqs * span >= 1.0], span)
        if f.size == 0 or b - a < 2 * f.size + 4:
            continue
        ph = 2 * np.pi * tt[:, None] * f[None, :]
        design = np.hstack((np.ones((b - a, 1)), np.sin(ph), np.cos(ph)))
        # lines the visit cannot separate would make the fit degenerate: they were thinned out
        # above, and near-singular directions are cut (rcond) rather than amplified
        coef, *_ = np.linalg.lstsq(design, x[a:b], rcond=1e-6)
        x[a:b] -= design[:, 1:] @ coef[1:]
    return bins.with_columns(pl.Series("x", x))


def _resolved(freqs: np.ndarray, span_s: float) -> np.ndarray:
    """The frequencies a stretch of ``span_s`` seconds resolves: sorted, each at least one
    resolution element (1 / span) above the previous one kept."""
    out: list[float] = []
    for f in np.sort(freqs):
        if not out or (f - out[-1]) * span_s >= 1.0:
            out.append(float(f))
    return np.asarray(out, dtype=np.float64)


def _best_periods(
    bins: pl.DataFrame, lines: pl.DataFrame | None, *, rel_tol: float, n_peaks: int
) -> pl.DataFrame:
    """Per star: best non-instrumental periodogram peak over its visits (lowest FAP)."""
    gs_out, period_out, fap_out = [], [], []
    for (gid,), star in bins.group_by("gs_id", maintain_order=True):
        best_fap, best_period, n_searched = 1.0, None, 0
        for (_,), vis in star.group_by("visit_key", maintain_order=True):
            if vis.height < MIN_POINTS:
                continue
            try:
                res = periodogram_series(
                    vis["t_s"].to_numpy(),
                    vis["x"].to_numpy(),
                    detrend="none",
                    n_peaks=n_peaks,
                    # a ranking of periods as long as the visit: a local continuum cannot be
                    # measured there (see docs/analyses.md, "Variable guide stars")
                    significance="white",
                )
            except ValueError:
                continue
            n_searched += 1
            peaks = res.peaks
            if lines is not None and lines.height and peaks.height:
                peaks = label_instrumental(peaks, lines, rel_tol=rel_tol).filter(
                    ~pl.col("instrumental")
                )
            if peaks.height == 0:
                continue
            top = peaks.sort("fap").row(0, named=True)
            if top["fap"] < best_fap or best_period is None:
                best_fap, best_period = float(top["fap"]), float(top["period_s"])
        gs_out.append(gid)
        period_out.append(best_period)
        # chance that any of the n visits searched gives a peak this strong: 1 - (1 - fap)^n
        fap_out.append(
            -np.expm1(n_searched * np.log1p(-min(best_fap, 1 - 1e-16))) if n_searched else None
        )
    return pl.DataFrame(
        {"gs_id": gs_out, "best_period_s": period_out, "best_fap": fap_out},
        schema={"gs_id": pl.String, "best_period_s": pl.Float64, "best_fap": pl.Float64},
    )
