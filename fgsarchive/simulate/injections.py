"""Injected events (the truth the analyses must find) and guide stars."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


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
