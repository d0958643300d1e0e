"""Guide-star product file names, parsed by the documented grammar.

Grammar (JWST guidestar_products docs; jwql ``filename_parser``)::

    jw<ppppp><ooo><vvv>_gs-<mode>_<yyyydddhhmmss>[-seg<NNN>]_<suffix>.fits   mode in acq1, acq2, track, fg
    jw<ppppp><ooo><vvv>_gs-id_<m>_<image|stacked>_<suffix>.fits               m = attempt, 1-3 digits

The 13-digit stamp is year, day-of-year and UTC hh mm ss of the end of the data (of the whole guide
period for segmented files). All segments of one guide period share the 33-character prefix
``jw<11 digits>_gs-fg_<13 digits>``, which we call the guide period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRODUCTS = ("id", "acq1", "acq2", "track", "fg")

EXP_TYPE_TO_PRODUCT = {
    "FGS_ID-IMAGE": "id",
    "FGS_ID-STACK": "id",
    "FGS_ACQ1": "acq1",
    "FGS_ACQ2": "acq2",
    "FGS_TRACK": "track",
    "FGS_FINEGUIDE": "fg",
}

_TIMED = re.compile(
    r"jw(?P<program>\d{5})(?P<observation>\d{3})(?P<visit>\d{3})"
    r"_gs-(?P<product>acq1|acq2|track|fg)_(?P<stamp>\d{13})"
    r"(?:-seg(?P<segment>\d{3}))?_(?P<suffix>[a-z0-9]+)\.fits",
    re.ASCII,
)
_ID = re.compile(
    r"jw(?P<program>\d{5})(?P<observation>\d{3})(?P<visit>\d{3})"
    r"_gs-id_(?P<attempt>\d{1,3})_(?P<id_kind>image|stacked)_(?P<suffix>[a-z0-9]+)\.fits",
    re.ASCII,
)


@dataclass(frozen=True)
class ProductName:
    """The fields of a guide-star product file name."""

    file_name: str
    program: int
    observation: int
    visit: int
    product: str  # id, acq1, acq2, track, fg
    suffix: str  # cal, uncal, stream, ...
    stamp: str | None = None  # yyyydddhhmmss, end of data (UTC)
    segment: int | None = None  # 1-based segment number, None when unsegmented
    attempt: int | None = None  # ID attempt counter
    id_kind: str | None = None  # image or stacked

    @property
    def guide_period(self) -> str:
        """Key grouping all segments of one guide period (the 33-char prefix for timed products)."""
        base = self.file_name.split("_gs-")[0]
        if self.stamp is not None:
            return f"{base}_gs-{self.product}_{self.stamp}"
        return f"{base}_gs-{self.product}_{self.attempt}"


def parse_product_name(name: str) -> ProductName | None:
    """Parse a guide-star product file name; ``None`` when it does not follow the grammar."""
    m = _TIMED.fullmatch(name)
    if m:
        return ProductName(
            file_name=name,
            program=int(m["program"]),
            observation=int(m["observation"]),
            visit=int(m["visit"]),
            product=m["product"],
            suffix=m["suffix"],
            stamp=m["stamp"],
            segment=int(m["segment"]) if m["segment"] else None,
        )
    m = _ID.fullmatch(name)
    if m:
        return ProductName(
            file_name=name,
            program=int(m["program"]),
            observation=int(m["observation"]),
            visit=int(m["visit"]),
            product="id",
            suffix=m["suffix"],
            attempt=int(m["attempt"]),
            id_kind=m["id_kind"],
        )
    return None


def looks_like_guider_file(name: str) -> bool:
    """True for names we try to ingest: guide-star products, calibrated or not, never streams."""
    parsed = parse_product_name(name)
    return parsed is not None and parsed.suffix in ("cal", "uncal")
