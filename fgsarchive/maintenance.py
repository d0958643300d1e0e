"""Archive-wide checks used by tests, benchmarks and the kill-and-resume harness."""

from __future__ import annotations

from .db import Database


def archive_checksums(
    db: Database, relations: tuple[str, ...] = ("files", "frames")
) -> dict[str, tuple[int, int]]:
    """``{relation: (rows, checksum)}``: equal archives have equal checksums, whatever the row order.

    Each relation has its statement ``checksum/<relation>`` (:mod:`fgsarchive.sql`); a relation
    that does not exist yet counts as ``(0, 0)``.
    """
    out: dict[str, tuple[int, int]] = {}
    with db.reader() as con:
        names = {row[0] for row in db.run(con, "core/list_relations").fetchall()}
        for relation in relations:
            if relation not in names:
                out[relation] = (0, 0)
                continue
            rows, checksum = db.run(con, f"checksum/{relation}").fetchall()[0]
            out[relation] = (int(rows), int(checksum))
    return out
