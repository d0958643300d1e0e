"""One call keeps the archive current: acquire new files, then fit, telemetry, events, stars, analyses.

``fgsarchive crawl``, ``fgsarchive ingest PROGRAM...`` and ``fgsarchive ingest --from DIR`` all run
:func:`update_archive`; only where the files come from differs (:class:`FromCrawl`,
:class:`FromPrograms`, :class:`FromFolders`). Each step does only what is new where its stage can
tell: the ingest skips files already in the archive, the fit fits only frames without a fit of the
current version, telemetry never fetches an EDB window twice, the catalog look-up asks only for
stars not yet in ``guide_star_catalog``. Events are re-derived offline (a few SQL statements) and
the analyses compute only new or changed units (``analysis.incremental.run_all_analyses``).

Every step keeps its work in the archive as it goes, so a run killed at any step is resumed by the
same command: the steps already done find nothing new, the interrupted one continues.

A remote step (telemetry, stars) that fails (EDB/GSC refused or unreachable) does not stop the
chain: the failure is reported (``on_warning`` and :attr:`UpdateReport.failures`, with the command
that re-runs it) and the offline steps go on. Nothing is printed here (``fgsarchive.cli`` draws).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .db import Database
from .errors import FgsArchiveError, MastError, SelectionError, UsageError

__all__ = [
    "ALL_STEPS",
    "OFFLINE_STEPS",
    "FromCrawl",
    "FromFolders",
    "FromPrograms",
    "StepReport",
    "UpdateReport",
    "update_archive",
]

#: The steps after the acquisition (download + ingest), in the order they run.
ALL_STEPS = ("fit", "telemetry", "events", "stars", "analyse")
#: Steps that need no network (``ingest --from`` runs only these unless asked for more).
OFFLINE_STEPS = ("fit", "events", "analyse")
#: The command that runs a step again on its own (named when a step fails).
RERUN = {
    "ingest": "the same command",
    "fit": "fgsarchive fit",
    "telemetry": "fgsarchive telemetry",
    "events": "fgsarchive events",
    "stars": "fgsarchive stars",
    "analyse": "fgsarchive analyse",
}

# (step, done, total): "download" counts bytes; "ingest", "fit" files; "telemetry" EDB windows;
# "stars" guide stars.
StepProgress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class FromFolders:
    """Local guider files (folders searched recursively, or files): ``ingest --from DIR``."""

    paths: Sequence[str | os.PathLike[str]]
    force: bool = False


@dataclass(frozen=True)
class FromPrograms:
    """Programs discovered on MAST and downloaded into the cache: ``ingest PROGRAM...``."""

    programs: Sequence[int | str]
    obs: int | None = None
    visit: int | None = None
    products: str = "fg"
    cache_dir: str | os.PathLike[str] | None = None
    force: bool = False


@dataclass(frozen=True)
class FromCrawl:
    """Every public program with guide-star data, by date windows: ``crawl``."""

    since_mjd: float | None = None
    until_mjd: float | None = None
    window_days: float = 7.0
    limit: int | None = None
    products: str = "fg"
    cache_dir: str | os.PathLike[str] | None = None
    refresh: bool = False


Source = FromFolders | FromPrograms | FromCrawl


@dataclass
class StepReport:
    """One step of a run: what it did (counts by name), how long it took (s), or why it did not run."""

    step: str
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # why the step did not run (opted out, nothing to do)
    error: str | None = None  # one line: why the step failed (the others went on)
    exit_code: int = 0  # of the failure (errors.ExitCode), 0 when it did not fail
    detail: Any = None  # the stage's own report (CrawlReport, IngestReport, FitReport, ...)

    @property
    def rerun(self) -> str:
        """The command that runs this step again on its own."""
        return RERUN.get(self.step, "the same command")


@dataclass
class UpdateReport:
    """What :func:`update_archive` did, step by step (acquisition first), in run order."""

    steps: dict[str, StepReport] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failures(self) -> dict[str, StepReport]:
        """The steps that failed (the others, and everything kept before, stand)."""
        return {k: s for k, s in self.steps.items() if s.error is not None}

    @property
    def acquired(self) -> Any:
        """The acquisition's own report: CrawlReport (crawl, programs) or IngestReport (folders)."""
        step = self.steps.get("ingest")
        return None if step is None else step.detail


