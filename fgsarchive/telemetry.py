"""Engineering telemetry (EDB) for the time spans the archive holds, and events derived from it.

:func:`fetch_telemetry` asks the EDB (through :meth:`MastClient.fetch_edb`) for each mnemonic over
the archive's guide periods (``files.data_start_mjd``/``data_end_mjd``, segments merged, padded by
a minute, overlapping spans merged) in windows of at most an hour. Each fetched window is recorded
in ``telemetry_windows`` and never fetched again: a later run asks only for time not yet covered.

:func:`derive_events` fills ``events`` without any network, from ``files``, the ``pointing`` view
and whatever telemetry exists; it replaces its own kinds on every run (never duplicates):

* ``hga_move``: SA_ZHGAUPST from a MOVING record to the next FINISHED one;
* ``filter_wheel_move``: INIS_FWMTRCURR above :data:`FW_CURRENT_THRESHOLD_A`;
* ``file_boundary``: between consecutive fine-guide files (segments) of a program;
* ``guide_star_change``: such a boundary where ``gs_id`` changes;
* ``hga_motion_pointing``: runs of POINTING rows with ``HGA_motion`` '0' or 'MOVING'.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .clock import utcnow
from .db import Database
from .errors import UsageError
from .mast import EdbMnemonicError, MastClient, NoResultsWarning

__all__ = [
    "DEFAULT_MNEMONICS",
    "DERIVED_KINDS",
    "FW_CURRENT_THRESHOLD_A",
    "TelemetryReport",
    "derive_events",
    "fetch_telemetry",
    "plan_telemetry_fetches",
    "telemetry_spans",
]

log = logging.getLogger(__name__)

#: Fetched by ``fgsarchive telemetry`` when no mnemonic is named: HGA status, NIRISS filter-wheel
#: motor current, and the guiding telemetry of docs §4.2 (guide-star centroid X/Y, FGS detector).
DEFAULT_MNEMONICS = (
    "SA_ZHGAUPST",
    "INIS_FWMTRCURR",
    "SA_ZFGGSPOSX",
    "SA_ZFGGSPOSY",
    "SA_ZFGDETID",
)
#: A filter-wheel move draws ~0.3-0.4 A through the NIRISS filter-wheel motor; at rest the current
#: reads a few mA. Records above 0.1 A are taken as "moving" (our choice, documented in
#: docs/crawler.md).
FW_CURRENT_THRESHOLD_A = 0.1
#: Records of INIS_FWMTRCURR further apart than this never join one move (s).
FW_MAX_GAP_S = 300.0
PAD_S = 60.0  # padding on each side of a guide period (s)
WINDOW_S = 3600.0  # longest EDB request window (s)
DERIVED_KINDS = (
    "hga_move",
    "filter_wheel_move",
    "file_boundary",
    "guide_star_change",
    "hga_motion_pointing",
)
_MIN_PIECE_DAYS = 1e-6  # ignore uncovered slivers shorter than 0.086 s
_COMMIT_WINDOWS = 16

ROWS_SCHEMA = pa.schema(
    [
        ("mnemonic", pa.string()),
        ("time_mjd", pa.float64()),
        ("value", pa.float64()),
        ("value_text", pa.string()),
        ("is_bracket", pa.bool_()),
    ]
)
WINDOWS_SCHEMA = pa.schema(
    [
        ("mnemonic", pa.string()),
        ("start_mjd", pa.float64()),
        ("end_mjd", pa.float64()),
        ("n_rows", pa.int32()),
        ("fetched_at", pa.timestamp("us")),
    ]
)


@dataclass
class TelemetryReport:
    """What :func:`fetch_telemetry` did."""

    mnemonics: list[str] = field(default_factory=list)
    fetched_windows: int = 0
    cached_windows: int = 0  # windows covered by earlier runs (no request)
    rows: int = 0  # EDB records received
    unknown: dict[str, str] = field(default_factory=dict)  # mnemonic -> one-line reason
    spans: int = 0  # merged guide-period spans of the archive


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------


def _merge(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def telemetry_spans(
    db: Database, *, program: int | None = None, pad_s: float = PAD_S
) -> list[tuple[float, float]]:
    """The archive's guide periods (MJD UTC), each padded by ``pad_s``, overlapping ones merged."""
    if not db.path.exists():
        return []
    pad = pad_s / 86400.0
    with db.reader() as con:
        rows = db.run(con, "telemetry/spans", {"program": program}).fetchall()
    return _merge([(r[2] - pad, r[3] + pad) for r in rows if r[3] >= r[2]])


