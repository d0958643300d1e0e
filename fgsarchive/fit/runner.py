"""``fgsarchive fit``: every frame of the archive fitted, in parallel, resumably.

The unit of work is one fine-guide file (one guide-star segment). A worker reads that file's
frames part, fits it in chunks (Gaussian LM, moments quick fit, background, apertures and the
SNR-optimised pixel mask), and returns Arrow tables; the main process writes them as Parquet parts
``fits/``, ``quickfits/``, ``photometry/`` named ``<file>.v<fit_version>.parquet`` (atomic rename).
A part that exists is finished work, so a killed fit re-run fits only what is missing. Workers are a
process pool on one machine, or a Dask cluster when a scheduler address is given; the archive is
written only by the main process.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..choices import FIT_PRODUCTS
from ..db import Database
from ..errors import ArchiveError, SelectionError, UsageError
from ..storage import PARQUET_DATASETS, PartStore, part_name, write_parquet_atomic
from ..workers import dask_client, dask_completed, end_workers, process_pool
from .model import fit_gaussian_stack, quick_fit_stack
from .noise import NO_MODEL, SAMPLE_FRAMES, NoiseModel, noise_from_frames
from .photometry import (
    DEFAULT_RADII,
    aperture_photometry_stack,
    background_stack,
    masked_flux,
    optimal_mask,
)

log = logging.getLogger(__name__)

#: Bump when the fitting algorithm changes: parts of older versions are kept, new ones computed.
#: 2: fits weighted by the file's pixel noise model, absolute errors, ``chi2_red``.
FIT_VERSION = 2
WHATS = FIT_PRODUCTS  # what --what may name (listed in choices.py)
DATASET = {"gauss": "fits", "quick": "quickfits", "phot": "photometry"}
CHUNK_FRAMES = 65536
#: The SNR-optimised mask of each segment is chosen on its first MASK_FRAMES frames (~2.3 h).
MASK_FRAMES = 131072


@dataclass(frozen=True)
class FitTask:
    """One file to fit: where its frames are and which tables to make."""

    file_name: str
    program: int
    frames_path: str
    dq: tuple[int, ...] | None
    what: tuple[str, ...]
    fit_version: int = FIT_VERSION
    chunk_frames: int = CHUNK_FRAMES
    n_threads: int | None = 1  # kernel threads: 1 in pool workers, None (all cores) in-process
    noise_a: float | None = None  # pixel noise model (files.noise_*); None: from the frames
    noise_b: float | None = None
    noise_source: str | None = None


@dataclass
class FitReport:
    files: int = 0
    frames: int = 0
    skipped_files: int = 0
    seconds: float = 0.0
    status_counts: dict[int, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _read_chunks(path: str, chunk_frames: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame numbers, pixels (m, 8, 8) float32)`` from a frames part."""
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=chunk_frames, columns=["frame", "pixels"]):
            frames = batch.column(0).to_numpy()
            pixels = batch.column(1).flatten().to_numpy(zero_copy_only=False)
            yield frames, pixels.reshape(-1, 8, 8)


def _pixel_mask(path: str, dq: np.ndarray | None, chunk_frames: int) -> np.ndarray | None:
    """The SNR-optimised pixel mask of one segment (None when too few frames or DQ flags all)."""
    if dq is not None and np.all(dq != 0):
        return None
    stacks, n = [], 0
    for _, pixels in _read_chunks(path, chunk_frames):
        stacks.append(pixels)
        n += len(pixels)
        if n >= MASK_FRAMES:
            break
    frames = np.concatenate(stacks)[:MASK_FRAMES]
    if dq is not None:
        frames = np.where(dq.reshape(1, 8, 8) != 0, np.nan, frames)
    try:
        mask, _, _ = optimal_mask(frames)
    except ValueError:
        return None
    return mask


def _noise_model(task: FitTask, dq: np.ndarray | None) -> NoiseModel:
    """The file's noise model as ingest recorded it; from its frames when it recorded none.

    NULL columns (archives ingested before schema version 2) are estimated here from the
    frames part; ``none`` stays none (the fit is then unweighted, its errors relative).
    """
    if task.noise_source == "none":
        return NO_MODEL
    if (
        task.noise_source is not None
        and task.noise_a is not None
        and task.noise_b is not None
        and math.isfinite(task.noise_a)
        and math.isfinite(task.noise_b)
    ):
        return NoiseModel(task.noise_a, task.noise_b, task.noise_source)
    _, pixels = next(iter(_read_chunks(task.frames_path, SAMPLE_FRAMES)), (None, None))
    if pixels is None:
        return NO_MODEL
    return noise_from_frames(pixels, dq) or NO_MODEL


