"""The Python API for notebooks: ``Archive(path)`` returns polars DataFrames.

>>> from fgsarchive import Archive
>>> arc = Archive("fgsarchive.duckdb")          # read-only by default
>>> arc.programs()                              # one row per program
>>> lc = arc.timeseries(program=1534, obs=1, visit=1, bin_s=10)   # 10-s binned light curve
>>> arc.sql("SELECT count(*) AS n FROM frames WHERE program = $p", p=1534)

Units follow ``docs/CONVENTIONS.md``: times are MJD UTC (``*_mjd``), durations seconds (``*_s``),
frequencies Hz (``*_hz``); fluxes are DN/s summed over pixels; centroids and widths are pixels
(0.069 arcsec each); ``theta`` is radians.

Tables filled by later stages (``fits``, ``events``, ``periodogram_peaks``, ...) may not exist yet;
asking for one raises :class:`NotComputedError`, which names the command that fills it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from . import sql
from .choices import FIT_PARAMETERS
from .config import Settings
from .db import Database, run_user_query
from .errors import (
    FILLED_BY,
    NotComputedError,
    SelectionError,
    UsageError,
    describe_selection,
)

__all__ = [
    "Archive",
    "NotComputedError",
    "FILLED_BY",
    "TIMESERIES_COLUMNS",
    "DEFAULT_COLUMNS",
    "to_timeseries",
    "to_lightkurve",
]

#: The command that fills each table made by a later stage (shown when a table is missing).
#: Time-series columns beyond ``time_mjd, file_name, frame, gs_id, flux``: name -> (dataset, column).
TIMESERIES_COLUMNS: dict[str, tuple[str, str]] = {
    **{name: ("fits", name) for name in FIT_PARAMETERS},
    **{f"{name}_err": ("fits", f"{name}_err") for name in FIT_PARAMETERS},
    "chi2": ("fits", "chi2"),
    "chi2_red": ("fits", "chi2_red"),
    "n_iter": ("fits", "n_iter"),
    "status": ("fits", "status"),
    "star_flux": ("photometry", "background"),  # flux - 64 x background: see STAR_FLUX
    "background": ("photometry", "background"),
    "flux_r1": ("photometry", "flux_r1"),
    "flux_r2": ("photometry", "flux_r2"),
    "flux_r3": ("photometry", "flux_r3"),
    "flux_opt": ("photometry", "flux_opt"),
    "quick_x_mean": ("quickfits", "x_mean"),
    "quick_y_mean": ("quickfits", "y_mean"),
    "quick_x_stddev": ("quickfits", "x_stddev"),
    "quick_y_stddev": ("quickfits", "y_stddev"),
    "quick_flux": ("quickfits", "flux"),
}
#: Columns returned when ``columns=None``: those of the tables that exist.
DEFAULT_COLUMNS: tuple[str, ...] = ("star_flux", *FIT_PARAMETERS, "background", "flux_opt")
#: Pixels in a guider frame (8 x 8): ``flux`` sums them all, the sky included.
PIXELS_PER_FRAME = 64
#: ``star_flux`` (DN/s): the guide star's flux with the sky taken out, ``flux - 64 x background``
#: (``frames.flux`` is the raw sum of the 64 pixels; ``photometry.background`` the per-pixel sky
#: level the fitter estimated from the pixels away from the star). The light curves' default.
STAR_FLUX = "star_flux"
_ALIAS = {"fits": "ft", "photometry": "ph", "quickfits": "qf"}
_UNMASKED = {"status", "n_iter", "chi2", "chi2_red"}
_BASE_COLUMNS = ("time_mjd", "file_name", "frame", "gs_id", "flux")

#: Units of the time-series columns (astropy unit strings), used by :func:`to_timeseries`.
UNITS: dict[str, str] = {
    "flux": "DN/s",
    "flux_err": "DN/s",
    "amplitude": "DN/s",
    "offset": "DN/s",
    "background": "DN/s",
    "flux_r1": "DN/s",
    "flux_r2": "DN/s",
    "flux_r3": "DN/s",
    "flux_opt": "DN/s",
    "star_flux": "DN/s",
    "star_flux_err": "DN/s",
    "quick_flux": "DN/s",
    "x_mean": "pix",
    "y_mean": "pix",
    "x_stddev": "pix",
    "y_stddev": "pix",
    "quick_x_mean": "pix",
    "quick_y_mean": "pix",
    "quick_x_stddev": "pix",
    "quick_y_stddev": "pix",
    "theta": "rad",
    "amplitude_err": "DN/s",
    "offset_err": "DN/s",
    "x_mean_err": "pix",
    "y_mean_err": "pix",
    "x_stddev_err": "pix",
    "y_stddev_err": "pix",
    "theta_err": "rad",
}


def _without_comments(text: str) -> str:
    """A SQL template without its ``--`` comment lines (to splice it into another statement)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


