"""The Python API for notebooks: ``Archive(path)`` returns polars DataFrames.

>>> from fgsarchive import Archive
>>> arc = Archive("fgsarchive.duckdb")          # read-only by default
>>> arc.programs()                              # one row per program
>>> arc.sql("SELECT count(*) AS n FROM frames WHERE program = $p", p=1534)
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .config import Settings
from .db import Database, run_user_query
from .errors import SelectionError


class Archive:
    """One fgsarchive archive (a DuckDB file and its Parquet parts).

    ``writable=False`` (the default) opens only read-only connections, each for the length of one
    call, so notebooks never block a running ingest or fit for long.
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

    # --- tables ------------------------------------------------------------------------------------
    def programs(self) -> pl.DataFrame:
        """Programs in the archive: files, frames, visits, guide stars, first/last MJD (UTC)."""
        return self._named("api_programs")

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

        Example: ``arc.files(program=1534, obs=2, product="fg")``
        """
        return self._named(
            "api_files",
            program=program,
            observation=obs,
            visit=visit,
            product=product,
            status=status,
        )

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
        """Frames in time order: time_mjd (MJD UTC), flux (summed counts), pixels (64 floats, row-major).

        Example: ``arc.frames(program=1534, obs=2, visit=1, limit=1000)``
        """
        df = self._named(
            "api_frames",
            program=program,
            observation=obs,
            visit=visit,
            gs_id=gs_id,
            file_name=file_name,
            start_mjd=start_mjd,
            end_mjd=end_mjd,
            limit=limit,
        )
        if df.is_empty():
            raise SelectionError(
                "no frames match program={program} obs={obs} visit={visit} gs_id={gs_id} "
                "file_name={file_name}".format(
                    program=program, obs=obs, visit=visit, gs_id=gs_id, file_name=file_name
                )
            )
        return df

    # --- writing -------------------------------------------------------------------------------------
    def _require_writable(self, what: str) -> None:
        if not self.writable:
            raise SelectionError(
                f"Archive({str(self.path)!r}) is read-only: open it with writable=True to {what}"
            )

    def ingest(self, source: str | Path, *, workers: int = 2, force: bool = False):
        """Ingest local guider files from a folder (like ``fgsarchive ingest --from``); returns the report."""
        from .ingest import ingest_directory

        self._require_writable("ingest")
        return ingest_directory(self.db, Path(source), workers=workers, force=force)