def fit_file(task: FitTask) -> dict[str, pa.Table]:
    """Fit one file's frames; return ``{dataset: table}``. Pure: reads the part, writes nothing."""
    dq = None if task.dq is None else np.asarray(task.dq, dtype=np.uint32).reshape(8, 8)
    noise = _noise_model(task, dq).params if "gauss" in task.what or "phot" in task.what else None
    mask = _pixel_mask(task.frames_path, dq, task.chunk_frames) if "phot" in task.what else None
    out: dict[str, list[pa.Table]] = {DATASET[w]: [] for w in task.what}
    for frame_no, pixels in _read_chunks(task.frames_path, task.chunk_frames):
        m = len(frame_no)
        keys = {
            "file_name": pa.array([task.file_name] * m, pa.string()),
            "frame": pa.array(frame_no, pa.int32()),
        }
        version = {"fit_version": pa.array(np.full(m, task.fit_version, np.int16))}
        gauss = None
        if "gauss" in task.what or "phot" in task.what:
            gauss = fit_gaussian_stack(pixels, dq=dq, noise=noise, n_threads=task.n_threads)
        if "gauss" in task.what:
            out["fits"].append(pa.table({**keys, **gauss.to_dict(), **version}))
        if "quick" in task.what:
            quick = quick_fit_stack(
                pixels, mask=None if dq is None else dq != 0, n_threads=task.n_threads
            )
            out["quickfits"].append(pa.table({**keys, **quick.to_dict(), **version}))
        if "phot" in task.what:
            background = background_stack(pixels, n_threads=task.n_threads)
            x = np.where(np.isfinite(gauss.x_mean), gauss.x_mean, 3.5)
            y = np.where(np.isfinite(gauss.y_mean), gauss.y_mean, 3.5)
            apertures = aperture_photometry_stack(
                pixels, x, y, DEFAULT_RADII, background=background, n_threads=task.n_threads
            )
            columns = {f"flux_r{i + 1}": apertures[:, i] for i in range(len(DEFAULT_RADII))}
            flux_opt = masked_flux(pixels, mask) if mask is not None else np.full(m, np.nan)
            n_opt = int(mask.sum()) if mask is not None else 0
            out["photometry"].append(
                pa.table(
                    {
                        **keys,
                        "background": background,
                        **columns,
                        "flux_opt": flux_opt,
                        "n_opt_pixels": np.full(m, n_opt, np.int16),
                        **version,
                    }
                )
            )
    return {name: pa.concat_tables(tables) for name, tables in out.items() if tables}


def _plan(
    db: Database, program: int | None, what: Sequence[str], fit_version: int
) -> tuple[list[FitTask], int]:
    with db.reader() as con:
        rows = db.run(con, "fit/candidates", {"program": program}).fetchall()
    if program is not None and not rows:
        raise SelectionError(
            f"program {program} has no ingested fine-guide frames: run `fgsarchive ingest {program}` first"
        )
    tasks, skipped = [], 0
    for file_name, prog, _n, dq, noise_a, noise_b, noise_source in rows:
        part = part_name(file_name)
        todo = tuple(
            w
            for w in what
            if not db.parts.part_path(DATASET[w], prog, f"{part}.v{fit_version}").exists()
        )
        frames_path = db.parts.part_path("frames", prog, part)
        if not todo:
            skipped += 1
            continue
        tasks.append(
            FitTask(
                file_name,
                int(prog),
                str(frames_path),
                tuple(dq) if dq else None,
                todo,
                fit_version,
                noise_a=noise_a,
                noise_b=noise_b,
                noise_source=noise_source,
            )
        )
    return tasks, skipped


def _write(db: Database, task: FitTask, tables: dict[str, pa.Table]) -> None:
    _write_parts(db.parts, task, tables)


def _write_parts(parts: PartStore, task: FitTask, tables: dict[str, pa.Table]) -> None:
    part = f"{part_name(task.file_name)}.v{task.fit_version}"
    for dataset, table in tables.items():
        parts.ensure_dataset(dataset, table.schema)
        write_parquet_atomic(
            parts.part_path(dataset, task.program, part),
            table,
            table.schema,
            statistics_columns=("file_name", "frame", "fit_version"),
        )


