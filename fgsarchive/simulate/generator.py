"""The public entry points: ``simulate_program`` (one program) and ``simulate_archive`` (many)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from .injections import GuideStar, Injection, VariableStar, make_guide_stars
from .noise import CorrelatedNoise, _short_guide_periods, resolve_noise
from .plan import _VisitPlan
from .psf import _Noise
from .runner import _run_program, _seed_seq
from .truth import SimulatedArchive, SimulatedProgram, _aggregate_truth


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
    visits = _program_visits(
        n_observations,
        n_visits,
        star_list,
        files_per_visit,
        frames_per_file,
        guide_period_frames,
        rng_gpf,
        np.random.default_rng(_seed_seq(seed, program, 8)),
    )
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


def _program_visits(
    n_observations: int,
    n_visits: int,
    stars: list[GuideStar],
    files_per_visit: int,
    frames_per_file: int,
    guide_period_frames: tuple[int, int] | None,
    rng_gpf: np.random.Generator,
    rng: np.random.Generator,
) -> list[_VisitPlan]:
    """The visits of ``simulate_program``: visit k guides on star k % len(stars)."""
    visits = []
    k = 0
    for o in range(1, n_observations + 1):
        for vi in range(1, n_visits + 1):
            visits.append(
                _VisitPlan(
                    observation=o,
                    visit=vi,
                    star=stars[k % len(stars)],
                    gp_frames=[frames_per_file] * files_per_visit
                    if guide_period_frames is None
                    else _short_guide_periods(
                        rng_gpf, files_per_visit * frames_per_file, *guide_period_frames
                    ),
                    gs_order=1 if rng.random() < 0.9 else 2,
                )
            )
            k += 1
    return visits


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
    prog_ids = _archive_program_ids(programs, rng)
    n_p = len(prog_ids)
    if total_frames < n_p:
        raise ValueError("total_frames must be >= number of programs")
    alloc = _share_frames(total_frames, n_p, rng)
    pool_n = star_pool_size or max(3, 2 * n_p)
    pool_stars = _star_pool(pool_n, variable_fraction, start_mjd, seed, rng)
    results = []
    t = start_mjd
    with ThreadPoolExecutor(_workers(workers)) as tpool:
        for pid, nf in zip(prog_ids, alloc.tolist(), strict=True):
            gps = [frames_per_file] * (nf // frames_per_file)
            if nf % frames_per_file:
                gps.append(nf % frames_per_file)
            n_stars = int(min(pool_n, rng.integers(1, 4)))
            pstars = [pool_stars[i] for i in rng.choice(pool_n, size=n_stars, replace=False)]
            visits = _archive_visits(gps, pstars, rng)
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


def _archive_program_ids(programs: Sequence[int] | int, rng: np.random.Generator) -> list[int]:
    """Program ids of ``simulate_archive``: as given, or 1534 then random 4-digit ones."""
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
    return prog_ids


def _share_frames(total_frames: int, n_p: int, rng: np.random.Generator) -> np.ndarray:
    """Frames per program: log-normal weights over a floor of a tenth of the fair share."""
    w = rng.lognormal(0.0, 1.0, n_p)
    floor = max(1, total_frames // (10 * n_p))
    rest = total_frames - floor * n_p
    alloc = np.floor(w / w.sum() * rest).astype(np.int64)
    alloc[np.argmax(w)] += rest - int(alloc.sum())
    alloc += floor
    return alloc


def _star_pool(
    pool_n: int, variable_fraction: float, start_mjd: float, seed: int, rng: np.random.Generator
) -> list[GuideStar]:
    """The archive's shared guide stars, ``variable_fraction`` of them variable (sinusoid/eclipse)."""
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
    return pool_stars


def _archive_visits(
    gps: list[int], stars: list[GuideStar], rng: np.random.Generator
) -> list[_VisitPlan]:
    """One archive program's visits: 1-3 guide periods per visit, 1-3 visits per observation."""
    n_stars = len(stars)
    visits: list[_VisitPlan] = []
    obs, vis, i, k = 1, 0, 0, 0
    per_obs = int(rng.integers(1, 4))
    while i < len(gps):
        take = int(rng.integers(1, 4))
        vis += 1
        if vis > per_obs:
            obs, vis, per_obs = obs + 1, 1, int(rng.integers(1, 4))
        visits.append(_VisitPlan(obs, vis, stars[k % n_stars], gps[i : i + take], 1))
        i += take
        k += 1
    return visits
