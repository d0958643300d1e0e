"""Every SQL statement fgsarchive runs, by name: ``"<area>/<name>"`` is the file ``<area>/<name>.sql`` here.

Areas (one folder each): ``schema`` (DDL run by every writer), ``views`` (TEMP views made on every
connection), ``core`` (the database module's own: Parquet views, row counts, relations, sandbox),
``version`` (schema version), ``migrate`` (migration steps), ``ingest``, ``crawl``, ``telemetry``,
``events``, ``stars``, ``fit``, ``analysis``, ``api`` (the Python API), ``status`` and
``checksum`` (archive checksums). The benchmarks' queries live beside them in ``scripts/sql/``.

All files are read at first use. Statements take values as bound ``$parameters``; what SQL cannot
bind (an identifier, a path in DDL, a fragment built from identifiers) is a ``{slot}`` filled only
by :func:`render`, which validates identifiers with :func:`identifier`.
"""

from __future__ import annotations

import difflib
import functools
import re
from importlib import resources

from ..errors import ArchiveError

__all__ = ["Fragment", "identifier", "names", "render", "statements", "string_literal", "text"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_SLOT = re.compile(r"\{([a-z_]+)\}")


class Fragment(str):
    """SQL text the caller composed from :func:`identifier` and fixed keywords: put in as is."""


@functools.cache
def statements() -> dict[str, str]:
    """``{"area/name": text}`` of every ``.sql`` file in this package, read once."""
    root = resources.files(__name__)
    found: dict[str, str] = {}
    for area in root.iterdir():
        if not area.is_dir() or area.name.startswith(("_", ".")):
            continue
        for entry in area.iterdir():
            if entry.name.endswith(".sql"):
                found[f"{area.name}/{entry.name[: -len('.sql')]}"] = entry.read_text()
    if not found:
        raise ArchiveError(
            f"the SQL files are missing from this installation of fgsarchive ({root})"
        )
    return dict(sorted(found.items()))


def text(name: str) -> str:
    """The statement called ``name`` (``"analysis/peaks_insert"``); unknown names fail naming it."""
    known = statements()
    try:
        return known[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ArchiveError(f"no SQL statement named {name!r} in fgsarchive/sql{hint}") from None


def names(area: str) -> list[str]:
    """The statement names of one area, sorted (e.g. every ``schema/*`` file, run in this order)."""
    found = [name for name in statements() if name.split("/", 1)[0] == area]
    if not found:
        raise ArchiveError(f"no SQL area named {area!r} in fgsarchive/sql")
    return found


def identifier(name: str) -> str:
    """``name`` double-quoted for SQL, when it is a plain lower-case identifier (else ArchiveError).

    Quoted because some column names (``offset``) are keywords; validated because identifiers
    cannot be bound as parameters and so are spliced into the text.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ArchiveError(f"invalid SQL identifier {name!r}")
    return f'"{name}"'


def string_literal(value: str) -> Fragment:
    """``value`` as a single-quoted SQL string literal (for DDL, which takes no parameters)."""
    return Fragment("'" + str(value).replace("'", "''") + "'")


def render(name: str, **slots: str | bool | Fragment) -> str:
    """The statement ``name`` with its ``{slot}`` placeholders filled.

    A plain ``str`` is an identifier (validated and quoted by :func:`identifier`), a ``bool`` is
    ``true``/``false``, a :class:`Fragment` goes in as is. Every slot of the file must be given and
    every value must have a slot.
    """
    template = text(name)
    wanted = set(_SLOT.findall(template))
    if wanted != set(slots):
        missing, extra = sorted(wanted - set(slots)), sorted(set(slots) - wanted)
        raise ArchiveError(
            f"SQL template {name!r}: missing slot(s) {missing or 'none'}, unknown slot(s) {extra or 'none'}"
        )

    def value(slot: str) -> str:
        given = slots[slot]
        if isinstance(given, Fragment):
            return str(given)
        if isinstance(given, bool):
            return "true" if given else "false"
        return identifier(given)

    return _SLOT.sub(lambda m: value(m.group(1)), template)