@dataclass(frozen=True)
class _Written:
    """What a pool worker fitted and wrote itself: small, so it crosses the result pipe at once."""

    rows: int
    status_counts: dict[int, int]


def _summary(tables: dict[str, pa.Table]) -> _Written:
    counts: dict[int, int] = {}
    if "fits" in tables:
        values, n = np.unique(tables["fits"].column("status").to_numpy(), return_counts=True)
        counts = dict(zip(values.tolist(), n.tolist(), strict=True))
    return _Written(next(iter(tables.values())).num_rows if tables else 0, counts)


def fit_and_write(task: FitTask, parts_root: str) -> _Written:
    """Pool task: fit one file and write its parts (atomic renames) here, in the worker.

    Sending the tables back instead (megabytes per file) hung the run when a worker was killed
    in the middle of sending them: CPython's pool then waits forever for the rest of the message.
    """
    tables = fit_file(task)
    _write_parts(PartStore(Path(parts_root)), task, tables)
    return _summary(tables)


def fit_archive(
    db: Database,
    *,
    program: int | None = None,
    what: Sequence[str] = WHATS,
    workers: int = 2,
    scheduler: str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    fit_version: int = FIT_VERSION,
) -> FitReport:
    """Fit every frame that has no fit of ``fit_version`` yet; return counts and timing.

    ``scheduler``: None for a local process pool of ``workers``; ``"local"`` for a local Dask
    cluster of ``workers`` processes; ``"tcp://host:8786"`` for a running Dask scheduler.
    """
    what = tuple(dict.fromkeys(what))
    unknown = [w for w in what if w not in WHATS]
    if unknown or not what:
        raise UsageError(f"--what {','.join(what)}: choose from {', '.join(WHATS)}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    if not db.path.exists():
        raise ArchiveError(f"no archive at {db.path}: run `fgsarchive ingest` first")
    started = time.perf_counter()
    db.parts.remove_stale_tmp()  # what killed fits left half-written
    tasks, skipped = _plan(db, program, what, fit_version)
    report = FitReport(skipped_files=skipped)
    total = len(tasks)

    def handle(task: FitTask, tables: dict[str, pa.Table] | _Written) -> None:
        if not isinstance(tables, _Written):  # computed here or on Dask: written here
            _write(db, task, tables)
            tables = _summary(tables)
        report.files += 1
        report.frames += tables.rows
        for v, c in tables.status_counts.items():
            report.status_counts[v] = report.status_counts.get(v, 0) + c
        if progress is not None:
            progress(report.files, total, report.frames)

    if not tasks:
        # a run killed after writing its parts, before publishing: its views are missing
        if db.snapshot_lacks_views(PARQUET_DATASETS):
            db.publish()
        report.seconds = time.perf_counter() - started
        return report
    if scheduler is not None:
        _run_dask(tasks, scheduler, workers, handle, report)
    elif workers == 1:
        from dataclasses import replace

        for task in (replace(t, n_threads=None) for t in tasks):
            _guarded(task, lambda t=task: fit_file(t), handle, report)
    else:
        with process_pool(workers, preload="fgsarchive.fit.runner") as pool:
            root = str(db.parts.root)
            futures = {pool.submit(fit_and_write, task, root): task for task in tasks}
            try:
                for future in cf.as_completed(futures):
                    # pop: a handled future must not stay in memory until the end of the run
                    _guarded(futures.pop(future), future.result, handle, report)
            finally:
                end_workers(pool)  # a worker killed during shutdown must not hang the run
    if report.files:  # readers' snapshot gets views of new datasets (fits, ...) and their schemas
        db.publish()
    report.seconds = time.perf_counter() - started
    return report


def _guarded(
    task: FitTask, compute: Callable[[], dict[str, pa.Table]], handle, report: FitReport
) -> None:
    """A file whose frames vanished or broke is reported, never half-written."""
    try:
        tables = compute()
    except FileNotFoundError:
        report.failed[task.file_name] = "its frames are gone from the archive: re-ingest the file"
        return
    except (OSError, pa.ArrowException, ValueError) as exc:
        report.failed[task.file_name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return
    handle(task, tables)


def _run_dask(
    tasks: list[FitTask], scheduler: str, workers: int, handle, report: FitReport
) -> None:
    with dask_client(scheduler, workers) as client:
        for task, future in dask_completed(client, fit_file, tasks):
            _guarded(task, future.result, handle, report)
            future.release()  # each result is freed once handled
