"""Results and truth: what a simulation wrote, the truth tables and how to read them back."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .injections import GuideStar, amplitude_from_mag
from .noise import _NOISE_SCHEMA


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
