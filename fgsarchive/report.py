"""Static HTML reports: one self-contained page per program, and an index over the archive.

Pages need no network and no files beside them: figures are embedded as base64 PNG and the style
is inline. A section whose table a later stage has not filled yet says which command fills it.

>>> from fgsarchive import Archive
>>> from fgsarchive.report import write_program_report
>>> write_program_report(Archive("fgsarchive.duckdb"), 1534, "report/")   # report/program-1534.html
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from . import __version__
from . import plots as P
from .archive import Archive
from .errors import FILLED_BY, FgsArchiveError, NotComputedError, SelectionError, UsageError

log = logging.getLogger(__name__)

__all__ = ["write_program_report", "write_archive_report", "ReportResult", "MAX_VISITS"]

#: Visits per program that get their own figures (the rest are listed in the visits table).
MAX_VISITS = 8
#: Periodogram parameters that measure the star's light (their peaks pick the report's figure).
STARLIGHT_PARAMETERS = ("flux_opt", "flux", "amplitude")
Progress = Callable[[int, int, str], None]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1280px; padding: 1em 2em; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
h3 { margin-bottom: 0.3em; }
.meta { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.text { text-align: left; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.3em 0; }
.missing { background: #fff7e0; border-left: 4px solid #e0a800; padding: 0.5em 1em; }
.none { color: #666; font-style: italic; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
nav a { margin-right: 1em; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


@dataclass
class ReportResult:
    """What a report run wrote: pages, figures and time taken (s)."""

    pages: list[Path] = field(default_factory=list)
    figures: int = 0
    seconds: float = 0.0
    missing: set[str] = field(default_factory=set)


# --- html helpers ------------------------------------------------------------------------------------
def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value == value:
        if column.endswith("_mjd"):
            return f"{value:.6f}"
        if column == "fap" or column.endswith("_fap"):
            return P.format_fap(value)
        if column in ("ra", "dec", "cat_ra", "cat_dec", "gs_ra", "gs_dec"):
            return f"{value:.6f}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        if value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.6g}"
        return f"{value:.4g}" if abs(value) < 1e-3 else f"{value:.10g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value[:8]) + (" …" if len(value) > 8 else "")
    return str(value)


def table_html(df: pl.DataFrame, *, max_rows: int = 200, columns: list[str] | None = None) -> str:
    """An HTML table of a DataFrame (escaped; numbers right-aligned, text left)."""
    if columns is not None:
        df = df.select([c for c in columns if c in df.columns])
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    text_cols = {
        c
        for c, t in zip(df.columns, df.dtypes, strict=True)
        if t in (pl.String, pl.Boolean) or isinstance(t, pl.List)
    }
    rows = []
    for row in df.head(max_rows).iter_rows(named=True):
        cells = "".join(
            f'<td class="text">{_esc(_fmt(v, c))}</td>'
            if c in text_cols
            else f"<td>{_esc(_fmt(v, c))}</td>"
            for c, v in row.items()
        )
        rows.append(f"<tr>{cells}</tr>")
    more = (
        f'<p class="none">… {df.height - max_rows} more rows (query the archive for all)</p>'
        if df.height > max_rows
        else ""
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{more}"
    )


def figure_html(fig: Figure, alt: str, *, dpi: int = 90) -> str:
    """A Figure as an ``<img>`` with the PNG embedded (base64)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def missing_html(table: str, what: str) -> str:
    command = FILLED_BY.get(table, "the stage that fills it")
    return (
        f'<p class="missing">{_esc(what)}: not computed yet (no <code>{_esc(table)}</code> rows): '
        f"run <code>{_esc(command)}</code></p>"
    )


def _page(title: str, body: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n"
        f'<hr><p class="meta">made by fgsarchive {__version__} on {stamp}; '
        'times are MJD UTC, fluxes DN/s, centroids and widths pixels (0.069"/px).</p>'
        "</body></html>\n"
    )


