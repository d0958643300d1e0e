"""Physical simulator of JWST FGS guide-star products (test data for fgsarchive).

No machine running the tests reaches MAST, so the archive is exercised with files written
here in the layout of real calibrated guider products (``GuiderCalModel``, see
``docs/simulator.md``):

* fine-guide cal files ``jw<ppppp><ooo><vvv>_gs-fg_<yyyydddhhmmss>[-seg<NNN>]_cal.fits``
  with PRIMARY, SCI ``(nints, 8, 8)`` float32 [DN/s], ERR, DQ ``(8, 8)`` uint32, POINTING and
  FGS CENTROID PACKET tables;
* the other guider products of a visit (``gs-acq1``, ``gs-acq2``, ``gs-track`` and, on
  request, ``gs-id_<m>_image``);
* the truth beside them in ``<out_dir>/truth/`` (per-frame Gaussian parameters, injected
  events, star list, telemetry intervals).

Frames follow the pixel and Gaussian conventions of ``docs/CONVENTIONS.md``: ``frame[y, x]``,
pixel centres at integer coordinates, and the PSF is astropy's ``Gaussian2D`` plus a constant
evaluated at the pixel centres, so fitted parameters compare directly with the truth.

Everything is deterministic given ``seed``. Pixels are generated in vectorised chunks of
frames (no per-frame Python loop) on a small thread pool, and every file is generated and
written on its own so memory stays flat.

Times of injected events are given in **seconds relative to the fine-guide start of the
visit** they belong to (the ``DATASTRT`` of the visit's first ``gs-fg`` file); the truth
tables report them as absolute MJD (UTC).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from astropy.io import fits
from scipy.signal import lfilter

__all__ = [
    "PIXEL_SCALE_ARCSEC",
    "FluxDrop",
    "CentroidJump",
    "PsfWidthChange",
    "PeriodicSignal",
    "VariableStar",
    "HgaMove",
    "FilterWheelMove",
    "Injection",
    "GuideStar",
    "CorrelatedNoise",
    "NOISE_PRESETS",
    "resolve_noise",
    "noise_series",
    "white_noise_sigmas",
    "SimulatedProgram",
    "SimulatedArchive",
    "TruthTables",
    "simulate_program",
    "simulate_archive",
    "write_fg_file",
    "write_guider_file",
    "make_guider_header",
    "make_guide_stars",
    "guider_file_name",
    "amplitude_from_mag",
    "flux_from_mag",
    "REFERENCE_PSF_AREA",
    "gaussian_frames",
    "pointing_dtype",
    "centroid_dtype",
    "track_subarray_dtype",
    "read_truth",
    "read_frame_truth",
    "edb_timeseries",
    "edb_csv",
    "mjd_to_iso",
    "file_stamp",
]

#: FGS plate scale [arcsec / pixel].
PIXEL_SCALE_ARCSEC = 0.069

_SECONDS_PER_DAY = 86400.0
_MJD_ZERO = datetime(1858, 11, 17)
_MJD_ZERO_NP = np.datetime64("1858-11-17T00:00:00", "us")
_FINEGUIDE_CHUNK = 4096

# ----------------------------------------------------------------------------------------
# table dtypes (exactly the stdatamodels guider_cal schema)
# ----------------------------------------------------------------------------------------


def pointing_dtype() -> np.dtype:
    """Numpy dtype of the POINTING table (``GuiderCalModel.get_dtype('pointing_table')``)."""
    cols = [
        "time",
        "jitter",
        "delta_ddc_ra",
        "delta_ddc_dec",
        "delta_aperture_pa",
        "delta_v1_ra",
        "delta_v1_dec",
        "delta_v3_pa",
        "delta_j1_ra",
        "delta_j1_dec",
        "delta_j3_pa",
    ]
    return np.dtype([(c, "<f8") for c in cols] + [("HGA_motion", "S16")])


def centroid_dtype() -> np.dtype:
    """Numpy dtype of the FGS CENTROID PACKET table (``get_dtype('centroid_table')``)."""
    return np.dtype(
        [
            ("observatory_time", "S23"),
            ("centroid_time", "S23"),
            ("guide_star_position_x", "<f8"),
            ("guide_star_position_y", "<f8"),
            ("guide_star_instrument_counts_per_sec", "<f8"),
            ("signal_to_noise_current_frame", "<f8"),
            ("delta_signal", "<f8"),
            ("delta_noise", "<f8"),
            ("psf_width_x", "<i4"),
            ("psf_width_y", "<i4"),
            ("data_quality", "<i4"),
            ("bad_pixel_flag", "S4"),
            ("bad_centroid_dq_flag", "S12"),
            ("cosmic_ray_hit_flag", "S5"),
            ("sw_subwindow_loc_change_flag", "S5"),
            ("guide_star_at_detector_subwindow_boundary_flag", "S5"),
            ("subwindow_out_of_FOV_flag", "S5"),
        ]
    )


def track_subarray_dtype() -> np.dtype:
    """Numpy dtype of the TRACK SUBARRAY TABLE (``get_dtype('track_sub_table')``)."""
    return np.dtype(
        [
            ("observatory_time", "S23"),
            ("x_corner", "<f8"),
            ("y_corner", "<f8"),
            ("x_size", "<i4"),
            ("y_size", "<i4"),
        ]
    )


def _planned_star_dtype() -> np.dtype:
    return np.dtype(
        [
            ("guide_star_order", "<i4"),
            ("reference_order", "<i4"),
            ("reference_star_id", "S12"),
            ("ra", "<f8"),
            ("dec", "<f8"),
            ("id_x", "<f8"),
            ("id_y", "<f8"),
            ("fgs_mag", "<f8"),
            ("fgs_mag_uncert", "<f8"),
            ("count_rate", "<f8"),
            ("count_rate_uncert", "<f8"),
        ]
    )


def _flight_star_dtype() -> np.dtype:
    return np.dtype(
        [("reference_star_id", "S2"), ("id_x", "<f8"), ("id_y", "<f8"), ("count_rate", "<f8")]
    )


# ----------------------------------------------------------------------------------------
# time helpers
# ----------------------------------------------------------------------------------------


def _mjd_to_datetime(mjd: float) -> datetime:
    return _MJD_ZERO + timedelta(microseconds=round(mjd * _SECONDS_PER_DAY * 1e6))


def mjd_to_iso(mjd: float | np.ndarray, *, sep: str = "T", unit: str = "ms") -> Any:
    """MJD (UTC, days) -> ISO string(s) ``YYYY-MM-DD<sep>hh:mm:ss.fff`` (rounded to ``unit``).

    Works on scalars and arrays (vectorised through ``numpy.datetime64``); arrays give a
    numpy array of ``str``.
    """
    arr = np.asarray(mjd, dtype=np.float64)
    per_s = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    ticks = np.round(arr * (_SECONDS_PER_DAY * per_s)).astype(np.int64)
    dt = np.datetime64("1858-11-17T00:00:00", unit) + ticks.astype(f"timedelta64[{unit}]")
    out = np.datetime_as_string(dt, unit=unit)
    if sep != "T":
        out = np.char.replace(out, "T", sep)
    if np.ndim(mjd) == 0:
        return str(out)
    return out


def _mjd_to_bytes(mjd: np.ndarray, width: int = 23) -> np.ndarray:
    """Vectorised MJD -> ``b'YYYY-MM-DD hh:mm:ss.fff'`` (S23) without Python loops."""
    ms = np.round(np.asarray(mjd, np.float64) * (_SECONDS_PER_DAY * 1e3)).astype(np.int64)
    dt = np.datetime64("1858-11-17T00:00:00", "ms") + ms.astype("timedelta64[ms]")
    s = np.datetime_as_string(dt, unit="ms").astype(f"S{width}")
    view = s.view(np.uint8).reshape(len(s), width)
    view[:, 10] = ord(" ")
    return s


def file_stamp(mjd: float) -> str:
    """File-name stamp ``%Y%j%H%M%S`` (UTC, day of year) of an MJD, truncated to the second."""
    return _mjd_to_datetime(mjd).strftime("%Y%j%H%M%S")


def _utc_str(mjd: float) -> str:
    """UTC string in the header style ``'YYYY-MM-DD hh:mm:ss.fff'``."""
    return mjd_to_iso(mjd, sep=" ")


def _frame_times(data_start: float, data_end: float, n: int) -> np.ndarray:
    """Mid-times of the frames of one file by the CONVENTIONS.md time rule (MJD)."""
    dt = (data_end - data_start) / n
    return data_start + (np.arange(n, dtype=np.float64) + 0.5) * dt


def _safe_end_start(start: float, duration_s: float) -> float:
    """Nudge ``start`` so the end is >= 5 ms from a whole second (unambiguous stamps)."""
    for _ in range(100):
        end_s = (start + duration_s / _SECONDS_PER_DAY) * _SECONDS_PER_DAY
        frac = end_s - math.floor(end_s)
        if 0.005 < frac < 0.995:
            return start
        start += 0.0137 / _SECONDS_PER_DAY
    return start


# ----------------------------------------------------------------------------------------
# injections (truth) and stars
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FluxDrop:
    """Drop of the guide star's total flux by ``depth`` (fraction, 0-1) for ``duration_s``.

    ``start_s`` [s] is relative to the fine-guide start of visit (``observation``, ``visit``).
    """

    start_s: float
    duration_s: float
    depth: float
    observation: int = 1
    visit: int = 1


@dataclass(frozen=True)
class CentroidJump:
    """Step of the star position by (``dx``, ``dy``) [px] at ``time_s`` [s after fine-guide start].

    Lasts ``duration_s`` seconds, or to the end of the visit when ``None``.
    """

    time_s: float
    dx: float = 0.0
    dy: float = 0.0
    duration_s: float | None = None
    observation: int = 1
    visit: int = 1


@dataclass(frozen=True)
class PsfWidthChange:
    """Fractional step of the PSF widths (mirror tilt): ``x_stddev *= 1 + frac_x`` etc.

    Total flux is conserved (the amplitude drops as the PSF widens). Starts at ``time_s`` [s
    after fine-guide start]; lasts ``duration_s`` seconds or to the end of the visit (``None``).
    """

    time_s: float
    frac_x: float = 0.0
    frac_y: float = 0.0
    duration_s: float | None = None
    observation: int = 1
    visit: int = 1


@dataclass(frozen=True)
class PeriodicSignal:
    """Sinusoidal signal ``amplitude * sin(2 pi t / period_s + phase)``.

    ``quantity='flux'``: relative flux modulation (``flux_scale *= 1 + s``); ``'x'``/``'y'``:
    centroid modulation in pixels. ``t`` is seconds since the program's ``start_mjd``, so the
    phase is coherent across files and visits. ``observation``/``visit`` ``None`` = all.
    """

    period_s: float
    amplitude: float
    quantity: Literal["flux", "x", "y"] = "flux"
    phase: float = 0.0
    observation: int | None = None
    visit: int | None = None


@dataclass(frozen=True)
class VariableStar:
    """Intrinsic variability of a guide star (by index into the program's stars or GDSTARID).

    ``kind='sinusoid'``: relative flux ``1 + amplitude * sin(2 pi (t - t0) / period_s)``.
    ``kind='eclipse'``: relative flux ``1 - amplitude`` during eclipses of ``duration_s``
    seconds centred on ``t0 + k * period_s`` (10 % linear ingress/egress).
    ``t0_mjd`` defaults to the program's ``start_mjd``. Times in absolute MJD so that a star
    reused by several programs keeps one light curve.
    """

    star: int | str
    kind: Literal["sinusoid", "eclipse"] = "sinusoid"
    period_s: float = 3600.0
    amplitude: float = 0.01
    t0_mjd: float | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class HgaMove:
    """High-gain-antenna move: ``SA_ZHGAUPST`` MOVING from ``start_s`` for ``duration_s``.

    Adds extra pointing jitter of RMS ``jitter_px`` [px] during the move and shows in the
    POINTING table's ``HGA_motion`` column and the ``HGA_MOVE``/``HGA_STRT``/``HGA_STOP``
    header keywords.
    """

    start_s: float
    duration_s: float = 120.0
    observation: int = 1
    visit: int = 1
    jitter_px: float = 0.03


@dataclass(frozen=True)
class FilterWheelMove:
    """NIRISS filter-wheel move (``INIS_FWMTRCURR`` current ``current`` [A] during the move).

    Optional extra jitter ``jitter_px`` [px] during the move (default none).
    """

    start_s: float
    duration_s: float = 6.0
    observation: int = 1
    visit: int = 1
    current: float = 0.35
    jitter_px: float = 0.0


Injection = FluxDrop | CentroidJump | PsfWidthChange | PeriodicSignal | HgaMove | FilterWheelMove

_KIND = {
    FluxDrop: "flux_drop",
    CentroidJump: "centroid_jump",
    PsfWidthChange: "psf_width_change",
    PeriodicSignal: "periodic_signal",
    HgaMove: "hga_move",
    FilterWheelMove: "filter_wheel_move",
    VariableStar: "variable_star",
}


@dataclass(frozen=True)
class GuideStar:
    """A guide star. ``fgs_mag`` sets the PSF amplitude (``amplitude_from_mag``)."""

    gs_id: str
    ra: float
    dec: float
    fgs_mag: float
    gaia_id: int
    j_mag: float
    h_mag: float
    k_mag: float
    detector: Literal["GUIDER1", "GUIDER2"] = "GUIDER1"
    variability: VariableStar | None = None

    @property
    def variable(self) -> bool:
        return self.variability is not None


#: PSF area ``x_stddev * y_stddev`` [px^2] at which ``amplitude_from_mag`` is the peak; the
#: star's total flux is ``2 pi amplitude_from_mag(mag) REFERENCE_PSF_AREA`` whatever the widths.
REFERENCE_PSF_AREA = 0.62 * 0.57


def amplitude_from_mag(fgs_mag: float | np.ndarray) -> Any:
    """Peak PSF amplitude [DN/s] for an FGS magnitude (12.5 -> 7e5, 15.3 -> ~5e4) at the
    reference PSF area ``REFERENCE_PSF_AREA``; wider PSFs have a lower peak, same flux."""
    return 7.0e5 * 10.0 ** (-0.4 * (np.asarray(fgs_mag, dtype=np.float64) - 12.5))


def flux_from_mag(fgs_mag: float | np.ndarray) -> Any:
    """Total star flux [DN/s] (``2 pi amplitude x_stddev y_stddev``) for an FGS magnitude."""
    return 2.0 * np.pi * amplitude_from_mag(fgs_mag) * REFERENCE_PSF_AREA


_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def make_guide_stars(
    n: int,
    *,
    seed: int | np.random.SeedSequence = 0,
    center: tuple[float, float] | None = None,
    radius_deg: float = 0.15,
    mag_range: tuple[float, float] = (12.5, 15.3),
) -> list[GuideStar]:
    """Draw ``n`` plausible guide stars (GSC-like ids, Gaia-like ids, 2MASS-like J/H/K).

    ``center`` (ra, dec) [deg] puts them within ``radius_deg`` of a field centre; ``None``
    draws a random field. Magnitudes uniform in ``mag_range``.
    """
    rng = np.random.default_rng(seed)
    if center is None:
        center = (float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1, 1)))))
    stars = []
    for _ in range(n):
        dec = float(np.clip(center[1] + rng.uniform(-radius_deg, radius_deg), -89.9, 89.9))
        ra = float(
            (
                center[0]
                + rng.uniform(-radius_deg, radius_deg) / max(math.cos(math.radians(dec)), 0.05)
            )
            % 360.0
        )
        prefix = ("N" if dec >= 0 else "S") + str(rng.integers(0, 10))
        prefix += "".join(_B36[i] for i in rng.integers(0, 36, 2))
        gs_id = prefix + f"{int(rng.integers(0, 1_000_000)):06d}"
        mag = float(rng.uniform(*mag_range))
        j = mag + float(rng.normal(0.25, 0.1))
        h = j - float(rng.uniform(0.3, 0.7))
        k = h - float(rng.uniform(0.05, 0.25))
        stars.append(
            GuideStar(
                gs_id=gs_id,
                ra=ra,
                dec=dec,
                fgs_mag=round(mag, 3),
                gaia_id=int(rng.integers(10**17, 7 * 10**18)),
                j_mag=round(j, 3),
                h_mag=round(h, 3),
                k_mag=round(k, 3),
                detector="GUIDER1" if rng.random() < 0.5 else "GUIDER2",
            )
        )
    return stars


# ----------------------------------------------------------------------------------------
# the PSF model
# ----------------------------------------------------------------------------------------


def _abc(sx: np.ndarray, sy: np.ndarray, th: np.ndarray) -> tuple[np.ndarray, ...]:
    """Coefficients of astropy ``Gaussian2D``: exponent = a dx^2 + b dx dy + c dy^2."""
    c2, s2, s2t = np.cos(th) ** 2, np.sin(th) ** 2, np.sin(2.0 * th)
    xs2, ys2 = sx * sx, sy * sy
    a = 0.5 * (c2 / xs2 + s2 / ys2)
    b = 0.5 * (s2t / xs2 - s2t / ys2)
    c = 0.5 * (s2 / xs2 + c2 / ys2)
    return a, b, c


def gaussian_frames(
    amplitude: np.ndarray,
    x_mean: np.ndarray,
    y_mean: np.ndarray,
    x_stddev: np.ndarray,
    y_stddev: np.ndarray,
    theta: np.ndarray,
    offset: np.ndarray,
    shape: tuple[int, int] = (8, 8),
    dtype: Any = np.float64,
) -> np.ndarray:
    """Noiseless frames ``(n, ny, nx)``: astropy ``Gaussian2D`` + constant at pixel centres.

    All parameters are 1-D arrays of length ``n`` (or scalars). ``frame[y, x]``, pixel centres
    at integer coordinates (CONVENTIONS.md).
    """
    p = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (amplitude, x_mean, y_mean)]
    q = [
        np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (x_stddev, y_stddev, theta, offset)
    ]
    amp, x0, y0 = np.broadcast_arrays(*p)
    sx, sy, th, off = (np.broadcast_to(v, amp.shape) for v in q)
    a, b, c = _abc(sx, sy, th)
    ny, nx = shape
    xs = np.arange(nx, dtype=dtype)
    ys = np.arange(ny, dtype=dtype)
    dx = (xs[None, None, :] - x0[:, None, None].astype(dtype)).astype(dtype)
    dy = (ys[None, :, None] - y0[:, None, None].astype(dtype)).astype(dtype)
    q2 = (b[:, None, None].astype(dtype) * dy) * dx
    q2 += a[:, None, None].astype(dtype) * dx * dx
    q2 += c[:, None, None].astype(dtype) * dy * dy
    np.negative(q2, out=q2)
    np.exp(q2, out=q2)
    q2 *= amp[:, None, None].astype(dtype)
    q2 += off[:, None, None].astype(dtype)
    return q2


@dataclass(frozen=True)
class _Noise:
    model: Literal["gaussian", "poisson", "none"]
    gain: float  # e-/DN
    exposure_s: float  # effective integration time per frame [s]
    read_noise_e: float

    @property
    def gt(self) -> float:
        return self.gain * self.exposure_s


def _render_fg_chunk(
    sci: np.ndarray,
    err: np.ndarray,
    i0: int,
    i1: int,
    par: dict[str, np.ndarray],
    noise: _Noise,
    seed_seq: np.random.SeedSequence,
    cr_rate: float,
    nan_rate: float,
    nan_frame_rate: float,
    cr_pixel: np.ndarray,
    n_nan: np.ndarray,
) -> None:
    """Render frames ``[i0, i1)`` of a file into ``sci``/``err`` (thread-safe, own RNG)."""
    rng = np.random.default_rng(seed_seq)
    sl = slice(i0, i1)
    n = i1 - i0
    m = gaussian_frames(
        par["amplitude"][sl],
        par["x_mean"][sl],
        par["y_mean"][sl],
        par["x_stddev"][sl],
        par["y_stddev"][sl],
        par["theta"][sl],
        par["offset"][sl],
        dtype=np.float32,
    )
    gt = noise.gt
    k2 = np.float32((noise.read_noise_e / gt) ** 2)
    var = m * np.float32(1.0 / gt)
    var += k2
    np.sqrt(var, out=var)  # var now holds sigma [DN/s]
    if noise.model == "gaussian":
        z = rng.standard_normal(m.shape, dtype=np.float32)
        z *= var
        z += m
        out = z
    elif noise.model == "poisson":
        lam = np.clip(m.astype(np.float64) * gt, 0.0, None)
        e = rng.poisson(lam).astype(np.float32)
        e += rng.standard_normal(m.shape, dtype=np.float32) * np.float32(noise.read_noise_e)
        e *= np.float32(1.0 / gt)
        out = e
    else:
        out = m
    # cosmic rays: one hot pixel per hit
    k = int(rng.binomial(n, cr_rate)) if cr_rate > 0 else 0
    if k:
        f = rng.integers(0, n, k)
        pix = rng.integers(0, 64, k)
        val = rng.uniform(2.0e4, 4.0e5, k).astype(np.float32)
        np.add.at(out.reshape(n, 64), (f, pix), val)
        cr_pixel[i0 + f] = pix
    # isolated NaN pixels and (rarely) fully NaN frames
    k = int(rng.binomial(n, nan_rate)) if nan_rate > 0 else 0
    if k:
        f = rng.integers(0, n, k)
        pix = rng.integers(0, 64, k)
        out.reshape(n, 64)[f, pix] = np.nan
        var.reshape(n, 64)[f, pix] = np.nan
    k = int(rng.binomial(n, nan_frame_rate)) if nan_frame_rate > 0 else 0
    if k:
        f = rng.integers(0, n, k)
        out[f] = np.nan
        var[f] = np.nan
    if nan_rate > 0 or nan_frame_rate > 0:
        n_nan[sl] = np.isnan(out.reshape(n, 64)).sum(axis=1)
    sci[sl] = out
    err[sl] = var


# ----------------------------------------------------------------------------------------
# headers and the low-level writer
# ----------------------------------------------------------------------------------------

_COMMENTS = {
    "DATE": "UTC date file created",
    "ORIGIN": "Organization responsible for creating file",
    "TIMESYS": "principal time system for time-related keywords",
    "FILENAME": "Name of the file",
    "FILETYPE": "Type of data in the file",
    "DATAMODL": "Type of data model",
    "TELESCOP": "Telescope used to acquire the data",
    "CAL_VER": "Calibration software version number",
    "DATE-OBS": "[yyyy-mm-dd] UTC date at start of exposure",
    "TIME-OBS": "[hh:mm:ss.sss] UTC time at start of exposure",
    "DATE-BEG": "Date-time start of exposure",
    "DATE-END": "Date-time end of exposure",
    "OBS_ID": "Programmatic observation identifier",
    "VISIT_ID": "Visit identifier",
    "PROGRAM": "Program number",
    "OBSERVTN": "Observation number",
    "VISIT": "Visit number",
    "VISITGRP": "Visit group identifier",
    "SEQ_ID": "Parallel sequence identifier",
    "ACT_ID": "Activity identifier",
    "EXPOSURE": "Exposure request number",
    "VISITYPE": "Visit type",
    "VSTSTART": "UTC visit start time",
    "VISITSTA": "Status of a visit",
    "TSOVISIT": "Time Series Observation visit indicator",
    "ENG_QUAL": "Engineering data quality indicator",
    "INSTRUME": "Instrument used to acquire the data",
    "DETECTOR": "Name of detector used to acquire the data",
    "APERNAME": "PRD science aperture used",
    "PPS_APER": "Original AperName supplied by PPS",
    "EXP_TYPE": "Type of data in the exposure",
    "DATAPROB": "Science telemetry indicated a problem",
    "READPATT": "Readout pattern",
    "NINTS": "Number of integrations in exposure",
    "NGROUPS": "Number of groups in integration",
    "NFRAMES": "Number of frames per group",
    "GROUPGAP": "Number of frames dropped between groups",
    "TFRAME": "[s] Time between frames",
    "TGROUP": "[s] Time between groups",
    "EFFINTTM": "[s] Effective integration time",
    "DURATION": "[s] Total duration of exposure",
    "EXSEGNUM": "Segment number",
    "EXSEGTOT": "Total number of segments",
    "INTSTART": "Starting integration number in this segment",
    "INTEND": "Ending integration number in this segment",
    "SUBARRAY": "Subarray used",
    "SUBSTRT1": "Starting pixel in axis 1 direction",
    "SUBSTRT2": "Starting pixel in axis 2 direction",
    "SUBSIZE1": "Number of pixels in axis 1 direction",
    "SUBSIZE2": "Number of pixels in axis 2 direction",
    "GS_ORDER": "index of guide star within list of selected guide stars",
    "GSSTRTTM": "UTC time when guide star activity started",
    "GSENDTIM": "UTC time when guide star activity completed",
    "GF_START": "UTC time guider function started",
    "GF_END": "UTC time guider function ended",
    "GDSTARID": "guide star identifier",
    "GS_RA": "guide star right ascension",
    "GS_DEC": "guide star declination",
    "GS_URA": "guide star right ascension uncertainty",
    "GS_UDEC": "guide star declination uncertainty",
    "GS_MAG": "guide star magnitude in FGS detector",
    "GS_UMAG": "guide star magnitude uncertainty",
    "GS_MURA": "RA proper motion of guide star",
    "GS_MUDEC": "Dec proper motion of guide star",
    "GS_PARA": "parallax of guide star",
    "GS_EPOCH": "Epoch of guide star coordinates",
    "GS_V3_PA": "V3 Position Angle of guide star for science",
    "GSIDL_X": "guide star ideal x position",
    "GSIDL_Y": "guide star ideal y position",
    "PCS_MODE": "Pointing Control System mode",
    "FGS_APER": "Aperture used for guide star acquisition",
    "DATASTRT": "[d] MJD start time of guider data in this file",
    "DATAEND": "[d] MJD end time of guider data in this file",
    "GSACSTAT": "Guide star acquisition execution status",
    "VISITEND": "Observatory UTC time when the visit ended",
    "GSC_VER": "Guide star catalog version used",
    "HGA_MOVE": "High Gain Antenna moved during data collection",
    "HGA_STRT": "UTC time of HGA move start",
    "HGA_STOP": "UTC time of HGA move stop",
    "BUNIT": "physical units of the array values",
}


def _to_header(values: Mapping[str, Any] | fits.Header | None) -> fits.Header:
    """Dict ``{KEY: value | (value, comment)}`` -> ``fits.Header`` (None values skipped)."""
    if values is None:
        return fits.Header()
    if isinstance(values, fits.Header):
        return values.copy()
    hdr = fits.Header()
    for key, val in values.items():
        if isinstance(val, tuple):
            v, comment = val
        else:
            v, comment = val, _COMMENTS.get(key.upper(), "")
        if v is None:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        room = 80 - len(fits.Card(key, v).image.rstrip()) - 3
        hdr[key] = (v, comment[: max(room, 0)])
    return hdr


# --- a small strict FITS writer (astropy's per-card overhead dominates small files) ---

_BITPIX = {
    "u1": (8, None),
    "i2": (16, None),
    "i4": (32, None),
    "i8": (64, None),
    "f4": (-32, None),
    "f8": (-64, None),
    "u2": (16, 32768),
    "u4": (32, 2147483648),
    "u8": (64, 9223372036854775808),
}
_TFORM = {"f8": "D", "f4": "E", "i4": "J", "i2": "I", "i8": "K", "u1": "B"}
_KEY_RE = re.compile(r"^[A-Z0-9_-]{1,8}$")


class _Unsupported(Exception):
    pass


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return f"{'T' if v else 'F':>20}"
    if isinstance(v, int | np.integer):
        return f"{int(v):>20}"
    if isinstance(v, float | np.floating):
        v = float(v)
        if not math.isfinite(v):
            raise _Unsupported("non-finite header float")
        txt = repr(v).replace("e", "E")
        if "." not in txt and "E" not in txt:
            txt += ".0"
        digits = 16
        while len(txt) > 20:  # as astropy: fewer significant digits for huge/tiny values
            txt = f"{v:.{digits}G}"
            digits -= 1
        return f"{txt:>20}"
    if isinstance(v, str):
        if not v.isascii() or len(v) > 68 or any(ord(c) < 32 for c in v):
            raise _Unsupported("long or non-ASCII string")
        quoted = "'" + v.replace("'", "''").ljust(8) + "'"
        return quoted.ljust(20)
    raise _Unsupported(f"header value type {type(v).__name__}")


def _card(key: str, value: Any, comment: str = "") -> str:
    key = key.upper()
    if not _KEY_RE.match(key):
        raise _Unsupported(f"keyword {key!r}")
    img = f"{key:8}= {_fmt_value(value)}"
    if len(img) > 80:
        raise _Unsupported("card too long")
    if comment and len(img) < 77:
        img += " / " + comment
    return f"{img[:80]:80}"


def _user_cards(values: Mapping[str, Any] | None) -> list[str]:
    cards = []
    for key, val in (values or {}).items():
        v, comment = val if isinstance(val, tuple) else (val, _COMMENTS.get(key.upper(), ""))
        if v is None:
            continue
        cards.append(_card(key, v, comment))
    return cards


def _header_block(cards: list[str]) -> bytes:
    text = "".join(cards) + f"{'END':80}"
    text += " " * (-len(text) % 2880)
    return text.encode("ascii")


def _image_hdu(arr: np.ndarray | None, extname: str | None, keys: Mapping | None) -> list:
    if arr is None:
        cards = [
            _card("SIMPLE", True),
            _card("BITPIX", 8),
            _card("NAXIS", 0),
            _card("EXTEND", True),
        ]
        return [cards + _user_cards(keys), None]
    arr = np.asarray(arr)
    code = f"{arr.dtype.kind}{arr.dtype.itemsize}"
    if code not in _BITPIX or arr.ndim == 0:
        raise _Unsupported(f"image dtype {arr.dtype}")
    bitpix, bzero = _BITPIX[code]
    cards = [_card("XTENSION", "IMAGE"), _card("BITPIX", bitpix), _card("NAXIS", arr.ndim)]
    cards += [_card(f"NAXIS{i + 1}", n) for i, n in enumerate(arr.shape[::-1])]
    cards += [_card("PCOUNT", 0), _card("GCOUNT", 1)]
    if bzero is not None:
        cards += [_card("BSCALE", 1), _card("BZERO", bzero)]
        signed = np.dtype(f">i{arr.dtype.itemsize}")
        flip = np.array(1 << (8 * arr.dtype.itemsize - 1), dtype=arr.dtype)
        data = (arr ^ flip).astype(arr.dtype.newbyteorder(">")).view(signed)
    else:
        data = arr.astype(arr.dtype.newbyteorder(">"), copy=False)
    if extname:
        cards.append(_card("EXTNAME", extname, "extension name"))
    return [cards + _user_cards(keys), np.ascontiguousarray(data)]


def _table_hdu(arr: np.ndarray, extname: str, keys: Mapping | None) -> list:
    dt = arr.dtype
    if dt.names is None:
        raise _Unsupported("table must be a structured array")
    be_fields, forms = [], []
    for name in dt.names:
        f = dt.fields[name][0]
        if f.subdtype is not None:
            raise _Unsupported("array columns")
        if f.kind == "S":
            forms.append(f"{f.itemsize}A")
            be_fields.append((name, f))
        else:
            code = f"{f.kind}{f.itemsize}"
            if code not in _TFORM:
                raise _Unsupported(f"column dtype {f}")
            forms.append(_TFORM[code])
            be_fields.append((name, f.newbyteorder(">")))
    packed = np.dtype(be_fields)
    data = np.empty(arr.shape[0], dtype=packed)
    for name in dt.names:
        data[name] = arr[name]
    cards = [
        _card("XTENSION", "BINTABLE", "binary table extension"),
        _card("BITPIX", 8),
        _card("NAXIS", 2),
        _card("NAXIS1", packed.itemsize),
        _card("NAXIS2", arr.shape[0]),
        _card("PCOUNT", 0),
        _card("GCOUNT", 1),
        _card("TFIELDS", len(dt.names)),
    ]
    for i, (name, form) in enumerate(zip(dt.names, forms, strict=True)):
        cards += [_card(f"TTYPE{i + 1}", name), _card(f"TFORM{i + 1}", form)]
    cards.append(_card("EXTNAME", extname, "extension name"))
    return [cards + _user_cards(keys), data]


def _write_fast(path: Path, hdus: list[list], overwrite: bool) -> None:
    blocks = [(_header_block(cards), data) for cards, data in hdus]  # may raise first
    with open(path, "wb" if overwrite else "xb") as fh:
        for head, data in blocks:
            fh.write(head)
            if data is not None:
                fh.write(memoryview(data).cast("B"))
                pad = -data.nbytes % 2880
                if pad:
                    fh.write(b"\0" * pad)


def write_guider_file(
    path: str | os.PathLike[str],
    sci: np.ndarray,
    err: np.ndarray | None,
    dq: np.ndarray | None,
    header: Mapping[str, Any] | fits.Header,
    tables: Sequence[tuple[str, np.ndarray | None, Mapping[str, Any] | None]] = (),
    *,
    sci_header: Mapping[str, Any] | None = None,
    extra_hdus: Sequence[fits.hdu.base.ExtensionHDU] = (),
    overwrite: bool = True,
    engine: Literal["auto", "fast", "astropy"] = "auto",
) -> Path:
    """Write any guider product: PRIMARY, SCI, ERR, DQ, then binary tables in the given order.

    ``header``: PRIMARY keywords, ``{KEY: value | (value, comment)}`` (``None`` values are
    skipped) or an astropy ``Header``. ``tables`` holds ``(EXTNAME, structured array,
    extension keywords)``. Arrays are written with the dtype given (so tests can build odd
    files); ``None`` arrays/tables are omitted. SCI and ERR get ``BUNIT='DN/s'`` unless
    ``sci_header`` says otherwise.

    ``engine='fast'`` uses a small built-in FITS writer (standard numeric dtypes, short ASCII
    strings, byte-identical output for identical input); ``'astropy'`` uses
    ``astropy.io.fits``; ``'auto'`` (default) tries the fast writer and falls back to astropy
    for anything it does not handle (e.g. ``extra_hdus``, an astropy ``Header``).
    """
    path = Path(path)
    img_hdr = {"BUNIT": "DN/s"} if sci_header is None else dict(sci_header)
    tabs = [(n.upper(), a, k) for n, a, k in tables if a is not None]
    use_fast = engine == "fast" or (
        engine == "auto" and not extra_hdus and not isinstance(header, fits.Header)
    )
    if use_fast:
        try:
            hdus = [_image_hdu(None, None, header), _image_hdu(sci, "SCI", img_hdr)]
            if err is not None:
                hdus.append(_image_hdu(err, "ERR", img_hdr))
            if dq is not None:
                hdus.append(_image_hdu(dq, "DQ", None))
            hdus += [_table_hdu(np.asarray(a), n, k) for n, a, k in tabs]
            _write_fast(path, hdus, overwrite)
            return path
        except _Unsupported:
            if engine == "fast":
                raise
    hl: list[Any] = [fits.PrimaryHDU(header=_to_header(header))]
    hl.append(fits.ImageHDU(data=sci, header=_to_header(img_hdr), name="SCI"))
    if err is not None:
        hl.append(fits.ImageHDU(data=err, header=_to_header(img_hdr), name="ERR"))
    if dq is not None:
        hl.append(fits.ImageHDU(data=dq, name="DQ"))
    for extname, arr, keys in tabs:
        hl.append(fits.BinTableHDU(data=arr, header=_to_header(keys), name=extname))
    hl.extend(extra_hdus)
    fits.HDUList(hl).writeto(path, overwrite=overwrite)
    return path


def write_fg_file(
    path: str | os.PathLike[str],
    sci: np.ndarray,
    err: np.ndarray | None,
    dq: np.ndarray | None,
    header: Mapping[str, Any] | fits.Header,
    pointing: np.ndarray | None = None,
    centroids: np.ndarray | None = None,
    *,
    pointing_header: Mapping[str, Any] | None = None,
    centroid_header: Mapping[str, Any] | None = None,
    extra_hdus: Sequence[fits.hdu.base.ExtensionHDU] = (),
    overwrite: bool = True,
    engine: Literal["auto", "fast", "astropy"] = "auto",
) -> Path:
    """Write a fine-guide cal file in the real HDU order.

    PRIMARY (``header``: dict of keyword -> value or (value, comment)), SCI, ERR, DQ,
    POINTING (``pointing``, structured array, e.g. ``np.zeros(n, pointing_dtype())``) and
    FGS CENTROID PACKET (``centroids``, ``centroid_dtype()``). Nothing is validated: pass any
    arrays/headers to build corrupt or odd files. ``uint32`` DQ is written as
    ``BITPIX=32, BZERO=2147483648`` like stdatamodels/astropy do. ``engine``: see
    :func:`write_guider_file`.
    """
    tables = [
        ("POINTING", pointing, pointing_header),
        ("FGS CENTROID PACKET", centroids, centroid_header),
    ]
    return write_guider_file(
        path,
        sci,
        err,
        dq,
        header,
        tables,
        extra_hdus=extra_hdus,
        overwrite=overwrite,
        engine=engine,
    )


_MODE_INFO: dict[str, dict[str, Any]] = {
    "fg": {
        "EXP_TYPE": "FGS_FINEGUIDE",
        "READPATT": "FINEGUIDE",
        "SUBARRAY": "8X8",
        "PCS_MODE": "FINEGUIDE",
        "NGROUPS": 8,
        "NFRAMES": 4,
        "size": (8, 8),
    },
    "track": {
        "EXP_TYPE": "FGS_TRACK",
        "READPATT": "TRACK",
        "SUBARRAY": "32X32",
        "PCS_MODE": "TRACK",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (32, 32),
    },
    "acq1": {
        "EXP_TYPE": "FGS_ACQ1",
        "READPATT": "ACQ1",
        "SUBARRAY": "128X128",
        "PCS_MODE": "COARSE",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (128, 128),
    },
    "acq2": {
        "EXP_TYPE": "FGS_ACQ2",
        "READPATT": "ACQ2",
        "SUBARRAY": "32X32",
        "PCS_MODE": "COARSE",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (32, 32),
    },
    "id": {
        "EXP_TYPE": "FGS_ID-IMAGE",
        "READPATT": "ID",
        "SUBARRAY": "2048X64",
        "PCS_MODE": "COARSE",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (2048, 2024),
    },
}


def guider_file_name(
    program: int,
    observation: int,
    visit: int,
    mode: Literal["fg", "track", "acq1", "acq2", "id"],
    *,
    end_mjd: float | None = None,
    segment: int | None = None,
    attempt: int = 1,
    kind: Literal["image", "stacked"] = "image",
    suffix: Literal["cal", "uncal"] = "cal",
) -> str:
    """File name by the guider grammar (§1.2 of fgs-data-format.md).

    ``jw<ppppp><ooo><vvv>_gs-<mode>_<yyyydddhhmmss>[-seg<NNN>]_<suffix>.fits``; ID products
    ``jw<ppppp><ooo><vvv>_gs-id_<attempt>_<kind>_<suffix>.fits``. ``end_mjd`` is the stamp time
    (end of the data; for segments the end of the whole guide period).
    """
    head = f"jw{program:05d}{observation:03d}{visit:03d}_gs-{mode}"
    if mode == "id":
        return f"{head}_{attempt}_{kind}_{suffix}.fits"
    if end_mjd is None:
        raise ValueError("end_mjd is required for time-stamped guider products")
    seg = f"-seg{segment:03d}" if segment is not None else ""
    return f"{head}_{file_stamp(end_mjd)}{seg}_{suffix}.fits"


def make_guider_header(
    *,
    file_name: str,
    program: int,
    observation: int,
    visit: int,
    mode: Literal["fg", "track", "acq1", "acq2", "id"],
    data_start_mjd: float,
    data_end_mjd: float,
    nints: int,
    star: GuideStar,
    cadence_s: float | None = None,
    gs_order: int = 1,
    visit_start_mjd: float | None = None,
    visit_end_mjd: float | None = None,
    gs_start_mjd: float | None = None,
    gs_end_mjd: float | None = None,
    activity: int = 1,
    segment: tuple[int, int, int, int] | None = None,
    hga: tuple[float, float] | None = None,
    gsc_version: str = "GSC30",
) -> dict[str, Any]:
    """PRIMARY keywords of a guider cal product (values valid for the stdatamodels schema).

    ``segment`` = (EXSEGNUM, EXSEGTOT, INTSTART, INTEND) for segmented products; ``hga`` =
    (start, stop) MJD of an HGA move overlapping the data (sets HGA_MOVE/HGA_STRT/HGA_STOP).
    Times in MJD UTC. Returns an ordered ``dict`` for :func:`write_guider_file`.
    """
    info = _MODE_INFO[mode]
    ny, nx = info["size"]
    guider = 1 if star.detector == "GUIDER1" else 2
    aper = f"FGS{guider}_FULL"
    dur_s = (data_end_mjd - data_start_mjd) * _SECONDS_PER_DAY
    cad = cadence_s if cadence_s is not None else dur_s / max(nints, 1)
    ngroups = info["NGROUPS"]
    tgroup = cad / ngroups
    vstart = visit_start_mjd if visit_start_mjd is not None else data_start_mjd
    vend = visit_end_mjd if visit_end_mjd is not None else data_end_mjd
    date_beg = mjd_to_iso(data_start_mjd)
    visit_id = f"{program:05d}{observation:03d}{visit:03d}"
    h: dict[str, Any] = {
        "DATE": datetime(2024, 1, 1).isoformat(timespec="milliseconds"),
        "ORIGIN": "STSCI",
        "TIMESYS": "UTC",
        "FILENAME": file_name,
        "FILETYPE": "calibrated",
        "DATAMODL": "GuiderCalModel",
        "TELESCOP": "JWST",
        "CAL_VER": "fgsarchive-sim",
        "DATE-OBS": date_beg[:10],
        "TIME-OBS": date_beg[11:],
        "DATE-BEG": date_beg,
        "DATE-END": mjd_to_iso(data_end_mjd),
        "OBS_ID": f"V{visit_id}P{0:08d}{2:02d}1{activity:02d}",
        "VISIT_ID": visit_id,
        "PROGRAM": f"{program:05d}",
        "OBSERVTN": f"{observation:03d}",
        "VISIT": f"{visit:03d}",
        "VISITGRP": "02",
        "SEQ_ID": "1",
        "ACT_ID": f"{activity:02d}",
        "EXPOSURE": "1",
        "VISITYPE": "PRIME_TARGETED_FIXED",
        "VSTSTART": _utc_str(vstart),
        "VISITSTA": "SUCCESSFUL",
        "TSOVISIT": False,
        "ENG_QUAL": "OK",
        "INSTRUME": "FGS",
        "DETECTOR": star.detector,
        "APERNAME": aper,
        "PPS_APER": aper,
        "EXP_TYPE": info["EXP_TYPE"],
        "DATAPROB": False,
        "READPATT": info["READPATT"],
        "NINTS": int(nints),
        "NGROUPS": ngroups,
        "NFRAMES": info["NFRAMES"],
        "GROUPGAP": 0,
        "TFRAME": tgroup,
        "TGROUP": tgroup,
        "EFFINTTM": cad,
        "DURATION": dur_s,
    }
    if segment is not None:
        h["EXSEGNUM"], h["EXSEGTOT"], h["INTSTART"], h["INTEND"] = (int(v) for v in segment)
    h.update(
        {
            "SUBARRAY": info["SUBARRAY"],
            "SUBSTRT1": 1 if mode == "id" else 1017 - nx // 2,
            "SUBSTRT2": 1 if mode == "id" else 1017 - ny // 2,
            "SUBSIZE1": nx,
            "SUBSIZE2": ny,
            "GS_ORDER": int(gs_order),
            "GSSTRTTM": _utc_str(gs_start_mjd if gs_start_mjd is not None else vstart),
            "GSENDTIM": _utc_str(gs_end_mjd if gs_end_mjd is not None else vend),
            "GF_START": _utc_str(data_start_mjd),
            "GF_END": _utc_str(data_end_mjd),
            "GDSTARID": star.gs_id,
            "GS_RA": star.ra,
            "GS_DEC": star.dec,
            "GS_URA": 0.0001,
            "GS_UDEC": 0.0001,
            "GS_MAG": star.fgs_mag,
            "GS_UMAG": 0.05,
            "GS_MURA": 1.25,
            "GS_MUDEC": 0.43,
            "GS_PARA": 0.08,
            "GS_EPOCH": "2016-01-01 00:00:00",
            "GS_V3_PA": 123.4,
            "GSIDL_X": 0.0 if guider == 1 else -0.5,
            "GSIDL_Y": 0.0 if guider == 1 else 0.5,
            "PCS_MODE": info["PCS_MODE"],
            "FGS_APER": aper,
            "DATASTRT": float(data_start_mjd),
            "DATAEND": float(data_end_mjd),
            "GSACSTAT": "SUCCESSFUL",
            "VISITEND": _utc_str(vend),
            "GSC_VER": gsc_version,
            "HGA_MOVE": hga is not None,
        }
    )
    if hga is not None:
        h["HGA_STRT"] = _utc_str(hga[0])
        h["HGA_STOP"] = _utc_str(hga[1])
    return h


def _pointing_header(star: GuideStar, start_mjd: float, jitter_mas: np.ndarray) -> dict:
    aper = "FGS1_FULL" if star.detector == "GUIDER1" else "FGS2_FULL"
    j = jitter_mas[np.isfinite(jitter_mas)] if jitter_mas.size else np.zeros(1)
    return {
        "DDCFLDPT": aper,
        "POINTTIM": _utc_str(start_mjd),
        "RA_DDC": star.ra + 0.001,
        "DEC_DDC": star.dec - 0.001,
        "PA_APER": 123.4,
        "RA_V1": star.ra + 0.05,
        "DEC_V1": star.dec - 0.05,
        "PA_V3": 123.0,
        "RA_J1": star.ra + 0.06,
        "DEC_J1": star.dec - 0.04,
        "PA_J3": 122.9,
        "JITTRAVG": float(np.mean(j)) if j.size else 0.0,
        "JITTRMAX": float(np.max(j)) if j.size else 0.0,
        "JITTRMIN": float(np.min(j)) if j.size else 0.0,
    }


# ----------------------------------------------------------------------------------------
# planning: program -> observations -> visits -> guide periods -> segments
# ----------------------------------------------------------------------------------------


@dataclass
class _Segment:
    number: int  # 1-based, 0 = unsegmented
    i0: int
    i1: int
    data_start: float
    data_end: float
    file_name: str = ""


@dataclass
class _GuidePeriod:
    index: int
    n_frames: int
    start: float
    end: float
    segments: list[_Segment] = field(default_factory=list)


@dataclass
class _VisitPlan:
    observation: int
    visit: int
    star: GuideStar
    gp_frames: list[int]
    gs_order: int = 1
    start: float = 0.0
    end: float = 0.0
    id_span: tuple[float, float] = (0.0, 0.0)
    acq1_span: tuple[float, float] = (0.0, 0.0)
    acq2_span: tuple[float, float] = (0.0, 0.0)
    track_span: tuple[float, float] = (0.0, 0.0)
    gps: list[_GuidePeriod] = field(default_factory=list)

    @property
    def fg_start(self) -> float:
        return self.gps[0].start


_ACQ_CADENCE_S = 0.3355
_TRACK_NINTS = 100


def _plan_times(
    visits: list[_VisitPlan],
    *,
    start_mjd: float,
    cadence_s: float,
    segment_frames: int | None,
    guide_gap_s: float,
    visit_gap_s: float,
    rng: np.random.Generator,
) -> float:
    """Lay visits out in time; fills spans, guide periods and segments. Returns end MJD."""
    day = _SECONDS_PER_DAY
    t = start_mjd
    for v in visits:
        t += rng.uniform(0.0, 1.0) / day
        v.start = t
        v.id_span = (t + 10.0 / day, t + 14.5 / day)
        a1 = t + (40.0 + rng.uniform(0, 1)) / day
        v.acq1_span = (a1, a1 + 6 * _ACQ_CADENCE_S / day)
        a2 = t + (52.0 + rng.uniform(0, 1)) / day
        v.acq2_span = (a2, a2 + 5 * _ACQ_CADENCE_S / day)
        tr = _safe_end_start(t + (60.0 + rng.uniform(0, 1)) / day, _TRACK_NINTS * cadence_s)
        v.track_span = (tr, tr + _TRACK_NINTS * cadence_s / day)
        for span in ("acq1_span", "acq2_span"):
            s0, s1 = getattr(v, span)
            dur = s1 - s0
            s0 = _safe_end_start(s0, dur * day)
            setattr(v, span, (s0, s0 + dur))
        gstart = v.track_span[1] + (1.0 + rng.uniform(0, 1)) / day
        v.gps = []
        for k, n in enumerate(v.gp_frames):
            if k:
                gstart += guide_gap_s * rng.uniform(0.5, 1.5) / day
            gstart = _safe_end_start(gstart, n * cadence_s)
            gend = gstart + n * cadence_s / day
            gp = _GuidePeriod(index=k, n_frames=n, start=gstart, end=gend)
            if segment_frames is not None and n > segment_frames:
                bounds = list(range(0, n, segment_frames)) + [n]
                for s, (i0, i1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                    gp.segments.append(
                        _Segment(
                            number=s + 1,
                            i0=i0,
                            i1=i1,
                            data_start=gstart + i0 * cadence_s / day,
                            data_end=gstart + i1 * cadence_s / day,
                        )
                    )
            else:
                gp.segments.append(_Segment(0, 0, n, gstart, gend))
            v.gps.append(gp)
            gstart = gend
        v.end = gstart + 5.0 / day
        t = v.end + visit_gap_s * rng.uniform(0.5, 1.5) / day
    return t


# ----------------------------------------------------------------------------------------
# per-guide-period physics (vectors over frames)
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JitterLine:
    axis: Literal["x", "y"]
    period_s: float
    amplitude: float  # px
    phase: float


def _program_jitter_lines(rng: np.random.Generator, scale: float) -> list[_JitterLine]:
    lines = []
    for _ in range(3):  # a few Hz-scale lines (reaction wheels, cryocooler-like)
        f = rng.uniform(0.2, 3.0)
        for axis in ("x", "y"):
            lines.append(
                _JitterLine(
                    axis, 1.0 / f, scale * rng.uniform(0.004, 0.012), rng.uniform(0, 2 * np.pi)
                )
            )
    p = rng.uniform(180.0, 420.0)  # ~minutes-scale oscillation (thermal / control loop)
    for axis in ("x", "y"):
        lines.append(
            _JitterLine(axis, p, scale * rng.uniform(0.01, 0.03), rng.uniform(0, 2 * np.pi))
        )
    return lines


def _ar1(rng: np.random.Generator, n: int, dt_s: float, tau_s: float, rms: float) -> np.ndarray:
    """Mean-reverting random walk (AR(1) / Ornstein-Uhlenbeck) with stationary RMS ``rms``."""
    if n == 0 or rms == 0:
        return np.zeros(n)
    phi = math.exp(-dt_s / tau_s)
    e = rng.standard_normal(n) * (rms * math.sqrt(1.0 - phi * phi))
    e[0] = rng.standard_normal() * rms
    return lfilter([1.0], [1.0, -phi], e)


def _in(t: np.ndarray, s: float, e: float) -> np.ndarray:
    return (t >= s) & (t < e)


def _variability(t: np.ndarray, vs: VariableStar, t0_default: float) -> np.ndarray:
    t0 = vs.t0_mjd if vs.t0_mjd is not None else t0_default
    ts = (t - t0) * _SECONDS_PER_DAY
    if vs.kind == "sinusoid":
        return 1.0 + vs.amplitude * np.sin(2 * np.pi * ts / vs.period_s)
    # eclipse: trapezoid of total width duration_s with 10 % ingress/egress
    ph = (ts + 0.5 * vs.period_s) % vs.period_s - 0.5 * vs.period_s
    half = 0.5 * vs.duration_s
    ramp = max(0.1 * vs.duration_s, 1e-9)
    shape = np.clip((half - np.abs(ph)) / ramp, 0.0, 1.0)
    return 1.0 - vs.amplitude * shape


@dataclass
class _ProgramCtx:
    program: int
    seed: int
    start_mjd: float
    end_mjd: float
    cadence_s: float
    injections: list[Injection]
    lines: list[_JitterLine]
    jitter_rms_px: float
    jitter_tau_s: float
    white_jitter_px: float
    noise: _Noise
    cr_rate: float
    nan_rate: float
    nan_frame_rate: float
    pointing_time: Literal["mjd", "ms"]
    hga_motion: Literal["codes", "words"]
    pointing_cadence_s: float
    centroid_cadence_s: float | None
    segment_nints: Literal["total", "segment"]
    correlated: tuple[CorrelatedNoise, ...] = ()


def _visit_injections(ctx: _ProgramCtx, v: _VisitPlan) -> list[Injection]:
    out = []
    for inj in ctx.injections:
        obs, vis = inj.observation, inj.visit
        if (obs is None or obs == v.observation) and (vis is None or vis == v.visit):
            out.append(inj)
    return out


def _abs_interval(inj: Injection, v: _VisitPlan) -> tuple[float, float]:
    """Absolute (start, end) MJD of a discrete injection in visit ``v``."""
    day = _SECONDS_PER_DAY
    if isinstance(inj, FluxDrop | HgaMove | FilterWheelMove):
        s = v.fg_start + inj.start_s / day
        return s, s + inj.duration_s / day
    if isinstance(inj, CentroidJump | PsfWidthChange):
        s = v.fg_start + inj.time_s / day
        e = v.end if inj.duration_s is None else s + inj.duration_s / day
        return s, e
    return v.fg_start, v.gps[-1].end


def _frame_params(
    ctx: _ProgramCtx,
    v: _VisitPlan,
    t: np.ndarray,
    rng: np.random.Generator,
    base: dict[str, float],
    injections: list[Injection],
    corr: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame truth vectors for frames at times ``t`` (MJD) of one guide period.

    ``corr``: correlated noise per quantity (x, y [px]; flux, width relative), if any."""
    n = t.size
    dt_s = ctx.cadence_s
    jit_x = _ar1(rng, n, dt_s, ctx.jitter_tau_s, ctx.jitter_rms_px)
    jit_y = _ar1(rng, n, dt_s, ctx.jitter_tau_s, ctx.jitter_rms_px)
    if ctx.white_jitter_px > 0:
        jit_x += rng.standard_normal(n) * ctx.white_jitter_px
        jit_y += rng.standard_normal(n) * ctx.white_jitter_px
    ts = (t - ctx.start_mjd) * _SECONDS_PER_DAY
    for ln in ctx.lines:
        s = ln.amplitude * np.sin(2 * np.pi * ts / ln.period_s + ln.phase)
        if ln.axis == "x":
            jit_x += s
        else:
            jit_y += s
    flux = np.ones(n)
    dx = np.zeros(n)
    dy = np.zeros(n)
    fx = np.ones(n)
    fy = np.ones(n)
    moving = np.zeros(n, dtype=bool)
    for inj in injections:
        if isinstance(inj, PeriodicSignal):
            s = inj.amplitude * np.sin(2 * np.pi * ts / inj.period_s + inj.phase)
            if inj.quantity == "flux":
                flux *= 1.0 + s
            elif inj.quantity == "x":
                dx += s
            else:
                dy += s
            continue
        s0, s1 = _abs_interval(inj, v)
        m = _in(t, s0, s1)
        if not m.any():
            continue
        if isinstance(inj, FluxDrop):
            flux[m] *= 1.0 - inj.depth
        elif isinstance(inj, CentroidJump):
            dx[m] += inj.dx
            dy[m] += inj.dy
        elif isinstance(inj, PsfWidthChange):
            fx[m] *= 1.0 + inj.frac_x
            fy[m] *= 1.0 + inj.frac_y
        elif isinstance(inj, HgaMove | FilterWheelMove):
            if isinstance(inj, HgaMove):
                moving |= m
            if inj.jitter_px > 0:
                k = int(m.sum())
                jit_x[m] += _ar1(rng, k, dt_s, 0.5, inj.jitter_px)
                jit_y[m] += _ar1(rng, k, dt_s, 0.5, inj.jitter_px)
    if v.star.variability is not None:
        flux *= _variability(t, v.star.variability, ctx.start_mjd)
    if corr:
        if "x" in corr:
            jit_x += corr["x"]
        if "y" in corr:
            jit_y += corr["y"]
        if "flux" in corr:
            flux *= np.maximum(1.0 + corr["flux"], 0.01)
        if "width" in corr:  # both widths; the amplitude below keeps the flux
            w = np.maximum(1.0 + corr["width"], 0.1)
            fx *= w
            fy *= w
    sx = base["x_stddev"] * fx
    sy = base["y_stddev"] * fy
    amp = base["amplitude"] * flux * (base["x_stddev"] * base["y_stddev"]) / (sx * sy)
    th = np.full(n, base["theta"])
    # canonical form: x_stddev >= y_stddev, theta in [0, pi)
    swap = sx < sy
    if swap.any():
        sx, sy = np.where(swap, sy, sx), np.where(swap, sx, sy)
        th = np.where(swap, th + np.pi / 2, th)
    th = np.mod(th, np.pi)
    return {
        "amplitude": amp,
        "x_mean": base["x_mean"] + jit_x + dx,
        "y_mean": base["y_mean"] + jit_y + dy,
        "x_stddev": sx,
        "y_stddev": sy,
        "theta": th,
        "offset": np.full(n, base["offset"]),
        "flux_scale": flux,
        "jit_x": jit_x,
        "jit_y": jit_y,
        "hga_moving": moving,
    }


def _base_params(rng: np.random.Generator, star: GuideStar, center: float) -> dict[str, float]:
    """A visit's PSF: the star's flux (from GS_MAG, +-3 %) is kept whatever the drawn widths."""
    sy = rng.uniform(0.54, 0.60)
    p = {
        "amplitude": float(amplitude_from_mag(star.fgs_mag) * rng.uniform(0.97, 1.03)),
        "x_mean": center + rng.uniform(-0.3, 0.3),
        "y_mean": center + rng.uniform(-0.3, 0.3),
        "x_stddev": sy * rng.uniform(1.04, 1.15),
        "y_stddev": sy,
        "theta": rng.uniform(0.03, 0.3),
        "offset": rng.uniform(2800.0, 3200.0),
    }
    # the peak follows the widths so that the total flux 2 pi A sx sy does not (same draws)
    p["amplitude"] *= REFERENCE_PSF_AREA / (p["x_stddev"] * p["y_stddev"])
    return p


# ----------------------------------------------------------------------------------------
# correlated noise and short guide periods (issue 13: noise the statistics must survive)
# ----------------------------------------------------------------------------------------

NoiseQuantity = Literal["x", "y", "flux", "width"]
NoiseKind = Literal["white", "ar1", "random_walk", "power_law"]
_NOISE_QUANTITIES = ("x", "y", "flux", "width")
_NOISE_KINDS = ("white", "ar1", "random_walk", "power_law")


@dataclass(frozen=True)
class CorrelatedNoise:
    """One noise process added to a per-frame quantity, drawn afresh for every guide period.

    ``quantity``: ``'x'``/``'y'`` (centroid, additive [px]), ``'flux'`` (relative, total flux
    x (1 + n)) or ``'width'`` (relative, both PSF widths x (1 + n); the flux is kept, so the
    peak amplitude falls as the PSF widens). ``kind``:

    * ``'white'``: independent per frame, RMS ``rms``;
    * ``'ar1'``: Ornstein-Uhlenbeck with correlation time ``tau_s`` [s] (lag-1 autocorrelation
      ``exp(-cadence / tau_s)``) and stationary RMS ``rms``;
    * ``'random_walk'``: starts at 0 at each guide period (re-acquisition) and drifts; ``rms``
      is the RMS of its change over ``tau_s`` seconds (variance grows linearly with lag);
    * ``'power_law'``: spectrum ``~ f^-alpha`` from 1 / (guide period) to Nyquist, RMS ``rms``
      over a guide period.

    Give the size either as ``rms`` (px for x/y, a fraction for flux/width) or as ``share``:
    the process's fraction of the quantity's per-frame variance, relative to the photon
    (white) noise of a frame of that visit's star, ``rms^2 = share / (1 - share) sigma_white^2``
    (for a random walk, of the variance of its change over ``tau_s``). ``sigma_white`` is the
    Cramer-Rao bound of the Gaussian fit at the visit's PSF (flux: of the summed star counts);
    both are written to ``truth/noise.parquet``.
    """

    quantity: NoiseQuantity
    kind: NoiseKind
    share: float | None = None
    rms: float | None = None
    tau_s: float = 20.0
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.quantity not in _NOISE_QUANTITIES:
            raise ValueError(f"CorrelatedNoise.quantity must be one of {_NOISE_QUANTITIES}")
        if self.kind not in _NOISE_KINDS:
            raise ValueError(f"CorrelatedNoise.kind must be one of {_NOISE_KINDS}")
        if (self.share is None) == (self.rms is None):
            raise ValueError("CorrelatedNoise needs exactly one of share= or rms=")
        if self.share is not None and not 0.0 <= self.share < 1.0:
            raise ValueError(f"CorrelatedNoise.share must be in [0, 1), not {self.share}")
        if self.rms is not None and self.rms < 0:
            raise ValueError(f"CorrelatedNoise.rms must be >= 0, not {self.rms}")
        if self.tau_s <= 0:
            raise ValueError(f"CorrelatedNoise.tau_s must be > 0 s, not {self.tau_s}")


def _on(quantities: Sequence[str], kind: NoiseKind, share: float, **kw: float) -> list:
    return [CorrelatedNoise(q, kind, share=share, **kw) for q in quantities]  # type: ignore[arg-type]


_ALL_Q = ("x", "y", "flux", "width")

#: Named noise programs for ``simulate_program(correlated_noise=...)``. ``'white'`` adds
#: nothing (today's simulator: photon noise plus the pointing model); the others add
#: correlated noise at seconds-to-minutes scales to centroids, widths and flux.
NOISE_PRESETS: dict[str, tuple[CorrelatedNoise, ...]] = {
    "white": (),
    # AR(1) at tau 20 s holding 10 % of each quantity's per-frame variance
    "ar1": tuple(_on(_ALL_Q, "ar1", 0.10, tau_s=20.0)),
    # slow AR(1) at 1 % (the audit's 'mildly red')
    "ar1_weak": tuple(_on(_ALL_Q, "ar1", 0.01, tau_s=60.0)),
    # random walk whose change over 60 s has 10 % of the per-frame variance
    "random_walk": tuple(_on(_ALL_Q, "random_walk", 0.10, tau_s=60.0)),
    "power_law": tuple(_on(_ALL_Q, "power_law", 0.10, alpha=1.5)),
    # a mixture at several time scales (the bench's held-out kind: nothing was tuned to it)
    "realistic": tuple(
        _on(("flux",), "ar1", 0.03, tau_s=4.0)
        + _on(("flux", "width"), "power_law", 0.05, alpha=1.2)
        + _on(("width",), "random_walk", 0.04, tau_s=120.0)
        + _on(("x", "y"), "ar1", 0.05, tau_s=90.0)
        + _on(("x", "y", "flux"), "random_walk", 0.02, tau_s=300.0)
    ),
}


def resolve_noise(
    correlated_noise: str | Sequence[CorrelatedNoise] | None,
) -> tuple[CorrelatedNoise, ...]:
    """A preset name (``NOISE_PRESETS``), a list of components, or None -> the components."""
    if correlated_noise is None:
        return ()
    if isinstance(correlated_noise, str):
        if correlated_noise not in NOISE_PRESETS:
            raise ValueError(
                f"unknown noise preset {correlated_noise!r}; presets: {', '.join(NOISE_PRESETS)}"
            )
        return NOISE_PRESETS[correlated_noise]
    out = tuple(correlated_noise)
    for c in out:
        if not isinstance(c, CorrelatedNoise):
            raise TypeError(f"correlated_noise items must be CorrelatedNoise, not {type(c)}")
    return out


def white_noise_sigmas(base: Mapping[str, float], noise: _Noise) -> dict[str, float]:
    """Per-frame photon-noise sigma of x, y [px], width and flux (relative) for PSF ``base``.

    x/y/width: Cramer-Rao bound of the 7-parameter Gaussian fit with the simulator's pixel
    variance (``model / (gain t) + (read noise / (gain t))^2``); width is relative
    ``x_stddev``. flux: sqrt(summed pixel variance) / star flux (aperture sum, known sky).
    """
    names = ("amplitude", "x_mean", "y_mean", "x_stddev", "y_stddev", "theta", "offset")
    p0 = np.array([float(base[k]) for k in names])
    steps = np.array([1e-4 * p0[0], 1e-4, 1e-4, 1e-5, 1e-5, 1e-5, 1e-4 * max(p0[6], 1.0)])
    cols = np.repeat(p0[None, :], 1 + 2 * len(names), axis=0)
    for j, h in enumerate(steps):
        cols[1 + 2 * j, j] += h
        cols[2 + 2 * j, j] -= h
    m = gaussian_frames(*cols.T).reshape(cols.shape[0], -1)
    gt = noise.gt
    var = m[0] / gt + (noise.read_noise_e / gt) ** 2
    jac = np.stack([(m[1 + 2 * j] - m[2 + 2 * j]) / (2 * h) for j, h in enumerate(steps)], 1)
    cov = np.linalg.inv(jac.T @ (jac / var[:, None]))
    star = 2 * np.pi * p0[0] * p0[3] * p0[4]
    return {
        "x": float(math.sqrt(cov[1, 1])),
        "y": float(math.sqrt(cov[2, 2])),
        "width": float(math.sqrt(cov[3, 3]) / p0[3]),
        "flux": float(math.sqrt(var.sum()) / star),
    }


def _component_rms(c: CorrelatedNoise, sigma_white: float) -> float:
    if c.rms is not None:
        return float(c.rms)
    s = float(c.share)  # type: ignore[arg-type]
    return sigma_white * math.sqrt(s / (1.0 - s))


def _power_law(rng: np.random.Generator, n: int, alpha: float, rms: float) -> np.ndarray:
    """Gaussian noise with spectrum ~ f^-alpha (no DC) and expected RMS ``rms``."""
    if n < 2 or rms == 0:
        return np.zeros(n)
    f = np.fft.rfftfreq(n)
    h = np.zeros(f.size)
    h[1:] = f[1:] ** (-alpha / 2.0)
    w = np.fft.rfft(rng.standard_normal(n))
    x = np.fft.irfft(w * h, n)
    # expected variance of x: (1/n) * two-sided sum of h^2 (Parseval with E|w_k|^2 = n)
    h2 = h * h
    two_sided = 2.0 * h2[1:].sum() - (h2[-1] if n % 2 == 0 else 0.0)
    return x * (rms / math.sqrt(two_sided / n))


def noise_series(
    c: CorrelatedNoise, n: int, cadence_s: float, rms: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` frames at ``cadence_s`` [s] of component ``c`` with resolved size ``rms``."""
    if n == 0 or rms == 0:
        return np.zeros(n)
    if c.kind == "white":
        return rng.standard_normal(n) * rms
    if c.kind == "ar1":
        return _ar1(rng, n, cadence_s, c.tau_s, rms)
    if c.kind == "random_walk":
        steps = rng.standard_normal(n) * (rms * math.sqrt(cadence_s / c.tau_s))
        steps[0] = 0.0
        return np.cumsum(steps)
    return _power_law(rng, n, c.alpha, rms)


def _correlated_series(
    components: Sequence[CorrelatedNoise],
    rms: Sequence[float],
    n: int,
    cadence_s: float,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The summed correlated noise per quantity for one guide period (quantities present)."""
    out: dict[str, np.ndarray] = {}
    for c, r in zip(components, rms, strict=True):
        s = noise_series(c, n, cadence_s, r, rng)
        out[c.quantity] = out[c.quantity] + s if c.quantity in out else s
    return out


def _noise_rows(
    program: int,
    v: _VisitPlan,
    components: Sequence[CorrelatedNoise],
    rms: Sequence[float],
    sigmas: Mapping[str, float],
    preset: str | None,
) -> list[dict[str, Any]]:
    return [
        {
            "program": program,
            "observation": v.observation,
            "visit": v.visit,
            "gs_id": v.star.gs_id,
            "preset": preset,
            "component": i,
            "quantity": c.quantity,
            "kind": c.kind,
            "share": c.share,
            "rms": r,
            "tau_s": c.tau_s,
            "alpha": c.alpha,
            "white_sigma": sigmas[c.quantity],
        }
        for i, (c, r) in enumerate(zip(components, rms, strict=True))
    ]


_NOISE_SCHEMA = {
    "program": pl.Int64,
    "observation": pl.Int64,
    "visit": pl.Int64,
    "gs_id": pl.Utf8,
    "preset": pl.Utf8,
    "component": pl.Int64,
    "quantity": pl.Utf8,
    "kind": pl.Utf8,
    "share": pl.Float64,
    "rms": pl.Float64,
    "tau_s": pl.Float64,
    "alpha": pl.Float64,
    "white_sigma": pl.Float64,
}


def _short_guide_periods(rng: np.random.Generator, total: int, lo: int, hi: int) -> list[int]:
    """Split ``total`` frames into guide periods of log-uniform length in [lo, hi] frames."""
    if not 1 <= lo <= hi:
        raise ValueError(f"guide_period_frames must be 1 <= lo <= hi, not ({lo}, {hi})")
    out: list[int] = []
    left = total
    while left > 0:
        n = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        n = min(n, left)
        if 0 < left - n < lo:  # do not leave a stub shorter than lo
            n = left if left <= hi else left - lo
        out.append(n)
        left -= n
    return out


# ----------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------


def _row_index(n: int, cadence_s: float, row_cadence_s: float | None) -> np.ndarray:
    if row_cadence_s is None or row_cadence_s <= cadence_s:
        return np.arange(n)
    step = row_cadence_s / cadence_s
    idx = np.floor(np.arange(0, n / step) * step + 1e-9).astype(np.int64)
    return idx[idx < n]


def _pointing_table(
    ctx: _ProgramCtx,
    par: dict[str, np.ndarray],
    t: np.ndarray,
    data_start: float,
    rng: np.random.Generator,
) -> np.ndarray:
    idx = _row_index(t.size, ctx.cadence_s, ctx.pointing_cadence_s)
    n = idx.size
    tab = np.zeros(n, dtype=pointing_dtype())
    # row time = start of the sampled frame
    half = 0.5 * (t[1] - t[0]) if t.size > 1 else 0.5 * ctx.cadence_s / _SECONDS_PER_DAY
    tr = t[idx] - half
    tab["time"] = tr if ctx.pointing_time == "mjd" else (tr - data_start) * _SECONDS_PER_DAY * 1e3
    mas = PIXEL_SCALE_ARCSEC * 1e3
    ra = par["jit_x"][idx] * mas
    dec = par["jit_y"][idx] * mas
    tab["delta_ddc_ra"] = ra
    tab["delta_ddc_dec"] = dec
    tab["jitter"] = np.hypot(ra, dec)
    tab["delta_aperture_pa"] = rng.normal(0.0, 0.05, n)
    for k, col in enumerate(("v1", "j1")):
        tab[f"delta_{col}_ra"] = ra * (1.0 + 0.01 * k) + rng.normal(0, 0.02, n)
        tab[f"delta_{col}_dec"] = dec * (1.0 + 0.01 * k) + rng.normal(0, 0.02, n)
    tab["delta_v3_pa"] = rng.normal(0.0, 0.05, n)
    tab["delta_j3_pa"] = rng.normal(0.0, 0.05, n)
    moving = par["hga_moving"][idx]
    yes, no = (b"0", b"1") if ctx.hga_motion == "codes" else (b"MOVING", b"FINISHED")
    tab["HGA_motion"] = np.where(moving, yes, no)
    return tab


def _centroid_table(
    ctx: _ProgramCtx,
    par: dict[str, np.ndarray],
    t: np.ndarray,
    cr_pixel: np.ndarray,
    gsidl: tuple[float, float],
    center: float,
    rng: np.random.Generator,
) -> np.ndarray:
    idx = _row_index(t.size, ctx.cadence_s, ctx.centroid_cadence_s)
    n = idx.size
    tab = np.zeros(n, dtype=centroid_dtype())
    tab["observatory_time"] = _mjd_to_bytes(t[idx])
    tab["centroid_time"] = _mjd_to_bytes(t[idx] - 0.016 / _SECONDS_PER_DAY)
    nea = 0.003  # px, centroid measurement noise
    tab["guide_star_position_x"] = (
        gsidl[0] + (par["x_mean"][idx] - center + rng.normal(0, nea, n)) * PIXEL_SCALE_ARCSEC
    )
    tab["guide_star_position_y"] = (
        gsidl[1] + (par["y_mean"][idx] - center + rng.normal(0, nea, n)) * PIXEL_SCALE_ARCSEC
    )
    flux = 2 * np.pi * par["amplitude"][idx] * par["x_stddev"][idx] * par["y_stddev"][idx]
    gt = ctx.noise.gt
    noise = np.sqrt(flux / gt + 64 * (par["offset"][idx] / gt + (ctx.noise.read_noise_e / gt) ** 2))
    tab["guide_star_instrument_counts_per_sec"] = flux
    tab["signal_to_noise_current_frame"] = flux / noise
    tab["delta_signal"] = rng.normal(0.0, 1.0, n) * noise
    tab["delta_noise"] = rng.normal(0.0, 0.05, n) * noise
    fwhm_mas = 2.3548 * PIXEL_SCALE_ARCSEC * 1e3
    tab["psf_width_x"] = np.round(par["x_stddev"][idx] * fwhm_mas).astype(np.int32)
    tab["psf_width_y"] = np.round(par["y_stddev"][idx] * fwhm_mas).astype(np.int32)
    tab["bad_pixel_flag"] = b"NO"
    tab["bad_centroid_dq_flag"] = b"GOOD"
    tab["cosmic_ray_hit_flag"] = np.where(cr_pixel[idx] >= 0, b"YES", b"NO")
    tab["sw_subwindow_loc_change_flag"] = b"NO"
    tab["guide_star_at_detector_subwindow_boundary_flag"] = b"NO"
    tab["subwindow_out_of_FOV_flag"] = b"NO"
    return tab


# ----------------------------------------------------------------------------------------
# results and truth
# ----------------------------------------------------------------------------------------


@dataclass
class SimulatedProgram:
    """What :func:`simulate_program` wrote (all tables are polars frames of the truth)."""

    program: int
    out_dir: Path
    files: list[Path]
    fg_files: list[Path]
    truth_dir: Path
    stars: pl.DataFrame
    events: pl.DataFrame
    telemetry: pl.DataFrame
    file_table: pl.DataFrame
    n_frames: int
    start_mjd: float
    end_mjd: float


@dataclass
class SimulatedArchive:
    """What :func:`simulate_archive` wrote."""

    out_dir: Path
    programs: list[SimulatedProgram]
    truth_dir: Path

    @property
    def files(self) -> list[Path]:
        return [f for p in self.programs for f in p.files]

    @property
    def fg_files(self) -> list[Path]:
        return [f for p in self.programs for f in p.fg_files]

    @property
    def n_frames(self) -> int:
        return sum(p.n_frames for p in self.programs)


@dataclass
class TruthTables:
    """Program-level truth tables read back by :func:`read_truth`."""

    truth_dir: Path
    files: pl.DataFrame
    events: pl.DataFrame
    stars: pl.DataFrame
    telemetry: pl.DataFrame
    jitter_lines: pl.DataFrame
    #: correlated-noise components per visit (empty without ``correlated_noise``)
    noise: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_NOISE_SCHEMA))

    def frames(self, file_name: str | None = None) -> pl.DataFrame:
        """Per-frame truth of one file (by name) or of all fg files (with ``file_name``)."""
        return read_frame_truth(self.truth_dir, file_name)


_EVENT_SCHEMA = {
    "event_id": pl.Int64,
    "kind": pl.Utf8,
    "program": pl.Int64,
    "observation": pl.Int64,
    "visit": pl.Int64,
    "file_name": pl.Utf8,
    "gs_id": pl.Utf8,
    "start_mjd": pl.Float64,
    "end_mjd": pl.Float64,
    "depth": pl.Float64,
    "dx": pl.Float64,
    "dy": pl.Float64,
    "frac_x": pl.Float64,
    "frac_y": pl.Float64,
    "period_s": pl.Float64,
    "amplitude": pl.Float64,
    "quantity": pl.Utf8,
    "phase": pl.Float64,
    "jitter_px": pl.Float64,
    "current": pl.Float64,
    "t0_mjd": pl.Float64,
    "duration_s": pl.Float64,
}

_STAR_SCHEMA = {
    "gs_id": pl.Utf8,
    "ra": pl.Float64,
    "dec": pl.Float64,
    "fgs_mag": pl.Float64,
    "gaia_id": pl.Int64,
    "j_mag": pl.Float64,
    "h_mag": pl.Float64,
    "k_mag": pl.Float64,
    "detector": pl.Utf8,
    "amplitude": pl.Float64,
    "variable": pl.Boolean,
    "var_kind": pl.Utf8,
    "var_period_s": pl.Float64,
    "var_amplitude": pl.Float64,
    "var_t0_mjd": pl.Float64,
    "var_duration_s": pl.Float64,
}

_TELEMETRY_SCHEMA = {
    "mnemonic": pl.Utf8,
    "kind": pl.Utf8,
    "program": pl.Int64,
    "observation": pl.Int64,
    "visit": pl.Int64,
    "start_mjd": pl.Float64,
    "end_mjd": pl.Float64,
    "value": pl.Float64,
}

_FILE_SCHEMA = {
    "file_name": pl.Utf8,
    "path": pl.Utf8,
    "program": pl.Int64,
    "observation": pl.Int64,
    "visit": pl.Int64,
    "mode": pl.Utf8,
    "exp_type": pl.Utf8,
    "detector": pl.Utf8,
    "gs_id": pl.Utf8,
    "data_start_mjd": pl.Float64,
    "data_end_mjd": pl.Float64,
    "n_frames": pl.Int64,
    "nints": pl.Int64,
    "cadence_s": pl.Float64,
    "guide_period": pl.Int64,
    "segment": pl.Int64,
    "segment_total": pl.Int64,
    "int_start": pl.Int64,
    "int_end": pl.Int64,
    "stamp": pl.Utf8,
}

_LINE_SCHEMA = {
    "program": pl.Int64,
    "axis": pl.Utf8,
    "period_s": pl.Float64,
    "frequency_hz": pl.Float64,
    "amplitude_px": pl.Float64,
    "phase": pl.Float64,
}


def _star_row(s: GuideStar) -> dict[str, Any]:
    vs = s.variability
    return {
        "gs_id": s.gs_id,
        "ra": s.ra,
        "dec": s.dec,
        "fgs_mag": s.fgs_mag,
        "gaia_id": s.gaia_id,
        "j_mag": s.j_mag,
        "h_mag": s.h_mag,
        "k_mag": s.k_mag,
        "detector": s.detector,
        "amplitude": float(amplitude_from_mag(s.fgs_mag)),
        "variable": vs is not None,
        "var_kind": vs.kind if vs else None,
        "var_period_s": vs.period_s if vs else None,
        "var_amplitude": vs.amplitude if vs else None,
        "var_t0_mjd": vs.t0_mjd if vs else None,
        "var_duration_s": vs.duration_s if vs else None,
    }


def _frame(rows: list[dict[str, Any]], schema: Mapping[str, Any]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=dict(schema))
    return pl.DataFrame(rows, schema=dict(schema))


def _aggregate_truth(truth_dir: Path) -> None:
    """(Re)build the top-level truth tables from all ``truth/programs/<ppppp>/`` parts."""
    for name, schema in (
        ("events", _EVENT_SCHEMA),
        ("files", _FILE_SCHEMA),
        ("stars", _STAR_SCHEMA),
        ("telemetry", _TELEMETRY_SCHEMA),
        ("jitter_lines", _LINE_SCHEMA),
        ("noise", _NOISE_SCHEMA),
    ):
        parts = sorted((truth_dir / "programs").glob(f"*/{name}.parquet"))
        frames = [pl.read_parquet(p) for p in parts]
        df = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=dict(schema))
        if name == "stars" and df.height:
            df = df.unique(subset=["gs_id"], keep="first", maintain_order=True)
        df.write_parquet(truth_dir / f"{name}.parquet")
        if name == "events":
            (truth_dir / "events.json").write_text(json.dumps(df.to_dicts(), indent=1))


def read_truth(truth_dir: str | os.PathLike[str]) -> TruthTables:
    """Read the program-level truth tables written beside the simulated files.

    ``files`` (one row per written product), ``events`` (injected events with absolute
    ``start_mjd``/``end_mjd``, one row per event and fg file it touches), ``stars``,
    ``telemetry`` (HGA / filter-wheel intervals), ``jitter_lines`` and ``noise`` (the
    correlated-noise components of each visit with their resolved RMS).
    """
    d = Path(truth_dir)
    return TruthTables(
        truth_dir=d,
        files=pl.read_parquet(d / "files.parquet"),
        events=pl.read_parquet(d / "events.parquet"),
        stars=pl.read_parquet(d / "stars.parquet"),
        telemetry=pl.read_parquet(d / "telemetry.parquet"),
        jitter_lines=pl.read_parquet(d / "jitter_lines.parquet"),
        noise=pl.read_parquet(d / "noise.parquet")
        if (d / "noise.parquet").exists()
        else pl.DataFrame(schema=_NOISE_SCHEMA),
    )


def read_frame_truth(
    truth_dir: str | os.PathLike[str], file_name: str | None = None
) -> pl.DataFrame:
    """Per-frame truth of one fg file (``file_name`` with or without ``.fits``), or of all.

    Columns: ``frame, time_mjd, amplitude, x_mean, y_mean, x_stddev, y_stddev, theta, offset,
    flux_scale, integration, cr_pixel, n_nan`` (+ ``program``, ``file_name`` when reading all).
    """
    d = Path(truth_dir) / "frames"
    if file_name is not None:
        stem = file_name[:-5] if file_name.endswith(".fits") else file_name
        return pl.read_parquet(d / f"{stem}.parquet")
    parts = sorted(d.glob("*.parquet"))
    if not parts:
        return pl.DataFrame()
    return pl.concat(
        [
            pl.read_parquet(p).with_columns(
                pl.lit(p.stem + ".fits").alias("file_name"),
                pl.lit(int(p.stem[2:7])).cast(pl.Int64).alias("program"),
            )
            for p in parts
        ]
    )


# ----------------------------------------------------------------------------------------
# EDB-style telemetry
# ----------------------------------------------------------------------------------------


def _hash_noise(k: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-noise in [-1, 1) from integer sample indices."""
    x = np.sin(k.astype(np.float64) * 12.9898 + 78.233) * 43758.5453
    return 2.0 * (x - np.floor(x)) - 1.0


def edb_timeseries(
    telemetry: pl.DataFrame | str | os.PathLike[str],
    mnemonic: str,
    start_mjd: float,
    end_mjd: float,
    *,
    cadence_s: float = 1.0,
    include_bracket: bool = True,
) -> pl.DataFrame:
    """EDB-style rows ``theTime, MJD, euvalue, sqldataType`` for a mnemonic and time range.

    ``telemetry`` is the telemetry truth (a frame, a truth dir, or its ``telemetry.parquet``).
    ``SA_ZHGAUPST``: change-only text points (``MOVING`` at each HGA move start,
    ``FINISHED`` at its end, plus a ``FINISHED`` baseline point before the first move).
    ``INIS_FWMTRCURR``: real current [A] sampled every ``cadence_s`` seconds on a grid of
    whole multiples of ``cadence_s`` since MJD 0: ~0 (|noise| <= 2 mA, deterministic) and the
    move's ``current`` while a filter-wheel move is on. Like MAST, one bracketing point
    before and after the range is included when ``include_bracket``. ``euvalue`` is text
    (as in the CSV); ``theTime`` is ``'YYYY-MM-DD hh:mm:ss.ffffff'`` UTC.
    """
    if not isinstance(telemetry, pl.DataFrame):
        p = Path(telemetry)
        telemetry = pl.read_parquet(p / "telemetry.parquet" if p.is_dir() else p)
    mn = mnemonic.strip().upper()
    tel = telemetry.filter(pl.col("mnemonic") == mn).sort("start_mjd")
    if mn == "SA_ZHGAUPST":
        starts = tel["start_mjd"].to_numpy()
        ends = tel["end_mjd"].to_numpy()
        base = (starts.min() if starts.size else start_mjd) - 0.5
        times = np.concatenate([[base], starts, ends])
        vals = np.array(["FINISHED"] + ["MOVING"] * starts.size + ["FINISHED"] * ends.size)
        order = np.argsort(times, kind="stable")
        times, vals = times[order], vals[order]
        inside = (times >= start_mjd) & (times <= end_mjd)
        keep = inside.copy()
        if include_bracket:
            before = np.nonzero(times < start_mjd)[0]
            after = np.nonzero(times > end_mjd)[0]
            if before.size:
                keep[before[-1]] = True
            if after.size:
                keep[after[0]] = True
        times, vals = times[keep], vals[keep]
        sqltype = "varchar"
        euvalue = vals.astype(str)
        the_time = mjd_to_iso(times, sep=" ", unit="us") if times.size else np.array([], str)
    elif mn == "INIS_FWMTRCURR":
        step = cadence_s / _SECONDS_PER_DAY
        step_us = int(round(cadence_s * 1e6))
        k0 = math.ceil(start_mjd / step - 1e-9) - (1 if include_bracket else 0)
        k1 = math.floor(end_mjd / step + 1e-9) + (1 if include_bracket else 0)
        k = np.arange(k0, k1 + 1, dtype=np.int64)
        times = k * step
        the_time = np.char.replace(
            np.datetime_as_string(
                _MJD_ZERO_NP + (k * step_us).astype("timedelta64[us]"), unit="us"
            ),
            "T",
            " ",
        )
        cur = 0.002 * _hash_noise(k)
        for s, e, c in zip(
            tel["start_mjd"].to_numpy(),
            tel["end_mjd"].to_numpy(),
            tel["value"].to_numpy(),
            strict=True,
        ):
            m = (times >= s) & (times < e)
            cur[m] += c * (1.0 + 0.05 * _hash_noise(k[m] + 7))
        sqltype = "real"
        euvalue = np.char.mod("%.10f", cur)
    else:
        raise ValueError(f"no simulated telemetry for mnemonic {mnemonic!r}")
    return pl.DataFrame(
        {
            "theTime": the_time,
            "MJD": times.astype(np.float64),
            "euvalue": euvalue,
            "sqldataType": np.full(times.size, sqltype),
        },
        schema={"theTime": pl.Utf8, "MJD": pl.Float64, "euvalue": pl.Utf8, "sqldataType": pl.Utf8},
    )


def edb_csv(rows: pl.DataFrame) -> str:
    """MAST EDB CSV text (header ``theTime,MJD,euvalue,sqldataType``, CRLF line ends)."""
    lines = ["theTime,MJD,euvalue,sqldataType"]
    for r in rows.iter_rows():
        lines.append(f"{r[0]},{r[1]:.10f},{r[2]},{r[3]}")
    return "\r\n".join(lines) + "\r\n"


# ----------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------


def _seed_seq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key))


def _random_injections(
    rng: np.random.Generator, v: _VisitPlan, cadence_s: float, rate_per_hour: float
) -> list[Injection]:
    if rate_per_hour <= 0:
        return []
    dur_s = sum(n for n in v.gp_frames) * cadence_s
    k = int(rng.poisson(rate_per_hour * dur_s / 3600.0))
    out: list[Injection] = []
    span = (v.gps[-1].end - v.fg_start) * _SECONDS_PER_DAY
    for _ in range(k):
        t = float(rng.uniform(0.0, max(span - 10.0, 1.0)))
        kind = rng.integers(0, 5)
        o, vi = v.observation, v.visit
        if kind == 0:
            out.append(FluxDrop(t, float(rng.uniform(5, 60)), float(rng.uniform(0.02, 0.2)), o, vi))
        elif kind == 1:
            out.append(
                CentroidJump(t, float(rng.normal(0, 0.1)), float(rng.normal(0, 0.1)), None, o, vi)
            )
        elif kind == 2:
            out.append(PsfWidthChange(t, float(rng.uniform(0.02, 0.1)), 0.0, None, o, vi))
        elif kind == 3:
            out.append(HgaMove(t, float(rng.uniform(60, 240)), o, vi))
        else:
            out.append(FilterWheelMove(t, float(rng.uniform(3, 10)), o, vi))
    return out


def _event_rows(
    ctx: _ProgramCtx,
    visits: list[_VisitPlan],
    injections_by_visit: Mapping[tuple[int, int], list[Injection]],
    file_spans: Mapping[tuple[int, int], list[tuple[str, float, float]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Event truth rows (one per event and fg file it touches) and telemetry rows."""
    rows: list[dict[str, Any]] = []
    tel: list[dict[str, Any]] = []
    ids: dict[int, int] = {}
    for v in visits:
        key = (v.observation, v.visit)
        injs: list[Any] = list(injections_by_visit.get(key, []))
        if v.star.variability is not None:
            injs.append(v.star.variability)
        for inj in injs:
            eid = ids.setdefault(id(inj), len(ids))
            if isinstance(inj, PeriodicSignal | VariableStar):
                s0, s1 = v.fg_start, v.gps[-1].end
            else:
                s0, s1 = _abs_interval(inj, v)
            base = {k: None for k in _EVENT_SCHEMA}
            base.update(
                event_id=eid,
                kind=_KIND[type(inj)],
                program=ctx.program,
                observation=v.observation,
                visit=v.visit,
                gs_id=v.star.gs_id,
            )
            if isinstance(inj, FluxDrop):
                base.update(depth=inj.depth, duration_s=inj.duration_s)
            elif isinstance(inj, CentroidJump):
                base.update(dx=inj.dx, dy=inj.dy, duration_s=inj.duration_s)
            elif isinstance(inj, PsfWidthChange):
                base.update(frac_x=inj.frac_x, frac_y=inj.frac_y, duration_s=inj.duration_s)
            elif isinstance(inj, PeriodicSignal):
                base.update(
                    period_s=inj.period_s,
                    amplitude=inj.amplitude,
                    quantity=inj.quantity,
                    phase=inj.phase,
                    t0_mjd=ctx.start_mjd,
                )
            elif isinstance(inj, VariableStar):
                base.update(
                    period_s=inj.period_s,
                    amplitude=inj.amplitude,
                    quantity=inj.kind,
                    t0_mjd=inj.t0_mjd if inj.t0_mjd is not None else ctx.start_mjd,
                    duration_s=inj.duration_s,
                )
            elif isinstance(inj, HgaMove):
                base.update(jitter_px=inj.jitter_px, duration_s=inj.duration_s)
            elif isinstance(inj, FilterWheelMove):
                base.update(jitter_px=inj.jitter_px, current=inj.current, duration_s=inj.duration_s)
            if isinstance(inj, HgaMove | FilterWheelMove):
                tel.append(
                    {
                        "mnemonic": "SA_ZHGAUPST" if isinstance(inj, HgaMove) else "INIS_FWMTRCURR",
                        "kind": _KIND[type(inj)],
                        "program": ctx.program,
                        "observation": v.observation,
                        "visit": v.visit,
                        "start_mjd": s0,
                        "end_mjd": s1,
                        "value": inj.current if isinstance(inj, FilterWheelMove) else 1.0,
                    }
                )
            touched = False
            for fname, ds, de in file_spans.get(key, []):
                if s0 < de and s1 > ds:
                    if isinstance(inj, PeriodicSignal | VariableStar):
                        rows.append(dict(base, file_name=fname, start_mjd=ds, end_mjd=de))
                    else:
                        rows.append(dict(base, file_name=fname, start_mjd=s0, end_mjd=s1))
                    touched = True
            if not touched:
                rows.append(dict(base, file_name=None, start_mjd=s0, end_mjd=s1))
    return rows, tel


def _write_other_products(
    ctx: _ProgramCtx,
    v: _VisitPlan,
    out: Path,
    include_id: bool,
    seed: int,
    vidx: int,
    visit_kw: dict[str, Any],
) -> list[tuple[Path, dict[str, Any]]]:
    """gs-acq1, gs-acq2, gs-track (and gs-id) of one visit. Returns (path, file row)."""
    rng = np.random.default_rng(_seed_seq(seed, ctx.program, vidx, 9))
    star = v.star
    amp0 = float(amplitude_from_mag(star.fgs_mag))
    written = []
    noise = ctx.noise
    specs: list[tuple[str, tuple[float, float], int]] = [
        ("acq1", v.acq1_span, 6),
        ("acq2", v.acq2_span, 5),
        ("track", v.track_span, _TRACK_NINTS),
    ]
    if include_id:
        specs.insert(0, ("id", v.id_span, 1))
    for mode, (ds, de), nints in specs:
        ny, nx = _MODE_INFO[mode]["size"]
        name = guider_file_name(ctx.program, v.observation, v.visit, mode, end_mjd=de)
        cad = (de - ds) * _SECONDS_PER_DAY / nints
        hdr = make_guider_header(
            file_name=name,
            program=ctx.program,
            observation=v.observation,
            visit=v.visit,
            mode=mode,
            data_start_mjd=ds,
            data_end_mjd=de,
            nints=nints,
            star=star,
            cadence_s=cad,
            **visit_kw,
        )
        cx = (nx - 1) / 2 + rng.uniform(-3, 3) * (nx > 8)
        cy = (ny - 1) / 2 + rng.uniform(-3, 3) * (ny > 8)
        sx, sy, th, off = 0.66, 0.6, 0.15, 3000.0 * rng.uniform(0.95, 1.05)
        tables: list[tuple[str, np.ndarray, dict | None]] = []
        if mode == "id":
            # large image: background + noise, stars added in cut-outs
            sci = off + rng.standard_normal((1, ny, nx), dtype=np.float32) * np.float32(
                math.sqrt(off / noise.gt + (noise.read_noise_e / noise.gt) ** 2)
            )
            nref = 5
            xs = np.concatenate([[cx], rng.uniform(20, nx - 20, nref)])
            ys = np.concatenate([[cy], rng.uniform(20, ny - 20, nref)])
            amps = np.concatenate([[amp0], amp0 * rng.uniform(0.1, 1.0, nref)])
            for x0, y0, a in zip(xs, ys, amps, strict=True):
                ix, iy = int(round(x0)) - 6, int(round(y0)) - 6
                stamp = gaussian_frames(a, x0 - ix, y0 - iy, sx, sy, th, 0.0, shape=(13, 13))
                sci[0, iy : iy + 13, ix : ix + 13] += stamp[0].astype(np.float32)
            err = np.sqrt(np.clip(sci, 0, None) / noise.gt).astype(np.float32)
            planned = np.zeros(nref + 1, dtype=_planned_star_dtype())
            planned["guide_star_order"] = 1
            planned["reference_order"] = np.arange(nref + 1)
            planned["reference_star_id"] = [star.gs_id.encode()] + [
                f"{star.gs_id[:4]}{int(rng.integers(0, 10**6)):06d}".encode() for _ in range(nref)
            ]
            planned["ra"] = star.ra + (xs - cx) * PIXEL_SCALE_ARCSEC / 3600
            planned["dec"] = star.dec + (ys - cy) * PIXEL_SCALE_ARCSEC / 3600
            planned["id_x"] = (xs - nx / 2) * PIXEL_SCALE_ARCSEC
            planned["id_y"] = (ys - ny / 2) * PIXEL_SCALE_ARCSEC
            planned["fgs_mag"] = star.fgs_mag - 2.5 * np.log10(amps / amp0)
            planned["fgs_mag_uncert"] = 0.05
            planned["count_rate"] = amps * 2 * np.pi * sx * sy
            planned["count_rate_uncert"] = planned["count_rate"] * 0.05
            flight = np.zeros(nref + 1, dtype=_flight_star_dtype())
            flight["reference_star_id"] = [f"{i}".encode() for i in range(nref + 1)]
            flight["id_x"] = planned["id_x"] + rng.normal(0, 0.01, nref + 1)
            flight["id_y"] = planned["id_y"] + rng.normal(0, 0.01, nref + 1)
            flight["count_rate"] = planned["count_rate"] * rng.uniform(0.9, 1.1, nref + 1)
            tables = [
                ("PLANNED REFERENCE STARS", planned, None),
                ("FLIGHT REFERENCE STARS", flight, {"NUMREFST": nref + 1}),
            ]
        else:
            t = _frame_times(ds, de, nints)
            jx = _ar1(rng, nints, cad, 5.0, 0.05 if mode != "track" else 0.02)
            jy = _ar1(rng, nints, cad, 5.0, 0.05 if mode != "track" else 0.02)
            m = gaussian_frames(
                np.full(nints, amp0), cx + jx, cy + jy, sx, sy, th, off, shape=(ny, nx)
            )
            sig = np.sqrt(m / noise.gt + (noise.read_noise_e / noise.gt) ** 2)
            sci = (m + sig * rng.standard_normal(m.shape)).astype(np.float32)
            err = sig.astype(np.float32)
            if mode == "track":
                par = {
                    "amplitude": np.full(nints, amp0),
                    "x_mean": cx + jx,
                    "y_mean": cy + jy,
                    "x_stddev": np.full(nints, sx),
                    "y_stddev": np.full(nints, sy),
                    "offset": np.full(nints, off),
                    "jit_x": jx,
                    "jit_y": jy,
                    "hga_moving": np.zeros(nints, bool),
                }
                tctx = dataclasses.replace(ctx, cadence_s=cad)
                ptab = _pointing_table(tctx, par, t, ds, rng)
                ctab = _centroid_table(
                    tctx, par, t, np.full(nints, -1), (0.0, 0.0), (nx - 1) / 2, rng
                )
                sub_rows = max(1, int(nints * cad))
                sub = np.zeros(sub_rows, dtype=track_subarray_dtype())
                sub["observatory_time"] = _mjd_to_bytes(ds + np.arange(sub_rows) / _SECONDS_PER_DAY)
                sub["x_corner"] = 1017 - nx // 2
                sub["y_corner"] = 1017 - ny // 2
                sub["x_size"] = nx
                sub["y_size"] = ny
                tables = [
                    ("POINTING", ptab, _pointing_header(star, ds, ptab["jitter"])),
                    (
                        "FGS CENTROID PACKET",
                        ctab,
                        {"DETECTID": star.detector, "GUIDESTA": "TRACK"},
                    ),
                    ("TRACK SUBARRAY TABLE", sub, None),
                ]
        dq = np.zeros((ny, nx), dtype=np.uint32)
        path = write_guider_file(out / name, sci, err, dq, hdr, tables)
        written.append(
            (
                path,
                {
                    "file_name": name,
                    "mode": mode,
                    "exp_type": hdr["EXP_TYPE"],
                    "data_start_mjd": ds,
                    "data_end_mjd": de,
                    "n_frames": nints,
                    "nints": nints,
                    "cadence_s": cad,
                    "guide_period": None,
                    "segment": 0,
                    "segment_total": None,
                    "int_start": None,
                    "int_end": None,
                    "stamp": None if mode == "id" else file_stamp(de),
                },
            )
        )
    return written


def _hga_span(injs: Iterable[Injection], v: _VisitPlan, ds: float, de: float) -> tuple | None:
    for inj in injs:
        if isinstance(inj, HgaMove):
            s0, s1 = _abs_interval(inj, v)
            if s0 < de and s1 > ds:
                return (s0, s1)
    return None


def _run_program(
    out_dir: Path,
    files_dir: Path,
    *,
    program: int,
    visits: list[_VisitPlan],
    seed: int,
    start_mjd: float,
    cadence_s: float,
    segment_frames: int | None,
    injections: Sequence[Injection],
    stars: Sequence[GuideStar],
    include_other_products: bool,
    include_id: bool,
    pointing_time: Literal["mjd", "ms"],
    hga_motion: Literal["codes", "words"],
    pointing_cadence_s: float,
    centroid_cadence_s: float | None,
    segment_nints: Literal["total", "segment"],
    noise: _Noise,
    cr_rate: float,
    nan_rate: float,
    nan_frame_rate: float,
    jitter_scale: float,
    guide_gap_s: float,
    visit_gap_s: float,
    random_events_per_hour: float,
    pool: ThreadPoolExecutor,
    correlated_noise: tuple[CorrelatedNoise, ...] = (),
    noise_preset: str | None = None,
) -> SimulatedProgram:
    if cadence_s <= 0:
        raise ValueError("cadence_s must be > 0")
    if segment_frames is not None and segment_frames < 1:
        raise ValueError("segment_frames must be >= 1")
    truth_dir = out_dir / "truth"
    (truth_dir / "frames").mkdir(parents=True, exist_ok=True)
    prog_truth = truth_dir / "programs" / f"{program:05d}"
    prog_truth.mkdir(parents=True, exist_ok=True)
    files_dir.mkdir(parents=True, exist_ok=True)
    rng_plan = np.random.default_rng(_seed_seq(seed, program, 0))
    end = _plan_times(
        visits,
        start_mjd=start_mjd,
        cadence_s=cadence_s,
        segment_frames=segment_frames,
        guide_gap_s=guide_gap_s,
        visit_gap_s=visit_gap_s,
        rng=rng_plan,
    )
    lines = _program_jitter_lines(np.random.default_rng(_seed_seq(seed, program, 1)), jitter_scale)
    ctx = _ProgramCtx(
        program=program,
        seed=seed,
        start_mjd=start_mjd,
        end_mjd=end,
        cadence_s=cadence_s,
        injections=list(injections),
        lines=lines,
        jitter_rms_px=0.01 * jitter_scale,
        jitter_tau_s=20.0,
        white_jitter_px=0.003 * jitter_scale,
        noise=noise,
        cr_rate=cr_rate,
        nan_rate=nan_rate,
        nan_frame_rate=nan_frame_rate,
        pointing_time=pointing_time,
        hga_motion=hga_motion,
        pointing_cadence_s=pointing_cadence_s,
        centroid_cadence_s=centroid_cadence_s,
        segment_nints=segment_nints,
        correlated=correlated_noise,
    )
    rng_events = np.random.default_rng(_seed_seq(seed, program, 2))
    inj_by_visit: dict[tuple[int, int], list[Injection]] = {}
    for v in visits:
        extra = _random_injections(rng_events, v, cadence_s, random_events_per_hour)
        ctx.injections.extend(extra)
    for v in visits:
        inj_by_visit[(v.observation, v.visit)] = _visit_injections(ctx, v)

    files: list[Path] = []
    fg_files: list[Path] = []
    file_rows: list[dict[str, Any]] = []
    file_spans: dict[tuple[int, int], list[tuple[str, float, float]]] = {}
    noise_rows: list[dict[str, Any]] = []
    n_total = 0
    center = 3.5
    for vidx, v in enumerate(visits):
        key = (v.observation, v.visit)
        injs = inj_by_visit[key]
        rng_v = np.random.default_rng(_seed_seq(seed, program, 3, vidx))
        visit_kw = {
            "gs_order": v.gs_order,
            "visit_start_mjd": v.start,
            "visit_end_mjd": v.end,
            "gs_start_mjd": v.start,
            "gs_end_mjd": v.end,
        }
        common_row = {
            "program": program,
            "observation": v.observation,
            "visit": v.visit,
            "detector": v.star.detector,
            "gs_id": v.star.gs_id,
        }
        if include_other_products:
            for path, row in _write_other_products(
                ctx, v, files_dir, include_id, seed, vidx, visit_kw
            ):
                files.append(path)
                file_rows.append(dict(common_row, **row, path=str(path.relative_to(out_dir))))
        base = _base_params(rng_v, v.star, center)
        corr_rms: list[float] = []
        if ctx.correlated:
            sigmas = white_noise_sigmas(base, noise)
            corr_rms = [_component_rms(c, sigmas[c.quantity]) for c in ctx.correlated]
            noise_rows += _noise_rows(program, v, ctx.correlated, corr_rms, sigmas, noise_preset)
        for gp in v.gps:
            rng_gp = np.random.default_rng(_seed_seq(seed, program, 4, vidx, gp.index))
            t_all = np.concatenate(
                [_frame_times(s.data_start, s.data_end, s.i1 - s.i0) for s in gp.segments]
            )
            corr = None
            if ctx.correlated:  # a stream of its own: the other draws stay as they were
                rng_c = np.random.default_rng(_seed_seq(seed, program, 9, vidx, gp.index))
                corr = _correlated_series(ctx.correlated, corr_rms, t_all.size, cadence_s, rng_c)
            par_all = _frame_params(ctx, v, t_all, rng_gp, base, injs, corr)
            nseg = len(gp.segments)
            for seg in gp.segments:
                n = seg.i1 - seg.i0
                sl = slice(seg.i0, seg.i1)
                par = {k: a[sl] for k, a in par_all.items()}
                t = t_all[sl]
                name = guider_file_name(
                    program,
                    v.observation,
                    v.visit,
                    "fg",
                    end_mjd=gp.end,
                    segment=seg.number if seg.number else None,
                )
                seg.file_name = name
                sci = np.empty((n, 8, 8), dtype=">f4")
                err = np.empty((n, 8, 8), dtype=">f4")
                cr_pixel = np.full(n, -1, dtype=np.int16)
                n_nan = np.zeros(n, dtype=np.int16)
                chunks = [(i, min(i + _FINEGUIDE_CHUNK, n)) for i in range(0, n, _FINEGUIDE_CHUNK)]
                futs = [
                    pool.submit(
                        _render_fg_chunk,
                        sci,
                        err,
                        i0,
                        i1,
                        par,
                        noise,
                        _seed_seq(seed, program, 5, vidx, gp.index, seg.number, ci),
                        cr_rate,
                        nan_rate,
                        nan_frame_rate,
                        cr_pixel,
                        n_nan,
                    )
                    for ci, (i0, i1) in enumerate(chunks)
                ]
                for f in futs:
                    f.result()
                rng_tab = np.random.default_rng(
                    _seed_seq(seed, program, 6, vidx, gp.index, seg.number)
                )
                ptab = _pointing_table(ctx, par, t, seg.data_start, rng_tab)
                ctab = _centroid_table(
                    ctx,
                    par,
                    t,
                    cr_pixel,
                    (0.0, 0.0) if v.star.detector == "GUIDER1" else (-0.5, 0.5),
                    center,
                    rng_tab,
                )
                segment_kw = None
                nints = n
                if seg.number:
                    segment_kw = (seg.number, nseg, seg.i0 + 1, seg.i1)
                    if segment_nints == "total":
                        nints = gp.n_frames
                hdr = make_guider_header(
                    file_name=name,
                    program=program,
                    observation=v.observation,
                    visit=v.visit,
                    mode="fg",
                    data_start_mjd=seg.data_start,
                    data_end_mjd=seg.data_end,
                    nints=nints,
                    star=v.star,
                    cadence_s=cadence_s,
                    activity=gp.index + 1,
                    segment=segment_kw,
                    hga=_hga_span(injs, v, seg.data_start, seg.data_end),
                    **visit_kw,
                )
                dq = np.zeros((8, 8), dtype=np.uint32)
                path = write_fg_file(
                    files_dir / name,
                    sci,
                    err,
                    dq,
                    hdr,
                    ptab,
                    ctab,
                    pointing_header=_pointing_header(v.star, seg.data_start, ptab["jitter"]),
                    centroid_header={"DETECTID": v.star.detector, "GUIDESTA": "FINEGUIDE"},
                )
                files.append(path)
                fg_files.append(path)
                n_total += n
                truth = pl.DataFrame(
                    {
                        "frame": np.arange(n, dtype=np.int32),
                        "time_mjd": t,
                        "amplitude": par["amplitude"],
                        "x_mean": par["x_mean"],
                        "y_mean": par["y_mean"],
                        "x_stddev": par["x_stddev"],
                        "y_stddev": par["y_stddev"],
                        "theta": par["theta"],
                        "offset": par["offset"],
                        "flux_scale": par["flux_scale"],
                        "integration": np.arange(seg.i0, seg.i1, dtype=np.int32),
                        "cr_pixel": cr_pixel,
                        "n_nan": n_nan,
                    }
                )
                truth.write_parquet(truth_dir / "frames" / f"{name[:-5]}.parquet")
                file_spans.setdefault(key, []).append((name, seg.data_start, seg.data_end))
                file_rows.append(
                    dict(
                        common_row,
                        file_name=name,
                        path=str(path.relative_to(out_dir)),
                        mode="fg",
                        exp_type="FGS_FINEGUIDE",
                        data_start_mjd=seg.data_start,
                        data_end_mjd=seg.data_end,
                        n_frames=n,
                        nints=nints,
                        cadence_s=cadence_s,
                        guide_period=gp.index,
                        segment=seg.number,
                        segment_total=nseg if seg.number else None,
                        int_start=seg.i0 + 1 if seg.number else None,
                        int_end=seg.i1 if seg.number else None,
                        stamp=file_stamp(gp.end),
                    )
                )

    ev_rows, tel_rows = _event_rows(ctx, visits, inj_by_visit, file_spans)
    events = _frame(ev_rows, _EVENT_SCHEMA)
    telemetry = _frame(tel_rows, _TELEMETRY_SCHEMA)
    used = {}
    for s in list(stars) + [v.star for v in visits]:
        used.setdefault(s.gs_id, s)
    star_df = _frame([_star_row(s) for s in used.values()], _STAR_SCHEMA)
    file_df = _frame(file_rows, _FILE_SCHEMA)
    line_df = _frame(
        [
            {
                "program": program,
                "axis": ln.axis,
                "period_s": ln.period_s,
                "frequency_hz": 1.0 / ln.period_s,
                "amplitude_px": ln.amplitude,
                "phase": ln.phase,
            }
            for ln in lines
        ],
        _LINE_SCHEMA,
    )
    events.write_parquet(prog_truth / "events.parquet")
    (prog_truth / "events.json").write_text(json.dumps(events.to_dicts(), indent=1))
    telemetry.write_parquet(prog_truth / "telemetry.parquet")
    star_df.write_parquet(prog_truth / "stars.parquet")
    file_df.write_parquet(prog_truth / "files.parquet")
    line_df.write_parquet(prog_truth / "jitter_lines.parquet")
    _frame(noise_rows, _NOISE_SCHEMA).write_parquet(prog_truth / "noise.parquet")
    return SimulatedProgram(
        program=program,
        out_dir=out_dir,
        files=files,
        fg_files=fg_files,
        truth_dir=truth_dir,
        stars=star_df,
        events=events,
        telemetry=telemetry,
        file_table=file_df,
        n_frames=n_total,
        start_mjd=start_mjd,
        end_mjd=end,
    )


def _resolve_variable_stars(
    stars: list[GuideStar], variable_stars: Sequence[VariableStar], start_mjd: float
) -> list[GuideStar]:
    out = list(stars)
    for vs in variable_stars:
        if vs.t0_mjd is None:
            vs = dataclasses.replace(vs, t0_mjd=start_mjd)
        if isinstance(vs.star, int):
            i = vs.star
        else:
            matches = [k for k, s in enumerate(out) if s.gs_id == vs.star]
            if not matches:
                raise ValueError(f"variable star {vs.star!r} is not among the guide stars")
            i = matches[0]
        out[i] = dataclasses.replace(out[i], variability=vs)
    return out


def _workers(workers: int | None) -> int:
    return max(1, workers if workers is not None else min(2, os.cpu_count() or 1))


def simulate_program(
    out_dir: str | os.PathLike[str],
    *,
    program: int = 1534,
    n_observations: int = 1,
    n_visits: int = 2,
    files_per_visit: int = 1,
    frames_per_file: int = 10_000,
    segment_frames: int | None = None,
    n_guide_stars: int = 2,
    stars: Sequence[GuideStar] | None = None,
    cadence_s: float = 0.064,
    start_mjd: float = 59918.0,
    seed: int = 0,
    injections: Sequence[Injection] = (),
    variable_stars: Sequence[VariableStar] = (),
    random_events_per_hour: float = 0.0,
    include_other_products: bool = True,
    include_id: bool = False,
    pointing_time: Literal["mjd", "ms"] = "mjd",
    hga_motion: Literal["codes", "words"] = "codes",
    pointing_cadence_s: float = 1.0,
    centroid_cadence_s: float | None = 1.0,
    segment_nints: Literal["total", "segment"] = "total",
    noise: Literal["gaussian", "poisson", "none"] = "gaussian",
    gain: float = 2.0,
    exposure_s: float | None = None,
    read_noise_e: float = 12.0,
    cosmic_ray_rate: float = 5e-4,
    nan_pixel_rate: float = 2e-4,
    nan_frame_rate: float = 0.0,
    jitter_scale: float = 1.0,
    guide_gap_s: float = 30.0,
    visit_gap_s: float = 600.0,
    files_subdir: str | None = None,
    workers: int | None = None,
    correlated_noise: str | Sequence[CorrelatedNoise] | None = None,
    guide_period_frames: tuple[int, int] | None = None,
) -> SimulatedProgram:
    """Simulate the guider products of one program and write them with their truth.

    Layout: ``n_observations`` x ``n_visits`` visits, each with ``files_per_visit`` guide
    periods of ``frames_per_file`` frames at ``cadence_s`` [s] (DATAEND = DATASTRT +
    nints * cadence_s). A guide period longer than ``segment_frames`` is split into
    ``-seg001``, ``-seg002``... files sharing one stamp (end of the guide period); each
    segment has EXSEGNUM/EXSEGTOT/INTSTART/INTEND and its own DATASTRT/DATAEND, and NINTS is
    the guide period's total (``segment_nints='total'``, JWST convention) or the segment's
    (``'segment'``). Visit k (counting across observations) guides on star
    ``k % n_guide_stars`` (``stars`` to give them; else drawn near RA 80.8, Dec -69.5 for
    1534, a random field otherwise). Program starts at ``start_mjd`` (MJD UTC).

    Physics: astropy Gaussian2D + offset sampled at pixel centres (amplitude from GS_MAG,
    sigma ~0.6 px, small theta, offset ~3000 DN/s); noise ``'gaussian'`` = normal
    approximation of Poisson (electrons = DN/s * ``gain`` [e-/DN] * ``exposure_s`` [s],
    default ``cadence_s / 2``) plus read noise ``read_noise_e`` [e-]; ``'poisson'`` draws
    exact Poisson counts (about 2x slower); ``'none'`` writes the noiseless model. Jitter =
    AR(1) random walk (RMS 0.01 px, tau 20 s) + white 0.003 px + three Hz-scale lines and a
    minutes-scale oscillation (all x ``jitter_scale``; see ``truth/jitter_lines.parquet``).
    Cosmic rays (one hot pixel) at ``cosmic_ray_rate`` per frame, NaN pixels at
    ``nan_pixel_rate`` per frame, fully NaN frames at ``nan_frame_rate``.

    ``injections`` (times in seconds after the visit's fine-guide start) and
    ``variable_stars`` are written to the truth; ``random_events_per_hour`` adds random
    flux drops / jumps / width steps / HGA and filter-wheel moves.

    Tables: POINTING every ``pointing_cadence_s`` [s] (``time`` column in MJD or, with
    ``pointing_time='ms'``, milliseconds since DATASTRT; ``HGA_motion`` text ``'0'`` moving /
    ``'1'`` finished, or ``'MOVING'``/``'FINISHED'`` with ``hga_motion='words'``); FGS
    CENTROID PACKET every ``centroid_cadence_s`` [s] (``None`` = every frame).

    ``correlated_noise``: a preset name of ``NOISE_PRESETS`` (``'white'``, ``'ar1'``,
    ``'random_walk'``, ``'power_law'``, ``'realistic'``...) or a list of
    :class:`CorrelatedNoise` (AR(1), random walk, 1/f^alpha in x, y, flux, width), drawn per
    guide period from a seed stream of its own and listed in ``truth/noise.parquet``.
    ``guide_period_frames=(lo, hi)``: instead of ``files_per_visit`` guide periods of
    ``frames_per_file`` frames, split the same number of frames per visit into guide periods of
    log-uniform length in [lo, hi] frames, with ``guide_gap_s`` gaps between them (short,
    gapped guiding as in real visits). Neither changes anything when left at None.

    Files go to ``out_dir`` (or ``out_dir/files_subdir``); truth to ``out_dir/truth``.
    ``workers`` threads render pixel chunks (default min(2, CPUs)).
    """
    if noise not in ("gaussian", "poisson", "none"):
        raise ValueError(f"noise must be 'gaussian', 'poisson' or 'none', not {noise!r}")
    if pointing_time not in ("mjd", "ms"):
        raise ValueError("pointing_time must be 'mjd' or 'ms'")
    if hga_motion not in ("codes", "words"):
        raise ValueError("hga_motion must be 'codes' or 'words'")
    if frames_per_file < 1:
        raise ValueError("frames_per_file must be >= 1")
    components = resolve_noise(correlated_noise)
    preset = correlated_noise if isinstance(correlated_noise, str) else None
    rng_gpf = np.random.default_rng(_seed_seq(seed, program, 10))
    out = Path(out_dir)
    if stars is None:
        center = (80.84, -69.54) if program == 1534 else None
        stars = make_guide_stars(n_guide_stars, seed=_seed_seq(seed, program, 7), center=center)
    star_list = _resolve_variable_stars(list(stars), variable_stars, start_mjd)
    rng = np.random.default_rng(_seed_seq(seed, program, 8))
    visits = []
    k = 0
    for o in range(1, n_observations + 1):
        for vi in range(1, n_visits + 1):
            visits.append(
                _VisitPlan(
                    observation=o,
                    visit=vi,
                    star=star_list[k % len(star_list)],
                    gp_frames=[frames_per_file] * files_per_visit
                    if guide_period_frames is None
                    else _short_guide_periods(
                        rng_gpf, files_per_visit * frames_per_file, *guide_period_frames
                    ),
                    gs_order=1 if rng.random() < 0.9 else 2,
                )
            )
            k += 1
    with ThreadPoolExecutor(_workers(workers)) as pool:
        result = _run_program(
            out,
            out / files_subdir if files_subdir else out,
            program=program,
            visits=visits,
            seed=seed,
            start_mjd=start_mjd,
            cadence_s=cadence_s,
            segment_frames=segment_frames,
            injections=injections,
            stars=star_list,
            include_other_products=include_other_products,
            include_id=include_id,
            pointing_time=pointing_time,
            hga_motion=hga_motion,
            pointing_cadence_s=pointing_cadence_s,
            centroid_cadence_s=centroid_cadence_s,
            segment_nints=segment_nints,
            noise=_Noise(noise, gain, exposure_s if exposure_s else cadence_s / 2, read_noise_e),
            cr_rate=cosmic_ray_rate,
            nan_rate=nan_pixel_rate,
            nan_frame_rate=nan_frame_rate,
            jitter_scale=jitter_scale,
            guide_gap_s=guide_gap_s,
            visit_gap_s=visit_gap_s,
            random_events_per_hour=random_events_per_hour,
            pool=pool,
            correlated_noise=components,
            noise_preset=preset,
        )
    _aggregate_truth(result.truth_dir)
    return result


def simulate_archive(
    out_dir: str | os.PathLike[str],
    *,
    programs: Sequence[int] | int = 8,
    total_frames: int = 200_000,
    seed: int = 0,
    frames_per_file: int = 10_000,
    segment_frames: int | None = None,
    cadence_s: float = 0.064,
    start_mjd: float = 59918.0,
    star_pool_size: int | None = None,
    variable_fraction: float = 0.25,
    random_events_per_hour: float = 1.0,
    include_other_products: bool = False,
    include_id: bool = False,
    noise: Literal["gaussian", "poisson", "none"] = "gaussian",
    pointing_time: Literal["mjd", "ms"] = "mjd",
    hga_motion: Literal["codes", "words"] = "codes",
    workers: int | None = None,
    correlated_noise: str | Sequence[CorrelatedNoise] | None = None,
) -> SimulatedArchive:
    """Simulate many programs of varied size (scale benchmarks), ``total_frames`` in all.

    ``programs``: explicit program ids, or a count (ids 1534 then random 4-digit ones).
    Frames are shared out by log-normal weights; each program's guide periods have at most
    ``frames_per_file`` frames (the last one is shorter), grouped 1-3 per visit and 1-3
    visits per observation. Guide stars come from a shared pool (``star_pool_size``, default
    ``max(3, 2 * n_programs)``) so some stars recur across programs; ``variable_fraction``
    of the pool is variable (sinusoids and eclipses). Programs follow each other in time
    from ``start_mjd`` with gaps of 0.1-2 days. Files go to ``out_dir/<ppppp>/``; truth to
    ``out_dir/truth``. ``correlated_noise`` as in :func:`simulate_program`.
    """
    components = resolve_noise(correlated_noise)
    out = Path(out_dir)
    rng = np.random.default_rng(_seed_seq(seed, 999_999))
    if isinstance(programs, int):
        ids = [1534]
        while len(ids) < programs:
            p = int(rng.integers(1000, 9999))
            if p not in ids:
                ids.append(p)
        prog_ids = ids[:programs]
    else:
        prog_ids = [int(p) for p in programs]
    if not prog_ids:
        raise ValueError("no programs")
    n_p = len(prog_ids)
    if total_frames < n_p:
        raise ValueError("total_frames must be >= number of programs")
    # share out frames
    w = rng.lognormal(0.0, 1.0, n_p)
    floor = max(1, total_frames // (10 * n_p))
    rest = total_frames - floor * n_p
    alloc = np.floor(w / w.sum() * rest).astype(np.int64)
    alloc[np.argmax(w)] += rest - int(alloc.sum())
    alloc += floor
    # star pool
    pool_n = star_pool_size or max(3, 2 * n_p)
    pool_stars = make_guide_stars(pool_n, seed=_seed_seq(seed, 999_998), center=None, radius_deg=20)
    n_var = int(round(variable_fraction * pool_n))
    var_idx = rng.choice(pool_n, size=n_var, replace=False) if n_var else []
    for i in var_idx:
        if rng.random() < 0.6:
            vs = VariableStar(
                star=int(i),
                kind="sinusoid",
                period_s=float(rng.uniform(600, 20000)),
                amplitude=float(rng.uniform(0.002, 0.02)),
                t0_mjd=start_mjd,
            )
        else:
            vs = VariableStar(
                star=int(i),
                kind="eclipse",
                period_s=float(rng.uniform(3600, 86400)),
                amplitude=float(rng.uniform(0.01, 0.1)),
                t0_mjd=start_mjd + float(rng.uniform(0, 1)),
                duration_s=float(rng.uniform(600, 3600)),
            )
        pool_stars[i] = dataclasses.replace(pool_stars[i], variability=vs)
    results = []
    t = start_mjd
    with ThreadPoolExecutor(_workers(workers)) as tpool:
        for pid, nf in zip(prog_ids, alloc.tolist(), strict=True):
            gps = [frames_per_file] * (nf // frames_per_file)
            if nf % frames_per_file:
                gps.append(nf % frames_per_file)
            n_stars = int(min(pool_n, rng.integers(1, 4)))
            pstars = [pool_stars[i] for i in rng.choice(pool_n, size=n_stars, replace=False)]
            visits: list[_VisitPlan] = []
            obs, vis, i, k = 1, 0, 0, 0
            per_obs = int(rng.integers(1, 4))
            while i < len(gps):
                take = int(rng.integers(1, 4))
                vis += 1
                if vis > per_obs:
                    obs, vis, per_obs = obs + 1, 1, int(rng.integers(1, 4))
                visits.append(_VisitPlan(obs, vis, pstars[k % n_stars], gps[i : i + take], 1))
                i += take
                k += 1
            res = _run_program(
                out,
                out / f"{pid:05d}",
                program=pid,
                visits=visits,
                seed=seed,
                start_mjd=t,
                cadence_s=cadence_s,
                segment_frames=segment_frames,
                injections=(),
                stars=pstars,
                include_other_products=include_other_products,
                include_id=include_id,
                pointing_time=pointing_time,
                hga_motion=hga_motion,
                pointing_cadence_s=1.0,
                centroid_cadence_s=1.0,
                segment_nints="total",
                noise=_Noise(noise, 2.0, cadence_s / 2, 12.0),
                cr_rate=5e-4,
                nan_rate=2e-4,
                nan_frame_rate=0.0,
                jitter_scale=float(rng.uniform(0.7, 1.5)),
                guide_gap_s=30.0,
                visit_gap_s=600.0,
                random_events_per_hour=random_events_per_hour,
                pool=tpool,
                correlated_noise=components,
                noise_preset=correlated_noise if isinstance(correlated_noise, str) else None,
            )
            results.append(res)
            t = res.end_mjd + float(rng.uniform(0.1, 2.0))
    truth_dir = out / "truth"
    _aggregate_truth(truth_dir)
    return SimulatedArchive(out_dir=out, programs=results, truth_dir=truth_dir)
