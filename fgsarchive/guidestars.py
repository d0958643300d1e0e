"""Cross-match the archive's guide stars with the Guide Star Catalog (``fgsarchive stars``).

One request per star (:meth:`MastClient.lookup_guide_star`, ``CAT=GSC243`` pinned; a 1-arcsec cone
at the header position when the id finds nothing), cached in ``guide_star_catalog``: a star is
looked up once. The catalog not knowing a star gives ``status = 'not_found'`` (the header values in
``files`` still describe it in the ``guide_stars`` view); an error line or an HTML page gives
``status = 'error'`` and a one-line warning, and the star is asked again on a later run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .clock import utcnow
from .db import Database
from .mast import CatalogError, MastClient

__all__ = ["StarsReport", "lookup_stars"]

log = logging.getLogger(__name__)

_COMMIT_STARS = 20

CATALOG_SCHEMA = pa.schema(
    [
        ("gs_id", pa.string()),
        ("status", pa.string()),
        ("catalog", pa.string()),
        ("gaia_dr3_id", pa.string()),
        ("gaia_dr2_id", pa.string()),
        ("cat_ra", pa.float64()),
        ("cat_dec", pa.float64()),
        ("cat_epoch", pa.float64()),
        ("pm_ra", pa.float64()),
        ("pm_dec", pa.float64()),
        ("gaia_g_mag", pa.float64()),
        ("j_mag", pa.float64()),
        ("h_mag", pa.float64()),
        ("ks_mag", pa.float64()),
        ("variable_flag", pa.string()),
        ("checked_at", pa.timestamp("us")),
    ]
)


@dataclass
class StarsReport:
    """What :func:`lookup_stars` did."""

    found: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # gs_id -> one-line reason

    @property
    def counts(self) -> dict[str, int]:
        return {
            "found": len(self.found),
            "not_found": len(self.not_found),
            "error": len(self.errors),
        }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _row(gs_id: str, status: str, catalog: str, match: Mapping[str, Any] | None) -> dict:
    m = match or {}
    return {
        "gs_id": gs_id,
        "status": status,
        "catalog": catalog,
        "gaia_dr3_id": _text(m.get("gaia_dr3_id")),
        "gaia_dr2_id": _text(m.get("gaia_dr2_id")),
        "cat_ra": m.get("ra"),
        "cat_dec": m.get("dec"),
        "cat_epoch": m.get("epoch"),
        "pm_ra": m.get("pm_ra"),
        "pm_dec": m.get("pm_dec"),
        "gaia_g_mag": m.get("gaia_g_mag"),
        "j_mag": m.get("tmass_j_mag"),
        "h_mag": m.get("tmass_h_mag"),
        "ks_mag": m.get("tmass_ks_mag"),
        "variable_flag": _text(m.get("variable_flag")),
        "checked_at": utcnow(),
    }


def _store(db: Database, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = pa.Table.from_pylist(rows, schema=CATALOG_SCHEMA)
    with db.writer() as con:
        db.run(con, "stars/delete", new_stars=table)
        db.run(con, "stars/insert", new_stars=table)


def lookup_stars(
    db: Database,
    client: MastClient,
    *,
    refresh: bool = False,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> StarsReport:
    """Look up every guide star of the archive not yet in ``guide_star_catalog`` (``refresh``: all).

    :class:`CatalogError` (error line, HTML page, bad id) marks the star ``error`` and goes on;
    :class:`MastUnavailableError` (GSC down after the retries) propagates after storing what was
    done.
    """
    report = StarsReport()
    if not db.path.exists():
        return report
    with db.reader() as con:
        todo = db.run(con, "stars/todo", {"refresh": bool(refresh)}).fetchall()
    catalog = client.config.gsc_catalog
    rows: list[dict[str, Any]] = []
    try:
        for i, (gs_id, ra, dec) in enumerate(todo, 1):
            try:
                match = client.lookup_guide_star(gs_id, ra=ra, dec=dec)
            except CatalogError as exc:
                reason = str(exc)
                report.errors[gs_id] = reason
                rows.append(_row(gs_id, "error", catalog, None))
                if warn is not None:
                    warn(f"guide star {gs_id}: catalog look-up failed, retried next run: {reason}")
            else:
                if match is None:
                    report.not_found.append(gs_id)
                    rows.append(_row(gs_id, "not_found", catalog, None))
                else:
                    report.found.append(gs_id)
                    rows.append(_row(gs_id, "found", match.get("catalog") or catalog, match))
            if progress is not None:
                progress(i, len(todo))
            if len(rows) >= _COMMIT_STARS:
                _store(db, rows)
                rows = []
    finally:
        _store(db, rows)
    return report