def _resolve_steps(steps: Iterable[str] | None, source: Source | None) -> tuple[str, ...]:
    if steps is None:
        steps = OFFLINE_STEPS if isinstance(source, FromFolders | None) else ALL_STEPS
    chosen = tuple(dict.fromkeys(str(s) for s in steps))
    unknown = [s for s in chosen if s not in ALL_STEPS]
    if unknown:
        raise UsageError(
            f"unknown step(s) {', '.join(unknown)}: choose from {', '.join(ALL_STEPS)}"
        )
    return chosen


def update_archive(
    db: Database,
    source: Source | None = None,
    *,
    steps: Iterable[str] | None = None,
    client: Any = None,
    config: Any = None,
    workers: int = 2,
    scheduler: str | None = None,
    min_sigma: float = 5.0,
    progress: StepProgress | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> UpdateReport:
    """Bring new files through the whole chain: acquire (``source``), then the chosen ``steps``.

    ``steps``: a subset of :data:`ALL_STEPS` (default: all of them for MAST sources, the offline
    ones, :data:`OFFLINE_STEPS`, for :class:`FromFolders` and for ``source=None``). ``client`` (a
    :class:`~fgsarchive.mast.MastClient`) or ``config`` (a ``MastConfig``) reach MAST, the EDB and
    the GSC; one client serves every step. ``on_step`` gets each step's report as it ends.

    The acquisition raises as its stage does (:class:`UsageError`, :class:`MastUnavailableError`
    when discovery fails: nothing else runs). A later step that fails with an fgsarchive error is
    recorded in its :class:`StepReport` (``error``, ``exit_code``; ``on_warning`` names the command
    that re-runs it) and the chain goes on; the caller decides the exit code. A step with nothing
    to work on (:class:`SelectionError`, e.g. the analyses of an archive without fits) is skipped
    with that reason.
    """
    chosen = _resolve_steps(steps, source)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    started = time.perf_counter()
    report = UpdateReport()
    remote_needed = isinstance(source, FromPrograms | FromCrawl) or any(
        s in chosen for s in ("telemetry", "stars")
    )
    own_client = None
    if client is None and remote_needed:
        from .mast import MastClient

        own_client = client = MastClient(config) if config is not None else MastClient()

    def finish(step: StepReport) -> None:
        report.steps[step.step] = step
        if step.error is not None and on_warning is not None:
            on_warning(
                f"{step.step} step failed ({step.error}); what came before is kept: "
                f"run `{step.rerun}` to do it"
            )
        if on_step is not None:
            on_step(step)

    try:
        if source is not None:
            finish(_acquire(db, source, client, workers, progress))
        for name in ALL_STEPS:
            if name not in chosen:
                finish(StepReport(name, skipped="not asked for"))
                continue
            t = time.perf_counter()
            step = StepReport(name)
            try:
                _STEPS[name](step, db, client, workers, scheduler, min_sigma, progress, on_warning)
            except SelectionError as exc:  # nothing to work on: analyse before any fit, or
                step.skipped = str(exc)  # no series long enough (the archive is not wrong)
            except FgsArchiveError as exc:
                step.error = str(exc)
                step.exit_code = int(exc.exit_code)
            step.seconds = time.perf_counter() - t
            finish(step)
    finally:
        if own_client is not None:
            own_client.close()
    report.seconds = time.perf_counter() - started
    return report


# --------------------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------------------


def _acquire(
    db: Database, source: Source, client: Any, workers: int, progress: StepProgress | None
) -> StepReport:
    t = time.perf_counter()
    step = StepReport("ingest")
    if isinstance(source, FromFolders):
        from .ingest import ingest_many

        def files(done: int, total: int, frames: int) -> None:
            if progress is not None:
                progress("ingest", done, total)

        ing = ingest_many(
            db, [Path(p) for p in source.paths], workers=workers, force=source.force, progress=files
        )
        step.detail = ing
    else:
        from .crawl import crawl, ingest_programs

        if isinstance(source, FromPrograms):
            crawled = ingest_programs(
                db,
                source.programs,
                client=client,
                obs=source.obs,
                visit=source.visit,
                products=source.products,
                cache_dir=source.cache_dir,
                workers=workers,
                force=source.force,
                progress=progress,
            )
        else:
            crawled = crawl(
                db,
                client=client,
                since_mjd=source.since_mjd,
                until_mjd=source.until_mjd,
                window_days=source.window_days,
                limit=source.limit,
                products=source.products,
                cache_dir=source.cache_dir,
                workers=workers,
                refresh=source.refresh,
                progress=progress,
            )
        step.detail = crawled
        ing = crawled.ingest
        step.counts = {
            "listed": crawled.listed,
            "downloaded": len(crawled.downloaded),
            "cached": len(crawled.cached),
            "download_failed": len(crawled.failed) - len(ing.failed),
        }
    step.counts.update(
        {
            "ingested": len(ing.ingested),
            "unchanged": len(ing.skipped),
            "failed": len(ing.failed),
            "frames": ing.n_frames,
        }
    )
    step.seconds = time.perf_counter() - t
    return step


def _step_fit(step, db, client, workers, scheduler, min_sigma, progress, on_warning) -> None:
    from .fit.runner import fit_archive

    if not db.path.exists():
        step.skipped = "no archive yet"
        return

    def files(done: int, total: int, frames: int) -> None:
        if progress is not None:
            progress("fit", done, total)

    fitted = fit_archive(db, workers=workers, scheduler=scheduler, progress=files)
    step.detail = fitted
    step.counts = {
        "files": fitted.files,
        "frames": fitted.frames,
        "already_fitted": fitted.skipped_files,
        "failed": len(fitted.failed),
    }
    if fitted.failed:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(fitted.failed.items()))
        step.error = f"{len(fitted.failed)} file(s) could not be fitted: {names}"
        step.exit_code = 1


