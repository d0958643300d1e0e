"""A small, complete archive for the people-facing tests (API, plots, report, animation).

Simulates program 1534 (2 observations x 2 visits, 2 guide stars) with an HGA move, a filter-wheel
move, a flux drop and a periodic flux signal, ingests it, fits it when the fitter is installed, and
fills small versions of the later stages' tables (telemetry, events, periodogram_peaks, anomalies,
variability) from the simulator's truth, in the documented columns. ``stages=False`` leaves those
out (to test the "not computed yet" paths).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from fgsarchive.archive import Archive
from fgsarchive.simulate import (
    FilterWheelMove,
    FluxDrop,
    HgaMove,
    PeriodicSignal,
    edb_timeseries,
    simulate_program,
)

PROGRAM = 1534
FRAMES_PER_FILE = 1500  # 96 s per visit at 64 ms


def simulate(out: Path):
    """The people tests' program; also the one conftest's ``analysed_archive`` is built from."""
    return simulate_program(
        out,
        program=PROGRAM,
        n_observations=2,
        n_visits=2,
        frames_per_file=FRAMES_PER_FILE,
        segment_frames=1000,
        n_guide_stars=2,
        seed=11,
        injections=[
            HgaMove(start_s=20, duration_s=15),
            FilterWheelMove(start_s=50, duration_s=6),
            FluxDrop(start_s=70, duration_s=8, depth=0.03),
            PeriodicSignal(period_s=20.0, amplitude=0.004, quantity="flux"),
        ],
    )


_SIMULATED: list[object] = []


def shared_program(tmp_path_factory):
    """``simulate`` once per test session (read-only use: the people archives and
    ``analysed_archive`` ingest from it)."""
    if not _SIMULATED:
        _SIMULATED.append(simulate(tmp_path_factory.mktemp("people_sim") / "products"))
    return _SIMULATED[0]


def build(
    tmp: Path, *, fit: bool = True, stages: bool = True, products: Path | None = None, sim=None
):
    """Simulate (unless ``products`` are given), ingest, fit and fill the stage tables.

    Returns (db path, SimulatedProgram)."""
    if products is None:
        sim = simulate(tmp / "products")
        products = tmp / "products"
    path = tmp / "archive.duckdb"
    arc = Archive(path, writable=True)
    arc.ingest(products, workers=1)
    if fit:
        arc.fit(workers=1)
    if stages:
        fill_stage_tables(arc, sim)
    return path, sim


def fill_stage_tables(arc: Archive, sim) -> None:
    files = arc.fg_files(PROGRAM)
    start, end = float(files["data_start_mjd"].min()), float(files["data_end_mjd"].max())
    # telemetry: EDB-like samples from the simulator's truth
    rows = []
    for mnemonic in ("SA_ZHGAUPST", "INIS_FWMTRCURR"):
        edb = edb_timeseries(sim.telemetry, mnemonic, start, end, cadence_s=2.0)
        for mjd, text in zip(edb["MJD"].to_list(), edb["euvalue"].to_list(), strict=True):
            try:
                value = float(text)
            except ValueError:  # text mnemonics (MOVING / FINISHED) have no numeric value
                value = None
            rows.append((mnemonic, float(mjd), value, str(text)))
    telemetry = pl.DataFrame(
        rows,
        schema={
            "mnemonic": pl.String,
            "time_mjd": pl.Float64,
            "value": pl.Float64,
            "value_text": pl.String,
        },
        orient="row",
    )
    # events: telemetry intervals, file boundaries, guide-star changes
    ev = []
    for r in sim.telemetry.iter_rows(named=True):
        ev.append(
            (
                r["kind"],
                r["start_mjd"],
                r["end_mjd"],
                PROGRAM,
                None,
                json.dumps({"mnemonic": r["mnemonic"]}),
            )
        )
    prev = None
    for f in files.iter_rows(named=True):
        ev.append(
            ("file_boundary", f["data_start_mjd"], f["data_end_mjd"], PROGRAM, f["file_name"], "{}")
        )
        if prev is not None and f["gs_id"] != prev:
            ev.append(
                (
                    "guide_star_change",
                    f["data_start_mjd"],
                    None,
                    PROGRAM,
                    f["file_name"],
                    json.dumps({"gs_id": f["gs_id"]}),
                )
            )
        prev = f["gs_id"]
    events = pl.DataFrame(
        ev,
        schema={
            "kind": pl.String,
            "start_mjd": pl.Float64,
            "end_mjd": pl.Float64,
            "program": pl.Int32,
            "file_name": pl.String,
            "detail": pl.String,
        },
        orient="row",
    )
    # periodogram peaks: the injected 20-s flux signal, plus an "instrumental" line
    peaks = []
    for f in files.iter_rows(named=True):
        peaks.append(
            (PROGRAM, f["file_name"], f["gs_id"], "flux", 0.05, 20.0, 0.4, 1e-12, 1, False)
        )
        peaks.append(
            (PROGRAM, f["file_name"], f["gs_id"], "flux", 1.3, 1 / 1.3, 0.02, 0.5, 2, True)
        )
        peaks.append(
            (PROGRAM, f["file_name"], f["gs_id"], "x_mean", 1.3, 1 / 1.3, 0.05, 1e-4, 1, True)
        )
    periodogram_peaks = pl.DataFrame(
        peaks,
        schema=[
            "program",
            "file_name",
            "gs_id",
            "parameter",
            "frequency_hz",
            "period_s",
            "power",
            "fap",
            "rank",
            "instrumental",
        ],
        orient="row",
    )
    # anomalies: the injected flux drop and HGA move, as the analyses would report them
    an = []
    for e in sim.events.iter_rows(named=True):
        if e["kind"] not in ("flux_drop", "hga_move"):
            continue
        sel = files.filter(
            (pl.col("data_start_mjd") <= e["start_mjd"])
            & (pl.col("data_end_mjd") >= e["start_mjd"])
        )
        if sel.is_empty():
            continue
        f = sel.row(0, named=True)
        kind = "flux_drop" if e["kind"] == "flux_drop" else "jitter_burst"
        an.append(
            (
                PROGRAM,
                f["file_name"],
                f["gs_id"],
                kind,
                e["start_mjd"],
                e["end_mjd"],
                (e["end_mjd"] - e["start_mjd"]) * 86400,
                "flux" if kind == "flux_drop" else "x_mean,y_mean",
                -(e["depth"] or 0.0),
                25.0,
                "hga_move" if kind == "jitter_burst" else "",
            )
        )
    anomalies = pl.DataFrame(
        an,
        schema=[
            "program",
            "file_name",
            "gs_id",
            "kind",
            "start_mjd",
            "end_mjd",
            "duration_s",
            "parameters",
            "amplitude",
            "significance",
            "coincident_events",
        ],
        orient="row",
    )
    anomalies = anomalies.with_columns(  # as the analyses write it: the coincident event kinds
        pl.col("coincident_events")
        .map_elements(lambda k: [k] if k else [], return_dtype=pl.List(pl.String))
        .alias("coincident_kinds")
    )
    stars = files["gs_id"].unique(maintain_order=True).to_list()
    rng = np.random.default_rng(1)
    variability = pl.DataFrame(
        {
            "gs_id": stars,
            "n_frames": [int(files.filter(pl.col("gs_id") == s)["n_frames"].sum()) for s in stars],
            "n_visits": [2] * len(stars),
            "rms_ppm": [2900.0, 410.0][: len(stars)],
            "expected_rms_ppm": [400.0, 395.0][: len(stars)],
            "excess": [7.2, 1.04][: len(stars)],
            "eta": rng.uniform(0.2, 2.0, len(stars)).tolist(),
            "skew": [-0.4, 0.01][: len(stars)],
            "best_period_s": [20.0, None][: len(stars)],
            "best_fap": [1e-12, None][: len(stars)],
            "score": [9.1, 0.3][: len(stars)],
            "rank": list(range(1, len(stars) + 1)),
        }
    )
    with arc.db.writer() as con:
        for name, df in {
            "telemetry": telemetry,
            "events": events,
            "periodogram_peaks": periodogram_peaks,
            "anomalies": anomalies,
            "variability": variability,
        }.items():
            con.register("_df", df.to_arrow())
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM _df LIMIT 0")
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _df")
            con.unregister("_df")


_BUILT: dict[tuple[bool, bool], tuple[Path, object]] = {}


def cached(tmp_path_factory, *, fit: bool = True, stages: bool = True) -> tuple[Path, object]:
    """``build`` once per test session (shared by the people test modules; read-only use)."""
    key = (fit, stages)
    if key not in _BUILT:
        tmp = tmp_path_factory.mktemp(f"people_{int(fit)}{int(stages)}")
        sim = shared_program(tmp_path_factory)
        _BUILT[key] = build(tmp, fit=fit, stages=stages, products=sim.out_dir, sim=sim)
    return _BUILT[key]
