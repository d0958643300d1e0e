"""Ingest guider files into the archive: atomic per file, idempotent, resumable.

Each file is read and its per-frame datasets (frames, pointing, centroids) are written to a staging
folder by worker processes; the main process then records the file in DuckDB in a short transaction
and publishes its parts (see :mod:`fgsarchive.storage`). A killed run leaves at most staging debris
that the next run finishes or discards, so re-running always ends with the archive an uninterrupted
run would have made.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import logging
import time
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .clock import utcnow
from .db import Database, exclusive
from .errors import GuiderFileError, UsageError
from .fit.noise import NO_MODEL, SAMPLE_FRAMES, SAMPLE_FRAMES_ERR, NoiseModel, file_noise_model
from .names import looks_like_guider_file
from .reader import TIME_RULE, centroid_table, open_guider_file, pointing_table
from .storage import PartStore, part_name
from .workers import end_workers, process_pool

log = logging.getLogger(__name__)

CHUNK_FRAMES = 65536
COMMIT_EVERY_FILES = 32
COMMIT_EVERY_S = 2.0

FRAMES_SCHEMA = pa.schema(
    [
        ("file_name", pa.string()),
        ("frame", pa.int32()),
        ("time_mjd", pa.float64()),
        ("flux", pa.float64()),
        ("pixels", pa.list_(pa.float32(), 64)),
    ]
)

FILES_SCHEMA = pa.schema(
    [
        ("file_name", pa.string()),
        ("program", pa.int32()),
        ("observation", pa.int32()),
        ("visit", pa.int32()),
        ("product", pa.string()),
        ("exp_type", pa.string()),
        ("detector", pa.string()),
        ("segment", pa.int32()),
        ("n_segments", pa.int32()),
        ("int_start", pa.int32()),
        ("guide_period", pa.string()),
        ("gs_id", pa.string()),
        ("gs_order", pa.int32()),
        ("gs_ra", pa.float64()),
        ("gs_dec", pa.float64()),
        ("gs_ra_err", pa.float64()),
        ("gs_dec_err", pa.float64()),
        ("gs_mag", pa.float64()),
        ("gs_mag_err", pa.float64()),
        ("gs_pm_ra", pa.float64()),
        ("gs_pm_dec", pa.float64()),
        ("gs_epoch", pa.string()),
        ("gsc_version", pa.string()),
        ("data_start_mjd", pa.float64()),
        ("data_end_mjd", pa.float64()),
        ("nints", pa.int32()),
        ("n_frames", pa.int64()),
        ("frame_time_s", pa.float64()),
        ("time_rule", pa.string()),
        ("dq", pa.list_(pa.uint32())),
        ("noise_a", pa.float64()),
        ("noise_b", pa.float64()),
        ("noise_source", pa.string()),
        ("n_pointing", pa.int32()),
        ("n_centroids", pa.int32()),
        ("file_bytes", pa.int64()),
        ("source_path", pa.string()),
        ("header", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("ingested_at", pa.timestamp("us")),
    ]
)


@dataclass
class IngestReport:
    """What an ingest run did."""

    ingested: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already in the archive, unchanged
    failed: dict[str, str] = field(default_factory=dict)  # file name -> reason
    n_frames: int = 0
    n_bytes: int = 0
    seconds: float = 0.0

    @property
    def frames_per_s(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[int, int, int], None]  # files done, files total, frames done


def find_guider_files(source: Path) -> list[Path]:
    """Guide-star product files (``jw..._gs-..._cal.fits`` and ``_uncal``) under ``source``."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"--from {source}: no such directory")
    if not source.is_dir():
        raise UsageError(f"--from {source}: not a directory")
    return sorted(
        p for p in source.rglob("*.fits") if p.is_file() and looks_like_guider_file(p.name)
    )


def _failed_row(path: Path, reason: str) -> dict[str, object]:
    try:  # never raise here: a symlink loop made resolve() raise and the whole ingest stop
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    try:
        source = str(path.resolve())
    except (OSError, RuntimeError):
        source = str(path.absolute())
    return {
        "file_name": path.name,
        "file_bytes": size,
        "source_path": source,
        "status": "failed",
        "error": reason,
        "ingested_at": utcnow(),
    }