def _subtract(
    span: tuple[float, float], covered: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    pieces = [span]
    for cs, ce in covered:
        nxt = []
        for s, e in pieces:
            if ce <= s or cs >= e:
                nxt.append((s, e))
                continue
            if cs > s:
                nxt.append((s, cs))
            if ce < e:
                nxt.append((ce, e))
        pieces = nxt
    return [(s, e) for s, e in pieces if e - s > _MIN_PIECE_DAYS]


def plan_telemetry_fetches(
    needed: Sequence[tuple[float, float]],
    covered: Sequence[tuple[float, float]] = (),
    window_s: float = WINDOW_S,
) -> list[tuple[float, float]]:
    """The EDB requests to make: windows of at most ``window_s`` that cover ``needed`` minus
    ``covered`` (telemetry already stored), MJD UTC."""
    if not window_s > 0:
        raise UsageError(f"telemetry window must be positive (got {window_s} s)")
    step = window_s / 86400.0
    covered = _merge(covered)
    out: list[tuple[float, float]] = []
    for span in _merge(needed):
        for s, e in _subtract(span, covered):
            n = max(1, int(np.ceil((e - s) / step - 1e-9)))
            edges = np.linspace(s, e, n + 1)
            out.extend((float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True))
    return out


# --------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------


def _store(db: Database, rows: list[dict[str, Any]], windows: list[dict[str, Any]]) -> None:
    if not windows:
        return
    with db.writer() as con:
        if rows:
            table = pa.Table.from_pylist(rows, schema=ROWS_SCHEMA)
            db.run(con, "telemetry/unbracket", new_rows=table)
            db.run(con, "telemetry/insert", new_rows=table)
        db.run(
            con,
            "telemetry/windows_insert",
            new_windows=pa.Table.from_pylist(windows, schema=WINDOWS_SCHEMA),
        )


def fetch_telemetry(
    db: Database,
    client: MastClient,
    mnemonics: Sequence[str] | None = None,
    *,
    program: int | None = None,
    window_s: float = WINDOW_S,
    pad_s: float = PAD_S,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> TelemetryReport:
    """Fetch EDB ``mnemonics`` (default :data:`DEFAULT_MNEMONICS`) for the archive's time spans.

    Windows already in ``telemetry_windows`` are not fetched again. An unknown mnemonic is reported
    (``warn``, and in the report) and the others continue. :class:`MastAuthError` and
    :class:`MastUnavailableError` propagate after what was fetched so far has been stored.
    """
    names = [str(m).strip().upper() for m in (mnemonics or DEFAULT_MNEMONICS)]
    names = list(dict.fromkeys(n for n in names if n))
    report = TelemetryReport(mnemonics=names)
    needed = telemetry_spans(db, program=program, pad_s=pad_s)
    report.spans = len(needed)
    if not needed:
        return report
    plans: dict[str, list[tuple[float, float]]] = {}
    with db.reader() as con:
        for name in names:
            covered = [
                (r[0], r[1])
                for r in db.run(con, "telemetry/windows_get", {"mnemonic": name}).fetchall()
            ]
            plans[name] = plan_telemetry_fetches(needed, covered, window_s)
            full = len(plan_telemetry_fetches(needed, (), window_s))
            report.cached_windows += max(0, full - len(plans[name]))
    total = sum(len(p) for p in plans.values())
    done = 0
    rows: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    try:
        for name in names:
            for start, end in plans[name]:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", NoResultsWarning)
                        samples = client.fetch_edb(name, start, end)
                except EdbMnemonicError as exc:
                    report.unknown[name] = str(exc)
                    if warn is not None:
                        why = "unknown to the EDB" if "unknown" in str(exc) else str(exc)
                        warn(f"EDB mnemonic {name} skipped ({why}); the others continue")
                    done += len(plans[name])
                    break
                rows.extend(
                    {
                        "mnemonic": name,
                        "time_mjd": s.time_mjd,
                        "value": s.value,
                        "value_text": s.value_text,
                        "is_bracket": s.is_bracket,
                    }
                    for s in samples
                )
                windows.append(
                    {
                        "mnemonic": name,
                        "start_mjd": start,
                        "end_mjd": end,
                        "n_rows": len(samples),
                        "fetched_at": utcnow(),
                    }
                )
                report.fetched_windows += 1
                report.rows += len(samples)
                done += 1
                if progress is not None:
                    progress(done, total)
                if len(windows) >= _COMMIT_WINDOWS:
                    _store(db, rows, windows)
                    rows, windows = [], []
    finally:
        _store(db, rows, windows)
    return report


# --------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------


def derive_events(
    db: Database,
    *,
    threshold_a: float = FW_CURRENT_THRESHOLD_A,
    max_gap_s: float = FW_MAX_GAP_S,
    pad_s: float = PAD_S,
) -> dict[str, int]:
    """(Re)derive the events of :data:`DERIVED_KINDS` offline; returns ``{kind: n_events}``."""
    if not db.path.exists():
        return {}
    params_edb = {"pad_days": pad_s / 86400.0}
    with db.writer(views=True) as con:
        db.run(con, "events/delete", {"kinds": list(DERIVED_KINDS)})
        db.run(con, "events/hga_move", params_edb)
        db.run(
            con,
            "events/filter_wheel_move",
            {**params_edb, "threshold_a": threshold_a, "max_gap_days": max_gap_s / 86400.0},
        )
        db.run(con, "events/file_boundary")
        db.run(con, "events/guide_star_change")
        if db.parts.has_dataset("pointing"):
            db.run(con, "events/hga_motion_pointing")
        counts = dict(db.run(con, "events/counts").fetchall())
    return {kind: int(counts.get(kind, 0)) for kind in DERIVED_KINDS}