def _step_telemetry(step, db, client, workers, scheduler, min_sigma, progress, on_warning) -> None:
    from .telemetry import fetch_telemetry

    if not db.path.exists():
        step.skipped = "no archive yet"
        return

    def windows(done: int, total: int) -> None:
        if progress is not None:
            progress("telemetry", done, total)

    try:
        tel = fetch_telemetry(db, client, progress=windows, warn=on_warning)
    except MastError as exc:  # refused (EDB needs a token with EDB rights) or unreachable
        step.error = str(exc)
        step.exit_code = int(exc.exit_code)
        return
    step.detail = tel
    step.counts = {
        "fetched_windows": tel.fetched_windows,
        "cached_windows": tel.cached_windows,
        "records": tel.rows,
        "unknown_mnemonics": len(tel.unknown),
    }


def _step_events(step, db, client, workers, scheduler, min_sigma, progress, on_warning) -> None:
    from .telemetry import derive_events

    if not db.path.exists():
        step.skipped = "no archive yet"
        return
    step.counts = derive_events(db)


def _step_stars(step, db, client, workers, scheduler, min_sigma, progress, on_warning) -> None:
    from .guidestars import lookup_stars

    if not db.path.exists():
        step.skipped = "no archive yet"
        return

    def stars(done: int, total: int) -> None:
        if progress is not None:
            progress("stars", done, total)

    try:
        found = lookup_stars(db, client, progress=stars, warn=on_warning)
    except MastError as exc:  # the GSC down after the retries: what was looked up is stored
        step.error = str(exc)
        step.exit_code = int(exc.exit_code)
        return
    step.detail = found
    step.counts = found.counts


def _step_analyse(step, db, client, workers, scheduler, min_sigma, progress, on_warning) -> None:
    from .analysis.incremental import run_all_analyses

    if not db.path.exists():
        step.skipped = "no archive yet"
        return
    results = run_all_analyses(
        db, min_sigma=min_sigma, workers=workers, scheduler=scheduler, on_warning=on_warning
    )
    step.detail = results
    step.counts = {
        "anomalies": results.anomalies.height,
        "periodogram_peaks": results.peaks.height,
        "variable_stars": results.variability.height,
        "units_computed": results.units.units_computed if results.units is not None else 0,
    }


_STEPS: dict[str, Callable[..., None]] = {
    "fit": _step_fit,
    "telemetry": _step_telemetry,
    "events": _step_events,
    "stars": _step_stars,
    "analyse": _step_analyse,
}