class Archive:
    """One fgsarchive archive (a DuckDB file and its Parquet parts).

    ``writable=False`` (the default) opens only read-only connections, each for the length of one
    call, so notebooks never block a running ingest or fit for long.

    Example::

        arc = Archive("fgsarchive.duckdb")
        lc = arc.timeseries(program=1534, obs=1, visit=1, bin_s=10)
    """

    def __init__(self, path: str | Path = "fgsarchive.duckdb", *, writable: bool = False) -> None:
        self.path = Path(path)
        self.writable = writable
        self.db = Database(self.path, settings=Settings(db_path=self.path))

    def __repr__(self) -> str:
        mode = "writable" if self.writable else "read-only"
        return f"Archive({str(self.path)!r}, {mode})"

    # --- SQL -------------------------------------------------------------------------------------
    def sql(self, query: str, **params: object) -> pl.DataFrame:
        """Run one SELECT with bound ``$name`` parameters; return polars.

        Example: ``arc.sql("SELECT * FROM files WHERE program = $p", p=1534)``
        """
        return pl.from_arrow(run_user_query(self.db, query, params or None))

    def _named(self, name: str, **params: object) -> pl.DataFrame:
        with self.db.reader() as con:
            return pl.from_arrow(self.db.arrow(con, name, params))

    def tables(self) -> set[str]:
        """Names of the tables and views this archive has now (later stages add theirs).

        Example: ``"fits" in arc.tables()``
        """
        with self.db.reader() as con:
            return self._tables(con)

    def _tables(self, con: Any) -> set[str]:
        return {row[0] for row in self.db.run(con, "api/relations").fetchall()}

    def has(self, table: str) -> bool:
        """Whether a table or view exists (e.g. ``arc.has("anomalies")``)."""
        return table in self.tables()

    def _require(self, table: str, what: str | None = None) -> None:
        if not self.has(table):
            raise NotComputedError(table, what)

    # --- tables ------------------------------------------------------------------------------------
    def programs(self) -> pl.DataFrame:
        """Programs in the archive: files, frames, visits, guide stars, first/last MJD (UTC).

        Example: ``arc.programs()``
        """
        return self._named("api/programs")

    def visits(self, program: int | None = None) -> pl.DataFrame:
        """Visits (one row per program, observation, visit) with fine-guide frames.

        Columns: n_files, n_frames, gs_ids, start_mjd, end_mjd (MJD UTC), duration_s (s).
        Example: ``arc.visits(program=1534)``
        """
        df = self._named("api/visits", program=program)
        if df.is_empty() and program is not None:
            raise SelectionError(f"no fine-guide visits match program={program}")
        return df

    def files(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        product: str | None = None,
        status: str | None = None,
    ) -> pl.DataFrame:
        """Guider files (one row each) matching the selection; ``product`` is fg, track, acq1, ...

        Times ``data_start_mjd``/``data_end_mjd`` are MJD UTC; ``frame_time_s`` is seconds.
        Example: ``arc.files(program=1534, obs=2, product="fg")``
        """
        return self._named(
            "api/files",
            program=program,
            observation=obs,
            visit=visit,
            product=product,
            status=status,
        )

    def guide_stars(self, program: int | None = None) -> pl.DataFrame:
        """Guide stars (ra, dec in deg; fgs_mag; programs; first/last MJD) of a program, or all.

        Example: ``arc.guide_stars(program=1534)``
        """
        df = self._named("api/guide_stars", program=program)
        if df.is_empty() and program is not None:
            raise SelectionError(f"no guide stars match program={program}")
        return df

    def guide_star_visits(self, program: int | None = None) -> pl.DataFrame:
        """One row per guide star and visit: header gs_ra/gs_dec and catalog cat_ra/cat_dec (deg).

        Example: ``arc.guide_star_visits(program=1534)``
        """
        df = self._named("api/guide_star_visits", program=program)
        if df.is_empty():
            raise SelectionError(
                f"no fine-guide files with a guide star match {describe_selection(program=program)}"
            )
        return df

    def frames(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        gs_id: str | None = None,
        file_name: str | None = None,
        start_mjd: float | None = None,
        end_mjd: float | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Frames in time order: time_mjd (MJD UTC), flux (summed DN/s), pixels (64 floats, row-major).

        Example: ``arc.frames(program=1534, obs=2, visit=1, limit=1000)``
        """
        df = self._named(
            "api/frames",
            program=program,
            observation=obs,
            visit=visit,
            gs_id=gs_id,
            file_name=file_name,
            start_mjd=start_mjd,
            end_mjd=end_mjd,
            limit=limit,
        )
        return _nonempty(
            df,
            "no frames match",
            program=program,
            obs=obs,
            visit=visit,
            gs_id=gs_id,
            file_name=file_name,
        )

    def fg_files(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        gs_id: str | None = None,
        file_name: str | None = None,
        start_mjd: float | None = None,
        end_mjd: float | None = None,
    ) -> pl.DataFrame:
        """Ingested fine-guide files of a selection in time order (raises if none match).

        Example: ``arc.fg_files(program=1534, obs=1, visit=1)``
        """
        with self.db.reader() as con:
            return self._fg_files(
                con,
                program,
                obs,
                visit,
                gs_id=gs_id,
                file_name=file_name,
                start_mjd=start_mjd,
                end_mjd=end_mjd,
            )

    def _fg_files(
        self,
        con: Any,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        gs_id: str | None = None,
        file_name: str | None = None,
        start_mjd: float | None = None,
        end_mjd: float | None = None,
    ) -> pl.DataFrame:
        params = dict(
            program=program,
            observation=obs,
            visit=visit,
            gs_id=gs_id,
            file_name=file_name,
            start_mjd=start_mjd,
            end_mjd=end_mjd,
        )
        df = pl.from_arrow(self.db.arrow(con, "api/fg_files", params))
        return _nonempty(
            df,
            "no fine-guide files match",
            program=program,
            obs=obs,
            visit=visit,
            gs_id=gs_id,
            file_name=file_name,
        )

    def fits(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        gs_id: str | None = None,
        file_name: str | None = None,
        kind: str = "fits",
        fit_version: int | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Per-frame fit results of a selection: ``kind`` is fits (Gaussian), quickfits or photometry.

        Columns as in docs/CONVENTIONS.md (x_mean, y_mean, x_stddev, y_stddev in px; theta in rad;
        amplitude, offset, background and fluxes in DN/s; status 0 = converged), plus observation,
        visit and gs_id. Example: ``arc.fits(program=1534, obs=1, visit=1, limit=100)``
        """
        if kind not in _ALIAS:
            raise UsageError(f"kind={kind!r}: choose one of {', '.join(_ALIAS)}")
        self._require(kind, f"{kind} of {describe_selection(program=program)}")
        files = self.fg_files(program, obs, visit, gs_id=gs_id, file_name=file_name)
        text = sql.render("api/fits", table=kind)
        frames = []
        with self.db.reader() as con:
            for (prog,), sel in files.group_by(["program"], maintain_order=True):
                params = {
                    "program": prog,
                    "files": sel["file_name"].to_list(),
                    "observations": sel["observation"].to_list(),
                    "visits": sel["visit"].to_list(),
                    "gs_ids": sel["gs_id"].to_list(),
                    "fit_version": fit_version,
                    "limit": limit,
                }
                frames.append(pl.from_arrow(con.sql(text, params=params).to_arrow_table()))
        df = pl.concat(frames, how="diagonal_relaxed")
        if limit is not None:
            df = df.head(limit)
        if df.is_empty():
            raise SelectionError(
                f"no {kind} rows match "
                + describe_selection(program=program, obs=obs, visit=visit, gs_id=gs_id)
                + f" (run `{FILLED_BY[kind]}`)"
            )
        return df

    # --- time series -------------------------------------------------------------------------------
    def timeseries(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        gs_id: str | None = None,
        file_name: str | None = None,
        columns: Sequence[str] | None = None,
        bin_s: float | None = None,
        start_mjd: float | None = None,
        end_mjd: float | None = None,
    ) -> pl.DataFrame:
        """The guide-star time series of a selection, in time order, one guide star per segment.

        Per frame (``bin_s=None``): ``time_mjd`` (MJD UTC, frame mid-time), ``file_name``,
        ``frame``, ``gs_id``, ``flux`` (raw sum of the 64 pixels, sky included, DN/s) and the
        requested ``columns`` from the fitter's tables (:data:`TIMESERIES_COLUMNS`:
        ``star_flux`` (the star's flux, sky subtracted: ``flux - 64 x background``, DN/s);
        Gaussian ``amplitude, x_mean, y_mean, x_stddev, y_stddev, theta, offset`` (+ ``_err``,
        ``chi2``, ``status``); photometry ``background`` (per pixel), ``flux_r1..3, flux_opt``;
        moments ``quick_*``). ``columns=None`` takes :data:`DEFAULT_COLUMNS` (``star_flux``
        first) from the tables that exist. Fit parameters of frames whose fit
        failed (status >= 2) are null.

        Binned (``bin_s`` seconds, counted from the selection's first frame): the mean of every
        column per bin, computed in DuckDB, with ``n_frames`` and ``flux_err`` (standard error of
        the mean flux); bins never mix guide stars. Times are means of the frame times.

        Example: ``arc.timeseries(program=1534, obs=1, visit=1, bin_s=10, columns=["x_mean"])``
        """
        selection = describe_selection(
            program=program, obs=obs, visit=visit, gs_id=gs_id, file_name=file_name
        )
        if bin_s is not None and not bin_s > 0:
            raise UsageError(f"bin_s must be positive seconds (got {bin_s})")
        parts = []
        with self.db.reader() as con:
            wanted = self._resolve_columns(columns, self._tables(con))
            files = self._fg_files(
                con,
                program,
                obs,
                visit,
                gs_id=gs_id,
                file_name=file_name,
                start_mjd=start_mjd,
                end_mjd=end_mjd,
            )
            datasets = list(dict.fromkeys(TIMESERIES_COLUMNS[c][0] for c in wanted))
            t0 = float(files["data_start_mjd"].min()) if start_mjd is None else float(start_mjd)
            for (prog,), sel in files.group_by(["program"], maintain_order=True):
                parts.append(
                    self._timeseries_program(
                        con, int(prog), sel, wanted, datasets, bin_s, t0, start_mjd, end_mjd
                    )
                )
        df = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
        if len(parts) > 1:
            df = df.sort("time_mjd")
        if df.is_empty():
            raise SelectionError(f"no frames match {selection}")
        return df

    @staticmethod
    def _resolve_columns(columns: Sequence[str] | None, tables: set[str]) -> list[str]:
        if columns is None:
            return [c for c in DEFAULT_COLUMNS if TIMESERIES_COLUMNS[c][0] in tables]
        if isinstance(columns, str):
            columns = [columns]
        wanted = []
        for name in columns:
            if name in _BASE_COLUMNS:
                continue
            if name not in TIMESERIES_COLUMNS:
                valid = ", ".join([*_BASE_COLUMNS, *TIMESERIES_COLUMNS])
                raise UsageError(f"unknown time-series column {name!r}; valid columns: {valid}")
            dataset = TIMESERIES_COLUMNS[name][0]
            if dataset not in tables:
                raise NotComputedError(dataset, f"column {name!r}")
            wanted.append(name)
        return list(dict.fromkeys(wanted))

    def _timeseries_program(
        self,
        con: Any,
        program: int,
        sel: pl.DataFrame,
        wanted: list[str],
        datasets: list[str],
        bin_s: float | None,
        t0: float,
        start_mjd: float | None,
        end_mjd: float | None,
    ) -> pl.DataFrame:
        files = sel["file_name"].to_list()
        params: dict[str, object] = {
            "program": program,
            "files": files,
            "gs_ids": sel["gs_id"].to_list(),
            "start_mjd": start_mjd,
            "end_mjd": end_mjd,
        }
        selection = []
        for dataset in datasets:  # join each file's newest fit_version only
            alias = _ALIAS[dataset]
            versions = dict(
                con.execute(
                    sql.render("api/fit_versions", table=dataset),
                    {"program": program, "files": files},
                ).fetchall()
            )
            params[f"v_{alias}"] = [versions.get(f) for f in files]
            selection.append(f", unnest($v_{alias}) AS v_{alias}")

        def value(name: str) -> str:
            dataset, column = TIMESERIES_COLUMNS[name]
            alias = "t" if bin_s is not None else _ALIAS[dataset]
            ref = f"{alias}.{sql.identifier(column)}"
            if dataset == "fits" and name not in _UNMASKED:
                ref = f"CASE WHEN {alias}.status < 2 THEN {ref} END"
            if name == STAR_FLUX and bin_s is None:
                ref = f"fr.flux - {PIXELS_PER_FRAME}.0 * {ref}"
            return ref

        def outer(name: str) -> str:
            """A binned column: the dataset's per-bin mean (star_flux from the mean sky)."""
            ref = f"{_ALIAS[TIMESERIES_COLUMNS[name][0]]}.{sql.identifier(name)}"
            return f"fr.flux - {PIXELS_PER_FRAME}.0 * {ref}" if name == STAR_FLUX else ref

        if bin_s is None:
            template = "api/timeseries"
            joins = [
                f"LEFT JOIN (SELECT * FROM {sql.identifier(d)} WHERE program = $program) AS {_ALIAS[d]}\n"
                f"  ON {_ALIAS[d]}.file_name = fr.file_name AND {_ALIAS[d]}.frame = fr.frame"
                f" AND {_ALIAS[d]}.fit_version = sel.v_{_ALIAS[d]}"
                for d in datasets
            ]
            columns = "".join(f",\n       {value(c)} AS {sql.identifier(c)}" for c in wanted)
            fragments = {}
        else:  # aggregate each dataset per bin on its own, then join the small results
            template = "api/timeseries_binned"
            params.update(
                bin_s=float(bin_s),
                t0_mjd=t0,
                starts=sel["data_start_mjd"].to_list(),
                frame_s=sel["frame_time_s"].to_list(),
            )
            ctes, joins = [], []
            for dataset in datasets:
                alias = _ALIAS[dataset]
                mine = [c for c in wanted if TIMESERIES_COLUMNS[c][0] == dataset]
                averages = "".join(
                    f",\n           avg({value(c)}) AS {sql.identifier(c)}" for c in mine
                )
                part = sql.render(
                    "api/timeseries_binned_part",
                    alias=alias,
                    table=dataset,
                    version=f"v_{alias}",
                    averages=sql.Fragment(averages),
                )
                ctes.append(_without_comments(part).rstrip())
                joins.append(f"LEFT JOIN {alias} USING (gs_id, bin)")
            columns = "".join(f",\n       {outer(c)} AS {sql.identifier(c)}" for c in wanted)
            fragments = {"ctes": "".join(",\n" + c for c in ctes)}
        fragments.update(selection="".join(selection), columns=columns, joins="\n".join(joins))
        text = sql.render(template, **{k: sql.Fragment(v) for k, v in fragments.items()})
        return pl.from_arrow(con.sql(text, params=params).to_arrow_table())

    @staticmethod
    def to_timeseries(df: pl.DataFrame):
        """A time series DataFrame as an astropy ``TimeSeries`` (time from ``time_mjd``, units set).

        Example: ``ts = arc.to_timeseries(arc.timeseries(program=1534, obs=1, visit=1, bin_s=10))``
        """
        return to_timeseries(df)

    @staticmethod
    def to_lightkurve(df: pl.DataFrame, flux: str | None = None):
        """A time series DataFrame as a ``lightkurve.LightCurve`` (needs the lightkurve extra).

        Example: ``lc = arc.to_lightkurve(arc.timeseries(program=1534, obs=1, visit=1, bin_s=10))``
        """
        return to_lightkurve(df, flux=flux)

    # --- analyses -----------------------------------------------------------------------------------
    def _file_filter(
        self, program: int | None, obs: int | None, visit: int | None, gs_id: str | None
    ) -> list[str] | None:
        """File names of a visit-level selection, or None when only program / gs_id is given."""
        if obs is None and visit is None:
            return None
        return self.fg_files(program, obs, visit, gs_id=gs_id)["file_name"].to_list()

    def periodogram(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        gs_id: str | None = None,
        parameter: str | None = None,
        max_fap: float | None = None,
        instrumental: bool | None = None,
    ) -> pl.DataFrame:
        """Periodogram peaks (frequency_hz, period_s, power, fap, rank, instrumental), most significant first.

        ``max_fap`` keeps peaks with false-alarm probability at most this; ``instrumental=False``
        drops lines shared by many guide stars (telescope, not star).
        Example: ``arc.periodogram(program=1534, obs=1, visit=1, parameter="flux", max_fap=0.01)``
        """
        self._require("periodogram_peaks", "periodograms")
        df = self._named(
            "api/periodogram",
            program=program,
            files=self._file_filter(program, obs, visit, gs_id),
            gs_id=gs_id,
            parameter=parameter,
            max_fap=max_fap,
        )
        if instrumental is not None and "instrumental" in df.columns:
            df = df.filter(pl.col("instrumental").fill_null(False) == instrumental)
        if df.is_empty():
            raise SelectionError(
                "no periodogram peaks match "
                + describe_selection(
                    program=program,
                    obs=obs,
                    visit=visit,
                    gs_id=gs_id,
                    parameter=parameter,
                    max_fap=max_fap,
                )
            )
        return df

    def anomalies(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        gs_id: str | None = None,
        kind: str | None = None,
        min_significance: float | None = None,
    ) -> pl.DataFrame:
        """Anomalies (flux drops, centroid jumps, width steps, ...) of a selection, in time order.

        Columns: kind, start_mjd, end_mjd (MJD UTC), duration_s, parameters, amplitude,
        significance, coincident_events. An empty result is an empty DataFrame (no anomaly is news).
        Example: ``arc.anomalies(program=1534, obs=1, visit=1)``
        """
        self._require("anomalies")
        return self._named(
            "api/anomalies",
            program=program,
            files=self._file_filter(program, obs, visit, gs_id),
            gs_id=gs_id,
            kind=kind,
            min_significance=min_significance,
        )

    def variables(
        self,
        program: int | None = None,
        *,
        gs_id: str | None = None,
        top: int | None = None,
    ) -> pl.DataFrame:
        """Guide stars ranked by variability (rank 1 = most variable), with ra, dec (deg), fgs_mag.

        Columns: rms_ppm, expected_rms_ppm, excess, eta, skew, best_period_s, best_fap, score, rank.
        Example: ``arc.variables(top=10)``
        """
        self._require("variability", "variability ranks")
        df = self._named("api/variability", program=program, gs_id=gs_id, top=top)
        if df.is_empty() and (program is not None or gs_id is not None):
            raise SelectionError(
                "no variability rows match " + describe_selection(program=program, gs_id=gs_id)
            )
        return df

    def events(
        self,
        program: int | None = None,
        obs: int | None = None,
        visit: int | None = None,
        *,
        kind: str | None = None,
        start_mjd: float | None = None,
        end_mjd: float | None = None,
    ) -> pl.DataFrame:
        """Observatory events (hga_move, filter_wheel_move, guide_star_change, file_boundary, ...).

        With a visit selection: the events that overlap its time span (MJD UTC) or name its files.
        Example: ``arc.events(program=1534, obs=1, visit=1, kind="hga_move")``
        """
        self._require("events")
        files = None
        if program is not None or obs is not None or visit is not None:
            sel = self.fg_files(program, obs, visit)
            files = sel["file_name"].to_list()
            if start_mjd is None:
                start_mjd = float(sel["data_start_mjd"].min())
            if end_mjd is None:
                end_mjd = float(sel["data_end_mjd"].max())
        return self._named(
            "api/events",
            program=program,
            files=files,
            kind=kind,
            start_mjd=start_mjd,
            end_mjd=end_mjd,
        )

    def telemetry(
        self,
        mnemonic: str | None = None,
        *,
        start_mjd: float | None = None,
        end_mjd: float | None = None,
    ) -> pl.DataFrame:
        """Engineering telemetry samples (mnemonic, time_mjd, value, value_text) in a time window.

        Example: ``arc.telemetry("SA_ZHGAUPST", start_mjd=59918.0, end_mjd=59918.1)``
        """
        self._require("telemetry")
        return self._named("api/telemetry", mnemonic=mnemonic, start_mjd=start_mjd, end_mjd=end_mjd)

    # --- analysis views ----------------------------------------------------------------------------
    def visit_summary(self, program: int | None = None) -> pl.DataFrame:
        """One row per program / observation / visit / guide star (view ``visit_summary``): n_files,
        n_frames, start/end_mjd, guided_s, mean_flux (DN/s), median x/y_stddev (px), jitter x/y RMS
        (px, about each file's mean), fraction_converged.

        Example: ``arc.visit_summary(1534)``
        """
        where = f"program {program}" if program is not None else "the archive"
        fit = f"fgsarchive fit --program {program}" if program is not None else "fgsarchive fit"
        if not self.has("visit_summary"):
            raise NotComputedError("fits", message=f"{where} has no fits yet: run `{fit}` first")
        df = self._named("analysis/visit_summary", program=program)
        if df.is_empty() and program is not None:
            raise SelectionError(
                f"no fine-guide frames of program {program} in the archive "
                f"(ingest them with `fgsarchive ingest {program}` or `fgsarchive ingest --from DIR`)"
            )
        return df

    def anomalies_with_telemetry(self, program: int | None = None) -> pl.DataFrame:
        """Every anomaly with each observatory event overlapping it within 30 s (view
        ``anomalies_with_telemetry``; one row per pair, event columns null when none).

        Example: ``arc.anomalies_with_telemetry(1534).filter(pl.col("event_kind").is_not_null())``
        """
        tables = self.tables()
        if "anomalies_with_telemetry" not in tables:
            if "anomalies" not in tables:
                raise SelectionError("anomalies not computed yet: run `fgsarchive anomalies`")
            raise SelectionError("the events table is missing: run `fgsarchive events`")
        return self._named("analysis/anomalies_with_telemetry", program=program)

    def lightcurve_binned(self, gs_id: str, bin_s: float = 10.0) -> pl.DataFrame:
        """Binned light curve of one guide star over all its visits and programs: per visit and
        ``bin_s``-second bin, time_mjd, n_frames, flux and flux_err (frames, DN/s), flux_opt,
        flux_opt_err and background (photometry), x/y_mean, x/y_stddev (px), amplitude (converged
        fits).

        Example: ``arc.lightcurve_binned("S1IW329524", bin_s=30)``
        """
        if not bin_s > 0:
            raise UsageError(f"bin_s must be > 0, got {bin_s}")
        if self._named("analysis/fg_files", program=None, gs_id=gs_id).is_empty():
            raise SelectionError(f"no fine-guide frames of guide star {gs_id!r} in the archive")
        if not (self.db.parts.has_dataset("fits") and self.db.parts.has_dataset("photometry")):
            raise NotComputedError(
                "fits", message="the archive has no fits yet: run `fgsarchive fit` first"
            )
        return self._named("analysis/lightcurve_binned", gs_id=gs_id, bin_s=float(bin_s))

    def status(self) -> dict[str, object]:
        """Programs, files by product and status, failed files, and the row count of every table
        and view (``fgsarchive status``); ``checked_at`` is the Unix time of the check."""
        import duckdb

        db = self.db
        with db.reader() as con:
            programs = db.arrow(con, "status/programs").to_pylist()
            files = db.arrow(con, "status/files").to_pylist()
            failed = db.arrow(con, "status/failed").to_pylist()
            tables: dict[str, int] = {}
            names = [r[0] for r in db.run(con, "core/list_relations").fetchall()]
            for name in sorted(set(names) - {"schema_info"}):
                try:
                    tables[name] = db.count_rows(con, name)
                except duckdb.Error:  # a view over Parquet parts removed since: not counted
                    continue
        return {
            "programs": programs,
            "files": files,
            "failed": failed,
            "tables": tables,
            "checked_at": time.time(),
        }

    # --- plots (thin wrappers over fgsarchive.plots) -------------------------------------------------
    def plot_flux(
        self, program: int | None = None, obs: int | None = None, visit: int | None = None, **kw
    ):
        """Binned flux time series of a selection; see :func:`fgsarchive.plots.plot_flux`.

        Example: ``arc.plot_flux(program=1534, obs=1, visit=1, bin_s=10, save="flux.png")``
        """
        from .plots import plot_flux

        return plot_flux(self, program=program, obs=obs, visit=visit, **kw)

    def plot(self, kind: str, **kw):
        """Any plot by name (:data:`fgsarchive.plots.PLOT_KINDS`); returns the matplotlib Figure.

        Example: ``arc.plot("parameters", program=1534, obs=1, visit=1, bin_s=10)``
        """
        from .plots import plot

        return plot(kind, self, **kw)

    # --- writing -------------------------------------------------------------------------------------
    def _require_writable(self, what: str) -> None:
        if not self.writable:
            raise SelectionError(
                f"Archive({str(self.path)!r}) is read-only: open it with writable=True to {what}"
            )

    def ingest(self, source: str | Path, *, workers: int = 2, force: bool = False):
        """Ingest local guider files from a folder (like ``fgsarchive ingest --from``); returns the report.

        Example: ``Archive("a.duckdb", writable=True).ingest("products/")``
        """
        from .ingest import ingest_directory

        self._require_writable("ingest")
        return ingest_directory(self.db, Path(source), workers=workers, force=force)

    def fit(
        self,
        program: int | None = None,
        *,
        what: Sequence[str] = ("gauss", "quick", "phot"),
        workers: int = 2,
    ):
        """Fit every frame without a fit yet (like ``fgsarchive fit``); returns the fit report.

        ``what``: gauss (2-D Gaussian), quick (moments), phot (background and apertures).
        Example: ``Archive("a.duckdb", writable=True).fit(program=1534, workers=2)``
        """
        from .fit.runner import fit_archive

        self._require_writable("fit")
        if isinstance(what, str):
            what = [w.strip() for w in what.split(",") if w.strip()]
        return fit_archive(self.db, program=program, what=list(what), workers=workers)


# --- conversions -------------------------------------------------------------------------------------
def to_timeseries(df: pl.DataFrame):
    """A time-series DataFrame (``time_mjd`` + columns) as an astropy ``TimeSeries`` with units.

    Time is ``astropy.time.Time(time_mjd, format="mjd", scale="utc")``; fluxes get DN/s, centroids
    and widths pix, theta rad. Example: ``arc.timeseries(program=1534, obs=1, visit=1,
    bin_s=10).pipe(to_timeseries)``
    """
    import astropy.units as u
    from astropy.table import MaskedColumn
    from astropy.time import Time
    from astropy.timeseries import TimeSeries

    if "time_mjd" not in df.columns:
        raise UsageError(f"to_timeseries needs a time_mjd column; got {df.columns}")
    ts = TimeSeries(time=Time(df["time_mjd"].to_numpy(), format="mjd", scale="utc"))
    for name in df.columns:
        if name == "time_mjd":
            continue
        series = df[name]
        if series.dtype.is_numeric():
            values = (
                series.cast(pl.Float64).to_numpy() if series.null_count() else series.to_numpy()
            )
            unit = u.Unit(UNITS[name]) if name in UNITS else None
            ts[name] = values * unit if unit is not None else values
        else:
            ts[name] = MaskedColumn(series.to_list(), mask=series.is_null().to_numpy())
    return ts


def to_lightkurve(df: pl.DataFrame, flux: str | None = None):
    """A time-series DataFrame as a ``lightkurve.LightCurve`` (flux from column ``flux``, DN/s).

    ``flux`` defaults to ``star_flux`` (sky subtracted) when the frame has it, else the raw
    ``flux``. ``flux_err`` is the column ``<flux>_err`` when present (binned series: the standard
    error of each bin's mean), else each guide star's white-noise scatter estimated from
    successive differences (per-frame series), so it is never all NaN.
    Needs lightkurve (``pip install "fgsarchive[lightkurve]"``). Example:
    ``to_lightkurve(arc.timeseries(program=1534, obs=1, visit=1, bin_s=10)).plot()``
    """
    try:
        import lightkurve
    except ImportError as exc:
        raise UsageError(
            'to_lightkurve needs lightkurve: pip install "fgsarchive[lightkurve]" '
            "(or use to_timeseries for an astropy TimeSeries)"
        ) from exc
    import astropy.units as u
    from astropy.time import Time

    if flux is None:
        flux = STAR_FLUX if STAR_FLUX in df.columns else "flux"
    if flux not in df.columns:
        raise UsageError(f"no column {flux!r} in the time series; columns: {df.columns}")
    err_name = f"{flux}_err"
    if err_name not in df.columns and flux == STAR_FLUX and "flux_err" in df.columns:
        err_name = "flux_err"  # a bin's scatter: the same frames, the smooth sky hardly adds to it
    unit = u.Unit(UNITS.get(flux, "DN/s"))
    extra = {
        c: df[c].to_numpy()
        for c in df.columns
        if c not in ("time_mjd", flux, err_name) and df[c].dtype.is_numeric()
    }
    if err_name in df.columns:
        errors = df[err_name].cast(pl.Float64).to_numpy()
    else:
        errors = _scatter_errors(df, flux)
    lc = lightkurve.LightCurve(
        time=Time(df["time_mjd"].to_numpy(), format="mjd", scale="utc"),
        flux=df[flux].cast(pl.Float64).to_numpy() * unit,
        flux_err=errors * unit,
        meta={
            "source": "fgsarchive",
            "flux_column": flux,
            "flux_err_from": err_name if err_name in df.columns else "successive differences",
        },
    )
    for name, values in extra.items():
        lc[name] = values
    return lc


def _scatter_errors(df: pl.DataFrame, column: str) -> Any:
    """Per-sample noise of ``column`` (same unit): each guide star's robust scatter of successive
    differences / sqrt(2), the white-noise level of a per-frame series without its slow trends."""
    import numpy as np

    value = pl.col(column).cast(pl.Float64)
    sigma = (value.diff().abs().median() * (1.4826 / np.sqrt(2.0))).alias("__sigma")
    by = ["gs_id"] if "gs_id" in df.columns else None
    out = df.with_columns(sigma.over(by) if by else sigma)["__sigma"]
    return out.cast(pl.Float64).fill_null(np.nan).to_numpy()


def _nonempty(df: pl.DataFrame, what: str, **selection: object) -> pl.DataFrame:
    """``df``, or a SelectionError naming the selection when it is empty."""
    if df.is_empty():
        raise SelectionError(f"{what} {describe_selection(**selection)}")
    return df