def prepare_file(
    path: Path, parts_root: Path, chunk_frames: int = CHUNK_FRAMES
) -> dict[str, object]:
    """Read one file and stage its Parquet parts; return its ``files`` row (never raises for bad files).

    Runs in worker processes: it touches only the staging folder, never DuckDB.
    """
    path = Path(path)
    store = PartStore(parts_root)
    part = part_name(path.name)
    try:
        with open_guider_file(path) as guider:
            program = int(guider.program)
            n_pointing = n_centroids = None
            noise = None
            if guider.product == "fg":
                noise = _noise_model(guider)
                store.stage(
                    part, program, "frames", _frame_tables(guider, chunk_frames), FRAMES_SCHEMA
                )
            pointing = pointing_table(guider)
            if pointing is not None:
                pointing = _with_file_name(pointing, path.name)
                store.stage(part, program, "pointing", pointing, pointing.schema)
                n_pointing = pointing.num_rows
            centroids = centroid_table(guider)
            if centroids is not None:
                centroids = _with_file_name(centroids, path.name)
                store.stage(part, program, "centroids", centroids, centroids.schema)
                n_centroids = centroids.num_rows
            gs = guider.guide_star
            return {
                "file_name": path.name,
                "program": program,
                "observation": guider.observation,
                "visit": guider.visit,
                "product": guider.product,
                "exp_type": guider.exp_type,
                "detector": guider.detector,
                "segment": guider.segment,
                "n_segments": guider.n_segments,
                "int_start": guider.int_start,
                "guide_period": guider.guide_period,
                "gs_id": guider.gs_id,
                "gs_order": guider.gs_order,
                "gs_ra": gs["ra"],
                "gs_dec": gs["dec"],
                "gs_ra_err": gs["ra_err"],
                "gs_dec_err": gs["dec_err"],
                "gs_mag": gs["fgs_mag"],
                "gs_mag_err": gs["fgs_mag_err"],
                "gs_pm_ra": gs["pm_ra"],
                "gs_pm_dec": gs["pm_dec"],
                "gs_epoch": gs["epoch"],
                "gsc_version": gs["catalog_version"],
                "data_start_mjd": guider.data_start_mjd,
                "data_end_mjd": guider.data_end_mjd,
                "nints": guider.nints_header,
                "n_frames": guider.n_frames,
                "frame_time_s": guider.frame_time_s,
                "time_rule": TIME_RULE,
                "dq": None if guider.dq is None else guider.dq.ravel().tolist(),
                "noise_a": None if noise is None or noise.params is None else noise.a,
                "noise_b": None if noise is None or noise.params is None else noise.b,
                "noise_source": None if noise is None else noise.source,
                "n_pointing": n_pointing,
                "n_centroids": n_centroids,
                "file_bytes": path.stat().st_size,
                "source_path": str(path.resolve()),
                "header": json.dumps(guider.header),
                "status": "ingested",
                "error": None,
                "ingested_at": utcnow(),
            }
    except GuiderFileError as exc:
        store.discard(part)
        return _failed_row(path, exc.reason)
    except Exception as exc:  # anything else about this file must not stop the run
        store.discard(part)
        return _failed_row(path, f"{type(exc).__name__}: {exc}".splitlines()[0])


def _noise_model(guider) -> NoiseModel:
    """The file's pixel noise model from its first frames: ERR, else the frames, else 'none'."""
    try:
        _, sci = next(guider.iter_pixel_chunks(SAMPLE_FRAMES))
    except StopIteration:
        return NO_MODEL
    return file_noise_model(sci, guider.err_pixels(SAMPLE_FRAMES_ERR), guider.dq)


def _with_file_name(table: pa.Table, file_name: str) -> pa.Table:
    return table.add_column(0, "file_name", pa.array([file_name] * table.num_rows, pa.string()))


def _frame_tables(guider, chunk_frames: int):
    """Stream the file's frames as Arrow tables of at most ``chunk_frames`` rows."""
    for start, pixels in guider.iter_pixel_chunks(chunk_frames):
        m = pixels.shape[0]
        flux = np.nansum(pixels, axis=1, dtype=np.float64)
        yield pa.table(
            {
                "file_name": pa.array([guider.file_name] * m, pa.string()),
                "frame": pa.array(np.arange(start, start + m, dtype=np.int32)),
                "time_mjd": pa.array(guider.frame_times_mjd(start, start + m)),
                "flux": pa.array(flux),
                "pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels.ravel()), 64),
            },
            schema=FRAMES_SCHEMA,
        )


def _commit(
    db: Database, rows: list[dict[str, object]], known: Container[str] = (), *, lazy: bool = False
) -> None:
    """Record a batch of files in one transaction, then publish their staged parts.

    A file in ``known`` (in the archive before this run) is replaced: its earlier parts (fits, ...)
    are stale and go, after the commit (see :meth:`PartStore.publish`). Looking for parts of new
    files is skipped: it lists every dataset, which made ingest quadratic in the archive's size.
    """
    if not rows:
        return
    table = pa.Table.from_pylist(rows, schema=FILES_SCHEMA)

    def publish_parts() -> None:  # after the commit, before the snapshot readers open
        for row in rows:
            name = str(row["file_name"])
            if row["status"] == "ingested":
                db.parts.publish(part_name(name), replace=name in known)
            elif name in known:  # now failed: the parts of its earlier version are stale
                db.parts.remove(part_name(name))

    with db.writer(after_commit=publish_parts, lazy=lazy) as con:
        db.run(con, "ingest/files_delete", new_files=table)
        db.run(con, "ingest/files_insert", new_files=table)


