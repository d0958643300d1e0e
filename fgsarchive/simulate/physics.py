"""Per-guide-period physics: jitter, injections and variability as vectors over frames."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .injections import (
    REFERENCE_PSF_AREA,
    CentroidJump,
    FilterWheelMove,
    FluxDrop,
    GuideStar,
    HgaMove,
    Injection,
    PeriodicSignal,
    PsfWidthChange,
    VariableStar,
    amplitude_from_mag,
)
from .noise import CorrelatedNoise, _ar1
from .plan import _VisitPlan
from .psf import _Noise
from .times import _SECONDS_PER_DAY


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
