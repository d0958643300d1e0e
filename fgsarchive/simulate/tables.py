"""The binary tables of guider files: dtypes (the stdatamodels schema) and their rows."""

from __future__ import annotations

import numpy as np

from .physics import _ProgramCtx
from .psf import PIXEL_SCALE_ARCSEC
from .times import _SECONDS_PER_DAY, _mjd_to_bytes


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
