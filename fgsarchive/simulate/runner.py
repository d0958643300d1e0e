"""One program, step by step: plan, draw events, render and write each file, write the truth."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from .plan import _TRACK_NINTS, _plan_times, _VisitPlan
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