def _write(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def _filled(arc: Archive, tables: set[str], table: str) -> bool:
    """A later stage's table exists and has rows."""
    if table not in tables:
        return False
    with arc.db.reader() as con:
        return arc.db.count_rows(con, table) > 0


# --- per-program page -------------------------------------------------------------------------------
class _Figures:
    """Makes figures one by one, counting them and reporting progress; a failure becomes a note."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done = 0
        self.total = total
        self.progress = progress

    def make(self, label: str, fn: Callable[[], Figure]) -> str:
        try:
            fig = fn()
            text = figure_html(fig, label)
        except NotComputedError as exc:
            text = missing_html(exc.table, label)
        except SelectionError as exc:
            text = f'<p class="none">{_esc(label)}: {_esc(exc)}</p>'
        except FgsArchiveError as exc:
            text = f'<p class="missing">{_esc(label)}: {_esc(exc)}</p>'
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, label)
        return text


@dataclass
class _ProgramPage:
    """What every section of one program's page reads: the archive, the selection, the tables
    the later stages filled, and the figure maker (counts and progress)."""

    arc: Archive
    program: int
    filled: dict[str, bool]
    visits: pl.DataFrame
    shown: pl.DataFrame
    files: pl.DataFrame
    stars: pl.DataFrame
    anomalies: pl.DataFrame
    with_anomalies: set[str]
    files_of: dict[tuple[Any, Any], set[str]]
    figs: _Figures


def _program_inputs(
    arc: Archive, program: int, max_visits: int, progress: Progress | None
) -> _ProgramPage:
    """Read what the page shows once: visits (the first ``max_visits`` get figures), files, guide
    stars, anomalies, and the number of figures to come (for progress)."""
    tables = arc.tables()
    filled = {t: _filled(arc, tables, t) for t in FILLED_BY}
    visits = arc.visits(program)
    files = arc.files(program)
    shown = visits.head(max_visits)
    anomalies = arc.anomalies(program) if filled["anomalies"] else pl.DataFrame()
    with_anomalies = set(anomalies["file_name"].to_list()) if not anomalies.is_empty() else set()
    files_of = {
        (r["observation"], r["visit"]): set(
            files.filter(
                (pl.col("observation") == r["observation"]) & (pl.col("visit") == r["visit"])
            )["file_name"].to_list()
        )
        for r in shown.iter_rows(named=True)
    }
    n_anomaly_plots = sum(1 for names in files_of.values() if names & with_anomalies)
    per_visit = 2 + int(filled["fits"])
    figs = _Figures(total=1 + per_visit * shown.height + n_anomaly_plots, progress=progress)
    return _ProgramPage(
        arc=arc,
        program=program,
        filled=filled,
        visits=visits,
        shown=shown,
        files=files,
        stars=arc.guide_stars(program),
        anomalies=anomalies,
        with_anomalies=with_anomalies,
        files_of=files_of,
        figs=figs,
    )


def _header_section(page: _ProgramPage, index_link: str | None) -> list[str]:
    """Link back to the index, title, the program's counts and time span, and the section links."""
    arc, program = page.arc, page.program
    prog = arc.programs().filter(pl.col("program") == program)
    p = prog.row(0, named=True) if prog.height else {}
    nav = f'<nav><a href="{_esc(index_link)}">← all programs</a></nav>' if index_link else ""
    return [
        nav,
        f"<h1>Program {program}: JWST FGS guide-star report</h1>",
        f'<p class="meta">{p.get("n_fg_files", 0)} fine-guide files, {p.get("n_frames", 0):,} frames, '
        f"{page.visits.height} visit(s), {page.stars.height} guide star(s); MJD {p.get('first_mjd', 0):.5f} – "
        f"{p.get('last_mjd', 0):.5f} ({P._mjd_to_utc(p['first_mjd']) if p else ''} UTC); "
        f"archive <code>{_esc(arc.path)}</code></p>",
        '<nav><a href="#visits">visits</a><a href="#stars">guide stars</a>'
        '<a href="#series">time series</a><a href="#periodogram">periodograms</a>'
        '<a href="#anomalies">anomalies</a><a href="#variability">variability</a>'
        '<a href="#files">files</a></nav>',
    ]


def _visits_section(page: _ProgramPage) -> list[str]:
    """The table of the program's visits."""
    return [
        '<h2 id="visits">Visits</h2>',
        table_html(
            page.visits.with_columns(pl.col("duration_s").round(1)),
            columns=[
                "observation",
                "visit",
                "n_files",
                "n_frames",
                "gs_ids",
                "start_mjd",
                "end_mjd",
                "duration_s",
            ],
        ),
    ]


def _stars_section(page: _ProgramPage) -> list[str]:
    """The guide stars' table and sky positions, and a note when the catalog is not matched."""
    arc, program = page.arc, page.program
    out = [
        '<h2 id="stars">Guide stars</h2>',
        table_html(
            page.stars,
            columns=[
                "gs_id",
                "ra",
                "dec",
                "fgs_mag",
                "detectors",
                "n_files",
                "n_frames",
                "first_mjd",
                "last_mjd",
                "catalog_status",
                "gaia_dr3_id",
                "gaia_g_mag",
                "j_mag",
                "variable_flag",
            ],
        ),
        page.figs.make(
            "guide-star positions", lambda: P.plot_guide_star_positions(arc, program=program)
        ),
    ]
    if not page.filled["guide_star_catalog"]:
        out.append(missing_html("guide_star_catalog", "Guide Star Catalog cross-match"))
    return out


def _series_section(page: _ProgramPage) -> list[str]:
    """Per shown visit: flux, fitted parameters, telemetry and (when any) anomaly figures."""
    arc, program, filled, figs = page.arc, page.program, page.filled, page.figs
    out = ['<h2 id="series">Time series by visit</h2>']
    if not filled["fits"]:
        out.append(missing_html("fits", "Gaussian-fit parameters (centroids, widths)"))
    if not filled["events"]:
        out.append(missing_html("events", "Observatory events (HGA, filter wheel) from telemetry"))
    for v in page.shown.iter_rows(named=True):
        sel = {"program": program, "obs": v["observation"], "visit": v["visit"]}
        out.append(
            f"<h3>Observation {v['observation']}, visit {v['visit']} "
            f"({_esc(', '.join(v['gs_ids'] or []))}; {v['n_frames']:,} frames, {v['duration_s']:.0f} s)</h3>"
        )
        out.append(
            figs.make(
                f"flux o{v['observation']} v{v['visit']}", lambda s=sel: P.plot_flux(arc, **s)
            )
        )
        if filled["fits"]:
            out.append(
                figs.make(
                    f"parameters o{v['observation']} v{v['visit']}",
                    lambda s=sel: P.plot_parameters(arc, **s),
                )
            )
        out.append(
            figs.make(
                f"telemetry o{v['observation']} v{v['visit']}",
                lambda s=sel: P.plot_telemetry(arc, **s),
            )
        )
        if page.files_of[(v["observation"], v["visit"])] & page.with_anomalies:
            out.append(
                figs.make(
                    f"anomalies o{v['observation']} v{v['visit']}",
                    lambda s=sel: P.plot_anomalies(arc, **s),
                )
            )
    if page.visits.height > page.shown.height:
        out.append(
            f'<p class="none">Figures for the first {page.shown.height} of {page.visits.height} visits; plot the others with '
            f"<code>fgsarchive plot flux --program {program} --obs N --visit N --out FILE</code>.</p>"
        )
    return out


def _periodogram_section(page: _ProgramPage) -> list[str]:
    """The most significant real peaks, then the strongest instrumental ones, and the periodogram
    of the visit with the strongest real peak (in starlight when there is one)."""
    arc, program = page.arc, page.program
    out = ['<h2 id="periodogram">Periodogram peaks</h2>']
    if not page.filled["periodogram_peaks"]:
        out.append(missing_html("periodogram_peaks", "Periodograms"))
        return out
    try:
        peaks = arc.periodogram(program).with_columns(
            pl.col("instrumental").fill_null(False).alias("instrumental")
        )
        real = peaks.filter(~pl.col("instrumental")).sort(
            ["fap", "power"], descending=[False, True], nulls_last=True
        )
        instrumental = peaks.filter(pl.col("instrumental")).sort(
            ["fap", "power"], descending=[False, True], nulls_last=True
        )
        shown_peaks = pl.concat([real.head(25), instrumental.head(max(0, 25 - real.height, 3))])
        out.append(
            f"<p>The {min(real.height, 25)} most significant of {real.height} peaks not flagged "
            f"instrumental (lowest false-alarm probability first), then the strongest of "
            f"{instrumental.height} <i>instrumental</i> peaks (lines that recur in many guide "
            "stars, or the pointing's).</p>"
        )
        out.append(
            table_html(
                shown_peaks,
                columns=[
                    "observation",
                    "visit",
                    "gs_id",
                    "parameter",
                    "rank",
                    "frequency_hz",
                    "period_s",
                    "power",
                    "fap",
                    "instrumental",
                ],
            )
        )
        # the figure: the visit of the strongest real peak in the star's own light when there
        # is one (centroid peaks are mostly the pointing's wander), else of any real peak
        starlight = real.filter(pl.col("parameter").is_in(STARLIGHT_PARAMETERS))
        pick = starlight if starlight.height else real if real.height else instrumental
        best = pick.row(0, named=True)
        match = page.files.filter(pl.col("file_name") == best["file_name"])
        if match.height:
            m = match.row(0, named=True)
            page.figs.total += 1
            out.append(
                page.figs.make(
                    "periodogram",
                    lambda m=m: P.plot_periodogram(
                        arc,
                        program=program,
                        obs=m["observation"],
                        visit=m["visit"],
                        gs_id=m["gs_id"],
                    ),
                )
            )
    except SelectionError as exc:
        out.append(f'<p class="none">{_esc(exc)}</p>')
    return out


def _anomalies_section(page: _ProgramPage) -> list[str]:
    """The program's anomalies, most significant first."""
    out = ['<h2 id="anomalies">Anomalies</h2>']
    if not page.filled["anomalies"]:
        out.append(missing_html("anomalies", "Anomalies"))
        return out
    an = page.anomalies
    if an.is_empty():
        out.append('<p class="none">No anomalies found in this program.</p>')
        return out
    out.append(
        table_html(
            an.sort("significance", descending=True, nulls_last=True)
            if "significance" in an.columns
            else an,
            columns=[
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
        )
    )
    return out


def _variability_section(page: _ProgramPage) -> list[str]:
    """The variability ranks of the program's guide stars."""
    out = ['<h2 id="variability">Variability ranks of this program\'s guide stars</h2>']
    if not page.filled["variability"]:
        out.append(missing_html("variability", "Variability ranks"))
        return out
    try:
        var = page.arc.variables(page.program)
        out.append(
            table_html(
                var,
                columns=[
                    "rank",
                    "gs_id",
                    "score",
                    "rms_ppm",
                    "expected_rms_ppm",
                    "excess",
                    "eta",
                    "skew",
                    "best_period_s",
                    "best_fap",
                    "n_visits",
                    "n_frames",
                    "fgs_mag",
                    "programs",
                ],
            )
        )
    except SelectionError as exc:
        out.append(f'<p class="none">{_esc(exc)}</p>')
    return out


def _files_section(page: _ProgramPage) -> list[str]:
    """Every guider file of the program, folded."""
    return [
        '<h2 id="files">Files</h2><details><summary>all guider files of the program</summary>',
        table_html(
            page.files,
            max_rows=2000,
            columns=[
                "file_name",
                "product",
                "observation",
                "visit",
                "segment",
                "detector",
                "gs_id",
                "data_start_mjd",
                "data_end_mjd",
                "n_frames",
                "frame_time_s",
                "status",
                "error",
            ],
        ),
        "</details>",
    ]


def program_page(
    arc: Archive,
    program: int,
    *,
    max_visits: int = MAX_VISITS,
    progress: Progress | None = None,
    index_link: str | None = None,
) -> tuple[str, ReportResult]:
    """The HTML of one program's report and what went into it: its sections in page order."""
    page = _program_inputs(arc, program, max_visits, progress)
    result = ReportResult()
    result.missing = {t for t, ok in page.filled.items() if not ok}
    out = [
        *_header_section(page, index_link),
        *_visits_section(page),
        *_stars_section(page),
        *_series_section(page),
        *_periodogram_section(page),
        *_anomalies_section(page),
        *_variability_section(page),
        *_files_section(page),
    ]
    result.figures = page.figs.done
    return _page(f"fgsarchive: program {program}", "\n".join(out)), result


def write_program_report(
    arc: Archive,
    program: int,
    out_dir: str | Path,
    *,
    max_visits: int = MAX_VISITS,
    progress: Progress | None = None,
    index_link: str | None = None,
) -> ReportResult:
    """Write ``out_dir/program-<P>.html``: a self-contained report of one program.

    Sections: visits, guide stars (table and positions), per visit the flux, Gaussian-parameter,
    telemetry-overlay and anomaly figures (first ``max_visits`` visits), top periodogram peaks,
    anomalies, variability ranks, files. Missing stage tables are named with their command.
    Example: ``write_program_report(Archive("fgsarchive.duckdb"), 1534, "report")``
    """
    started = time.perf_counter()
    text, result = program_page(
        arc, program, max_visits=max_visits, progress=progress, index_link=index_link
    )
    result.pages.append(_write(Path(out_dir) / f"program-{program}.html", text))
    result.seconds = time.perf_counter() - started
    return result


def write_archive_report(
    arc: Archive,
    out_dir: str | Path,
    *,
    max_visits: int = MAX_VISITS,
    progress: Progress | None = None,
) -> ReportResult:
    """Write ``out_dir/index.html`` (all programs, top variable guide stars) and one page per program.

    Example: ``write_archive_report(Archive("fgsarchive.duckdb"), "report")``
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    programs = arc.programs()
    if programs.is_empty():
        raise SelectionError(f"no programs in {arc.path}: ingest some files first")
    total = {"figures": 0}
    result = ReportResult()
    done_before = 0

    for prog in programs["program"].to_list():

        def relay(
            done: int, n: int, label: str, prog: int = prog, before: int = done_before
        ) -> None:
            if progress is not None:
                progress(before + done, before + n, f"program {prog}: {label}")

        part = write_program_report(
            arc, int(prog), out_dir, max_visits=max_visits, progress=relay, index_link="index.html"
        )
        done_before += part.figures
        total["figures"] += part.figures
        result.pages += part.pages
        result.missing |= part.missing
    rows = programs.with_columns(
        pl.col("program")
        .map_elements(lambda p: f"program-{p}.html", return_dtype=pl.String)
        .alias("page")
    )
    links = "".join(
        f'<tr><td><a href="{_esc(r["page"])}">{r["program"]}</a></td><td>{r["n_fg_files"]}</td>'
        f"<td>{r['n_frames']:,}</td><td>{r['n_visits']}</td><td>{r['n_guide_stars']}</td>"
        f"<td>{r['first_mjd']:.5f}</td><td>{r['last_mjd']:.5f}</td></tr>"
        for r in rows.iter_rows(named=True)
    )
    body = [
        "<h1>fgsarchive: JWST FGS guide-star archive</h1>",
        f'<p class="meta">archive <code>{_esc(arc.path)}</code>: {programs.height} program(s), '
        f"{int(programs['n_frames'].sum()):,} frames</p>",
        "<h2>Programs</h2>",
        "<table><thead><tr><th>program</th><th>fine-guide files</th><th>frames</th><th>visits</th>"
        f"<th>guide stars</th><th>first MJD</th><th>last MJD</th></tr></thead><tbody>{links}</tbody></table>",
        "<h2>Most variable guide stars</h2>",
    ]
    tables = arc.tables()
    if _filled(arc, tables, "variability"):
        body.append(
            table_html(
                arc.variables(top=25),
                columns=[
                    "rank",
                    "gs_id",
                    "score",
                    "rms_ppm",
                    "expected_rms_ppm",
                    "excess",
                    "best_period_s",
                    "best_fap",
                    "n_visits",
                    "fgs_mag",
                    "programs",
                ],
            )
        )
    else:
        body.append(missing_html("variability", "Variability ranks"))
    result.pages.insert(
        0, _write(out_dir / "index.html", _page("fgsarchive: archive", "\n".join(body)))
    )
    result.figures = total["figures"]
    result.seconds = time.perf_counter() - started
    return result