def ingest_lock(db: Database) -> contextlib.AbstractContextManager[None]:
    """One ingest at a time per archive (waits up to the lock timeout).

    Each run starts by finishing or discarding what is in staging (:meth:`Database.initialise`);
    with two runs at once (or a killed run's workers still ending) that discarded the other run's
    staged parts, which then committed files without their pointing/centroid parts (seen in the
    kill-and-resume trials). The lock is a ``flock`` on ``<parts>/.ingest.lock``: the kernel drops
    it when the last process holding it (the main process, or its forked workers) is gone.
    """
    return exclusive(
        db,
        ".ingest.lock",
        lambda timeout_s: (
            f"another `fgsarchive ingest` is writing {db.path} (or its worker "
            f"processes are still ending) for more than {timeout_s:.0f} s"
        ),
    )


def ingest_paths(
    db: Database,
    paths: Sequence[Path],
    *,
    workers: int = 2,
    force: bool = False,
    progress: ProgressCallback | None = None,
    chunk_frames: int = CHUNK_FRAMES,
) -> IngestReport:
    """Ingest the given guider files; files already in the archive unchanged are skipped."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    with ingest_lock(db):
        return _ingest_paths(db, paths, workers, force, progress, chunk_frames)


def _ingest_paths(
    db: Database,
    paths: Sequence[Path],
    workers: int,
    force: bool,
    progress: ProgressCallback | None,
    chunk_frames: int,
) -> IngestReport:
    started = time.perf_counter()
    db.initialise()
    with db.reader() as con:
        known = {r[0]: (r[1], r[2]) for r in db.run(con, "ingest/files_known").fetchall()}
    report = IngestReport()
    todo: list[Path] = []
    seen: set[str] = set()
    for path in paths:
        path = Path(path)
        if path.name in seen:
            log.warning("%s: a file of the same name was already taken from another folder", path)
            continue
        seen.add(path.name)
        status, size = known.get(path.name, (None, None))
        if not force and status == "ingested" and size == path.stat().st_size:
            report.skipped.append(path.name)
        else:
            todo.append(path)

    pending: list[dict[str, object]] = []
    last_commit = time.monotonic()
    done = 0

    def handle(row: dict[str, object]) -> None:
        nonlocal last_commit, done
        pending.append(row)
        done += 1
        if row["status"] == "ingested":
            report.ingested.append(str(row["file_name"]))
            if row["product"] == "fg":
                report.n_frames += int(row["n_frames"] or 0)
            report.n_bytes += int(row["file_bytes"] or 0)
        else:
            report.failed[str(row["file_name"])] = str(row["error"])
        if len(pending) >= COMMIT_EVERY_FILES or time.monotonic() - last_commit > COMMIT_EVERY_S:
            _commit(db, pending, known, lazy=True)
            pending.clear()
            last_commit = time.monotonic()
        if progress is not None:
            progress(done, len(todo), report.n_frames)

    if workers == 1 or len(todo) <= 1:
        for path in todo:
            handle(prepare_file(path, db.parts.root, chunk_frames))
    else:
        with process_pool(workers, start="fork") as pool:
            futures = {pool.submit(prepare_file, p, db.parts.root, chunk_frames) for p in todo}
            try:
                for future in cf.as_completed(futures):
                    futures.discard(future)  # a handled row must not stay in memory to the end
                    handle(future.result())
            finally:
                end_workers(pool)  # a worker killed during shutdown must not hang the run
    _commit(db, pending, known)
    db.publish_pending()  # batches committed lazily since the last snapshot
    report.seconds = time.perf_counter() - started
    return report


def ingest_directory(
    db: Database,
    source: Path,
    *,
    workers: int = 2,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Ingest every guider file found (recursively) under ``source``."""
    paths = find_guider_files(Path(source))
    if not paths:
        raise UsageError(f"--from {source}: no guider files (jw*_gs-*_cal.fits) found")
    return ingest_paths(db, paths, workers=workers, force=force, progress=progress)


def ingest_many(db: Database, sources: Iterable[Path], **kwargs) -> IngestReport:
    """Ingest files from several folders or paths in one run."""
    paths: list[Path] = []
    for source in sources:
        source = Path(source)
        if not source.exists():
            raise UsageError(f"--from {source}: no such file or directory")
        found = find_guider_files(source) if source.is_dir() else [source]
        if not found:
            raise UsageError(f"--from {source}: no guider files (jw*_gs-*_cal.fits) found")
        paths.extend(found)
    return ingest_paths(db, paths, **kwargs)
