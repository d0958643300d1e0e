"""One program, step by step: plan, draw events, render and write each file, write the truth."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from .injections import (
    _KIND,
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
from .noise import (
    _NOISE_SCHEMA,
    CorrelatedNoise,
    _ar1,
    _component_rms,
    _correlated_series,
    _noise_rows,
    white_noise_sigmas,
)
from .physics import (
    _abs_interval,
    _base_params,
    _frame_params,
    _program_jitter_lines,
    _ProgramCtx,
    _visit_injections,
)
from .plan import _TRACK_NINTS, _GuidePeriod, _plan_times, _Segment, _VisitPlan
from .psf import PIXEL_SCALE_ARCSEC, _Noise, _render_fg_chunk, gaussian_frames
from .tables import (
    _centroid_table,
    _flight_star_dtype,
    _planned_star_dtype,
    _pointing_table,
    track_subarray_dtype,
)
from .times import _SECONDS_PER_DAY, _frame_times, _mjd_to_bytes, file_stamp
from .truth import (
    _EVENT_SCHEMA,
    _FILE_SCHEMA,
    _LINE_SCHEMA,
    _STAR_SCHEMA,
    _TELEMETRY_SCHEMA,
    SimulatedProgram,
    _frame,
    _star_row,
)
from .writer import (
    _MODE_INFO,
    _pointing_header,
    guider_file_name,
    make_guider_header,
    write_fg_file,
    write_guider_file,
)

_FINEGUIDE_CHUNK = 4096
#: Pixel centre of the 8x8 fine-guide subarray [px], where the star is placed.
_FG_CENTER = 3.5


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
        psf = (0.66, 0.6, 0.15, 3000.0 * rng.uniform(0.95, 1.05))  # sx, sy, theta, offset
        if mode == "id":
            sci, err, tables = _id_image(rng, star, ctx.noise, (ny, nx), (cx, cy), amp0, psf)
        else:
            t = _frame_times(ds, de, nints)
            sci, err, par = _acq_frames(rng, ctx.noise, mode, t, cad, (ny, nx), (cx, cy), amp0, psf)
            tables = []
            if mode == "track":
                tables = _track_tables(ctx, rng, star, par, t, ds, cad, (ny, nx))
        dq = np.zeros((ny, nx), dtype=np.uint32)
        path = write_guider_file(out / name, sci, err, dq, hdr, tables)
        written.append((path, _other_product_row(name, mode, hdr["EXP_TYPE"], ds, de, nints, cad)))
    return written


def _id_image(
    rng: np.random.Generator,
    star: GuideStar,
    noise: _Noise,
    shape: tuple[int, int],
    centre: tuple[float, float],
    amp0: float,
    psf: tuple[float, float, float, float],
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray, dict | None]]]:
    """ID image: background + noise, the guide star and 5 reference stars in cut-outs; SCI,
    ERR and the PLANNED / FLIGHT REFERENCE STARS tables."""
    ny, nx = shape
    cx, cy = centre
    sx, sy, th, off = psf
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
    return sci, err, tables


def _acq_frames(
    rng: np.random.Generator,
    noise: _Noise,
    mode: str,
    t: np.ndarray,
    cad: float,
    shape: tuple[int, int],
    centre: tuple[float, float],
    amp0: float,
    psf: tuple[float, float, float, float],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """SCI, ERR [DN/s] and per-frame parameters of an acq1, acq2 or track product (AR(1) jitter)."""
    nints = t.size
    cx, cy = centre
    sx, sy, th, off = psf
    jx = _ar1(rng, nints, cad, 5.0, 0.05 if mode != "track" else 0.02)
    jy = _ar1(rng, nints, cad, 5.0, 0.05 if mode != "track" else 0.02)
    m = gaussian_frames(np.full(nints, amp0), cx + jx, cy + jy, sx, sy, th, off, shape=shape)
    sig = np.sqrt(m / noise.gt + (noise.read_noise_e / noise.gt) ** 2)
    sci = (m + sig * rng.standard_normal(m.shape)).astype(np.float32)
    err = sig.astype(np.float32)
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
    return sci, err, par


def _track_tables(
    ctx: _ProgramCtx,
    rng: np.random.Generator,
    star: GuideStar,
    par: dict[str, np.ndarray],
    t: np.ndarray,
    ds: float,
    cad: float,
    shape: tuple[int, int],
) -> list[tuple[str, np.ndarray, dict | None]]:
    """POINTING, FGS CENTROID PACKET and TRACK SUBARRAY TABLE of a track product."""
    ny, nx = shape
    nints = t.size
    tctx = dataclasses.replace(ctx, cadence_s=cad)
    ptab = _pointing_table(tctx, par, t, ds, rng)
    ctab = _centroid_table(tctx, par, t, np.full(nints, -1), (0.0, 0.0), (nx - 1) / 2, rng)
    sub_rows = max(1, int(nints * cad))
    sub = np.zeros(sub_rows, dtype=track_subarray_dtype())
    sub["observatory_time"] = _mjd_to_bytes(ds + np.arange(sub_rows) / _SECONDS_PER_DAY)
    sub["x_corner"] = 1017 - nx // 2
    sub["y_corner"] = 1017 - ny // 2
    sub["x_size"] = nx
    sub["y_size"] = ny
    return [
        ("POINTING", ptab, _pointing_header(star, ds, ptab["jitter"])),
        ("FGS CENTROID PACKET", ctab, {"DETECTID": star.detector, "GUIDESTA": "TRACK"}),
        ("TRACK SUBARRAY TABLE", sub, None),
    ]


def _other_product_row(
    name: str, mode: str, exp_type: str, ds: float, de: float, nints: int, cad: float
) -> dict[str, Any]:
    """The truth-file row of an acq1, acq2, track or id product (no guide period or segment)."""
    return {
        "file_name": name,
        "mode": mode,
        "exp_type": exp_type,
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
    }


def _hga_span(injs: Iterable[Injection], v: _VisitPlan, ds: float, de: float) -> tuple | None:
    for inj in injs:
        if isinstance(inj, HgaMove):
            s0, s1 = _abs_interval(inj, v)
            if s0 < de and s1 > ds:
                return (s0, s1)
    return None


@dataclass
class _Written:
    """What the steps of one program have written so far: files and their truth rows."""

    out_dir: Path
    files_dir: Path
    frames_dir: Path
    files: list[Path] = field(default_factory=list)
    fg_files: list[Path] = field(default_factory=list)
    file_rows: list[dict[str, Any]] = field(default_factory=list)
    file_spans: dict[tuple[int, int], list[tuple[str, float, float]]] = field(default_factory=dict)
    noise_rows: list[dict[str, Any]] = field(default_factory=list)
    n_frames: int = 0


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
    """Simulate one program: plan it, draw its events, write each visit's files, then its truth."""
    if cadence_s <= 0:
        raise ValueError("cadence_s must be > 0")
    if segment_frames is not None and segment_frames < 1:
        raise ValueError("segment_frames must be >= 1")
    written = _make_output_dirs(out_dir, files_dir, program)
    end = _plan_times(
        visits,
        start_mjd=start_mjd,
        cadence_s=cadence_s,
        segment_frames=segment_frames,
        guide_gap_s=guide_gap_s,
        visit_gap_s=visit_gap_s,
        rng=np.random.default_rng(_seed_seq(seed, program, 0)),
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
    inj_by_visit = _injections_by_visit(ctx, visits, random_events_per_hour)
    for vidx, v in enumerate(visits):
        injs = inj_by_visit[(v.observation, v.visit)]
        if include_other_products:
            _write_visit_other_products(ctx, v, vidx, include_id, written)
        base = _base_params(
            np.random.default_rng(_seed_seq(seed, program, 3, vidx)), v.star, _FG_CENTER
        )
        corr_rms = _visit_noise_rms(ctx, v, base, noise_preset, written)
        for gp in v.gps:
            _write_guide_period(ctx, v, vidx, gp, injs, base, corr_rms, pool, written)
    tables = _program_truth(ctx, visits, stars, inj_by_visit, written)
    _write_program_truth(written.out_dir / "truth" / "programs" / f"{program:05d}", tables)
    return SimulatedProgram(
        program=program,
        out_dir=out_dir,
        files=written.files,
        fg_files=written.fg_files,
        truth_dir=out_dir / "truth",
        stars=tables["stars"],
        events=tables["events"],
        telemetry=tables["telemetry"],
        file_table=tables["files"],
        n_frames=written.n_frames,
        start_mjd=start_mjd,
        end_mjd=end,
    )


def _make_output_dirs(out_dir: Path, files_dir: Path, program: int) -> _Written:
    """Create the files and truth folders of one program; an empty record of what it writes."""
    truth_dir = out_dir / "truth"
    (truth_dir / "frames").mkdir(parents=True, exist_ok=True)
    (truth_dir / "programs" / f"{program:05d}").mkdir(parents=True, exist_ok=True)
    files_dir.mkdir(parents=True, exist_ok=True)
    return _Written(out_dir=out_dir, files_dir=files_dir, frames_dir=truth_dir / "frames")


def _injections_by_visit(
    ctx: _ProgramCtx, visits: list[_VisitPlan], random_events_per_hour: float
) -> dict[tuple[int, int], list[Injection]]:
    """Add the random events to ``ctx.injections``, then list each visit's injections."""
    rng_events = np.random.default_rng(_seed_seq(ctx.seed, ctx.program, 2))
    for v in visits:
        extra = _random_injections(rng_events, v, ctx.cadence_s, random_events_per_hour)
        ctx.injections.extend(extra)
    return {(v.observation, v.visit): _visit_injections(ctx, v) for v in visits}


def _visit_keywords(v: _VisitPlan) -> dict[str, Any]:
    """The header keywords shared by every product of visit ``v`` (star order, visit times)."""
    return {
        "gs_order": v.gs_order,
        "visit_start_mjd": v.start,
        "visit_end_mjd": v.end,
        "gs_start_mjd": v.start,
        "gs_end_mjd": v.end,
    }


def _visit_file_row(program: int, v: _VisitPlan) -> dict[str, Any]:
    """The truth-file columns shared by every product of visit ``v``."""
    return {
        "program": program,
        "observation": v.observation,
        "visit": v.visit,
        "detector": v.star.detector,
        "gs_id": v.star.gs_id,
    }


def _write_visit_other_products(
    ctx: _ProgramCtx, v: _VisitPlan, vidx: int, include_id: bool, written: _Written
) -> None:
    """Write visit ``v``'s acq1, acq2, track (and id) products and record them."""
    common_row = _visit_file_row(ctx.program, v)
    for path, row in _write_other_products(
        ctx, v, written.files_dir, include_id, ctx.seed, vidx, _visit_keywords(v)
    ):
        written.files.append(path)
        written.file_rows.append(
            dict(common_row, **row, path=str(path.relative_to(written.out_dir)))
        )


def _visit_noise_rms(
    ctx: _ProgramCtx,
    v: _VisitPlan,
    base: dict[str, float],
    noise_preset: str | None,
    written: _Written,
) -> list[float]:
    """Resolved RMS of each correlated-noise component in visit ``v`` (and their truth rows)."""
    if not ctx.correlated:
        return []
    sigmas = white_noise_sigmas(base, ctx.noise)
    corr_rms = [_component_rms(c, sigmas[c.quantity]) for c in ctx.correlated]
    written.noise_rows += _noise_rows(
        ctx.program, v, ctx.correlated, corr_rms, sigmas, noise_preset
    )
    return corr_rms


def _write_guide_period(
    ctx: _ProgramCtx,
    v: _VisitPlan,
    vidx: int,
    gp: _GuidePeriod,
    injs: list[Injection],
    base: dict[str, float],
    corr_rms: list[float],
    pool: ThreadPoolExecutor,
    written: _Written,
) -> None:
    """Draw one guide period's per-frame parameters, then write each of its segment files."""
    rng_gp = np.random.default_rng(_seed_seq(ctx.seed, ctx.program, 4, vidx, gp.index))
    t_all = np.concatenate(
        [_frame_times(s.data_start, s.data_end, s.i1 - s.i0) for s in gp.segments]
    )
    corr = None
    if ctx.correlated:  # a stream of its own: the other draws stay as they were
        rng_c = np.random.default_rng(_seed_seq(ctx.seed, ctx.program, 9, vidx, gp.index))
        corr = _correlated_series(ctx.correlated, corr_rms, t_all.size, ctx.cadence_s, rng_c)
    par_all = _frame_params(ctx, v, t_all, rng_gp, base, injs, corr)
    for seg in gp.segments:
        sl = slice(seg.i0, seg.i1)
        par = {k: a[sl] for k, a in par_all.items()}
        _write_fg_segment(ctx, v, vidx, gp, seg, par, t_all[sl], injs, pool, written)


def _write_fg_segment(
    ctx: _ProgramCtx,
    v: _VisitPlan,
    vidx: int,
    gp: _GuidePeriod,
    seg: _Segment,
    par: dict[str, np.ndarray],
    t: np.ndarray,
    injs: list[Injection],
    pool: ThreadPoolExecutor,
    written: _Written,
) -> None:
    """Render, write and record one fine-guide file (a guide period or one of its segments)."""
    n = seg.i1 - seg.i0
    name = guider_file_name(
        ctx.program,
        v.observation,
        v.visit,
        "fg",
        end_mjd=gp.end,
        segment=seg.number if seg.number else None,
    )
    seg.file_name = name
    sci, err, cr_pixel, n_nan = _render_fg_frames(ctx, par, (vidx, gp.index, seg.number), pool)
    rng_tab = np.random.default_rng(_seed_seq(ctx.seed, ctx.program, 6, vidx, gp.index, seg.number))
    ptab = _pointing_table(ctx, par, t, seg.data_start, rng_tab)
    gsidl = (0.0, 0.0) if v.star.detector == "GUIDER1" else (-0.5, 0.5)
    ctab = _centroid_table(ctx, par, t, cr_pixel, gsidl, _FG_CENTER, rng_tab)
    hdr = _fg_header(ctx, v, gp, seg, name, injs)
    path = write_fg_file(
        written.files_dir / name,
        sci,
        err,
        np.zeros((8, 8), dtype=np.uint32),
        hdr,
        ptab,
        ctab,
        pointing_header=_pointing_header(v.star, seg.data_start, ptab["jitter"]),
        centroid_header={"DETECTID": v.star.detector, "GUIDESTA": "FINEGUIDE"},
    )
    written.files.append(path)
    written.fg_files.append(path)
    written.n_frames += n
    truth = _frame_truth(par, t, seg, cr_pixel, n_nan)
    truth.write_parquet(written.frames_dir / f"{name[:-5]}.parquet")
    written.file_spans.setdefault((v.observation, v.visit), []).append(
        (name, seg.data_start, seg.data_end)
    )
    written.file_rows.append(
        dict(
            _visit_file_row(ctx.program, v),
            file_name=name,
            path=str(path.relative_to(written.out_dir)),
            mode="fg",
            exp_type="FGS_FINEGUIDE",
            data_start_mjd=seg.data_start,
            data_end_mjd=seg.data_end,
            n_frames=n,
            nints=hdr["NINTS"],
            cadence_s=ctx.cadence_s,
            guide_period=gp.index,
            segment=seg.number,
            segment_total=len(gp.segments) if seg.number else None,
            int_start=seg.i0 + 1 if seg.number else None,
            int_end=seg.i1 if seg.number else None,
            stamp=file_stamp(gp.end),
        )
    )


def _render_fg_frames(
    ctx: _ProgramCtx,
    par: dict[str, np.ndarray],
    key: tuple[int, int, int],
    pool: ThreadPoolExecutor,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SCI, ERR [DN/s], cosmic-ray pixel and NaN count per frame, in chunks on the pool.

    ``key`` = (visit index, guide period, segment number) seeds each chunk's stream."""
    n = par["amplitude"].size
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
            ctx.noise,
            _seed_seq(ctx.seed, ctx.program, 5, *key, ci),
            ctx.cr_rate,
            ctx.nan_rate,
            ctx.nan_frame_rate,
            cr_pixel,
            n_nan,
        )
        for ci, (i0, i1) in enumerate(chunks)
    ]
    for f in futs:
        f.result()
    return sci, err, cr_pixel, n_nan


def _fg_header(
    ctx: _ProgramCtx,
    v: _VisitPlan,
    gp: _GuidePeriod,
    seg: _Segment,
    name: str,
    injs: list[Injection],
) -> dict[str, Any]:
    """PRIMARY keywords of one fine-guide file (segment keywords, NINTS, HGA move)."""
    segment_kw = None
    nints = seg.i1 - seg.i0
    if seg.number:
        segment_kw = (seg.number, len(gp.segments), seg.i0 + 1, seg.i1)
        if ctx.segment_nints == "total":
            nints = gp.n_frames
    return make_guider_header(
        file_name=name,
        program=ctx.program,
        observation=v.observation,
        visit=v.visit,
        mode="fg",
        data_start_mjd=seg.data_start,
        data_end_mjd=seg.data_end,
        nints=nints,
        star=v.star,
        cadence_s=ctx.cadence_s,
        activity=gp.index + 1,
        segment=segment_kw,
        hga=_hga_span(injs, v, seg.data_start, seg.data_end),
        **_visit_keywords(v),
    )


def _frame_truth(
    par: dict[str, np.ndarray],
    t: np.ndarray,
    seg: _Segment,
    cr_pixel: np.ndarray,
    n_nan: np.ndarray,
) -> pl.DataFrame:
    """Per-frame truth of one fine-guide file (the Gaussian parameters, cosmic rays, NaNs)."""
    n = t.size
    return pl.DataFrame(
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


def _program_truth(
    ctx: _ProgramCtx,
    visits: list[_VisitPlan],
    stars: Sequence[GuideStar],
    inj_by_visit: Mapping[tuple[int, int], list[Injection]],
    written: _Written,
) -> dict[str, pl.DataFrame]:
    """The program's truth tables by file stem (events, telemetry, stars, files, lines, noise)."""
    ev_rows, tel_rows = _event_rows(ctx, visits, inj_by_visit, written.file_spans)
    used: dict[str, GuideStar] = {}
    for s in list(stars) + [v.star for v in visits]:
        used.setdefault(s.gs_id, s)
    lines = [
        {
            "program": ctx.program,
            "axis": ln.axis,
            "period_s": ln.period_s,
            "frequency_hz": 1.0 / ln.period_s,
            "amplitude_px": ln.amplitude,
            "phase": ln.phase,
        }
        for ln in ctx.lines
    ]
    return {
        "events": _frame(ev_rows, _EVENT_SCHEMA),
        "telemetry": _frame(tel_rows, _TELEMETRY_SCHEMA),
        "stars": _frame([_star_row(s) for s in used.values()], _STAR_SCHEMA),
        "files": _frame(written.file_rows, _FILE_SCHEMA),
        "jitter_lines": _frame(lines, _LINE_SCHEMA),
        "noise": _frame(written.noise_rows, _NOISE_SCHEMA),
    }


def _write_program_truth(prog_truth: Path, tables: Mapping[str, pl.DataFrame]) -> None:
    """Write the program's truth tables as parquet (and the events also as JSON)."""
    for stem, df in tables.items():
        df.write_parquet(prog_truth / f"{stem}.parquet")
    (prog_truth / "events.json").write_text(json.dumps(tables["events"].to_dicts(), indent=1))
