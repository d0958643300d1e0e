"""Demo and test glue: the whole real path (discover, download, ingest, telemetry, events, star
look-up) against the loopback MAST server, fed from the simulator's output.

Only tests, the demo and benchmarks use this module; the stages never import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropy.io import fits

from ..crawl import ProgressCallback, ingest_programs
from ..db import Database
from ..errors import UsageError
from ..guidestars import lookup_stars
from ..ingest import IngestReport
from ..mast import MastClient, MastConfig
from ..names import looks_like_guider_file, parse_product_name
from ..simulate import edb_timeseries
from ..telemetry import derive_events, fetch_telemetry
from .mast_server import MastTestServer

__all__ = [
    "ServeReport",
    "loopback_mast",
    "products_span",
    "serve_and_ingest",
    "simulated_catalog",
    "simulated_edb",
]


def simulated_edb(
    telemetry: Any,
    start_mjd: float,
    end_mjd: float,
    *,
    pad_s: float = 600.0,
    mnemonics: Sequence[str] = ("SA_ZHGAUPST", "INIS_FWMTRCURR"),
) -> dict[str, tuple[list[float], list[Any]]]:
    """The simulator's telemetry truth as ``{mnemonic: (times_mjd, values)}`` for MastTestServer.

    ``telemetry`` is ``SimulatedProgram.telemetry``, a truth dir or its ``telemetry.parquet``;
    series cover ``[start_mjd, end_mjd]`` padded by ``pad_s`` (text values for SA_ZHGAUPST, floats
    for INIS_FWMTRCURR, 1 s cadence).
    """
    if isinstance(telemetry, str | os.PathLike):
        telemetry = Path(telemetry)
    pad = pad_s / 86400.0
    out: dict[str, tuple[list[float], list[Any]]] = {}
    for name in mnemonics:
        frame = edb_timeseries(telemetry, name, start_mjd - pad, end_mjd + pad)
        times = frame["MJD"].to_list()
        texts = frame["euvalue"].to_list()
        types = frame["sqldataType"].to_list()
        values = [float(v) if t == "real" else v for v, t in zip(texts, types, strict=True)]
        out[name] = (times, values)
    return out


def simulated_catalog(stars: Any) -> list[dict[str, Any]]:
    """GSC rows (``MastTestServer(catalog=...)``) from the simulator's star table.

    ``stars`` is ``SimulatedProgram.stars`` (polars) or a list of dicts with its columns: gs_id, ra,
    dec, fgs_mag, gaia_id, j_mag, h_mag, k_mag, variable.
    """
    records = stars.to_dicts() if hasattr(stars, "to_dicts") else [dict(s) for s in stars]
    out = []
    for s in records:
        out.append(
            {
                "hstID": s["gs_id"],
                "gsc2ID": "S0"
                + str(int(hashlib.sha1(str(s["gs_id"]).encode()).hexdigest(), 16))[:11],
                "GAIAdr3sourceID": s.get("gaia_id"),
                "ra": s.get("ra"),
                "dec": s.get("dec"),
                "epoch": 2016.0,
                "rapm": 0.0,
                "decpm": 0.0,
                "classification": 0,
                "variableFlag": 1 if s.get("variable") else 0,
                "gaiaGmag": s.get("fgs_mag"),
                "tmassJMag": s.get("j_mag"),
                "tmassHMag": s.get("h_mag"),
                "tmassKsMag": s.get("k_mag"),
                "mag": s.get("fgs_mag"),
            }
        )
    return out


@dataclass
class ServeReport(IngestReport):
    """:class:`IngestReport` of :func:`serve_and_ingest`, plus what the other steps did."""

    listed: int = 0
    downloaded: int = 0
    cached: int = 0
    telemetry_rows: int = 0
    telemetry_windows: int = 0
    events: dict[str, int] = field(default_factory=dict)
    stars: dict[str, int] = field(default_factory=dict)
    server_stats: dict[str, Any] = field(default_factory=dict)


def products_span(products_dir: Path) -> tuple[float, float] | None:
    """(min DATASTRT, max DATAEND) of the guider files under ``products_dir`` (headers only)."""
    starts, ends = [], []
    for path in Path(products_dir).rglob("jw*_gs-*.fits"):
        if not looks_like_guider_file(path.name):
            continue
        try:
            header = fits.getheader(path)
        except (OSError, ValueError):
            continue
        s, e = header.get("DATASTRT"), header.get("DATAEND")
        if isinstance(s, int | float) and isinstance(e, int | float):
            starts.append(float(s))
            ends.append(float(e))
    return (min(starts), max(ends)) if starts else None


@contextlib.contextmanager
def loopback_mast(
    products_dir: Any,
    *,
    program: int | None = None,
    telemetry: Any = None,
    catalog: Any = None,
    faults: Any = None,
) -> Iterator[tuple[MastTestServer, MastConfig, int]]:
    """:class:`MastTestServer` on 127.0.0.1 serving ``products_dir`` (and EDB telemetry, GSC rows),
    with a fast-retry :class:`MastConfig` pointing at it (never a token); yields
    ``(server, config, program)``. Arguments as :func:`serve_and_ingest`."""
    if hasattr(products_dir, "out_dir") and hasattr(products_dir, "program"):  # SimulatedProgram
        sim = products_dir
        program = sim.program if program is None else program
        telemetry = sim.telemetry if telemetry is None else telemetry
        catalog = sim.stars if catalog is None else catalog
        products_dir = sim.out_dir
    products_dir = Path(products_dir)
    if program is None:
        found = {
            parsed.program
            for path in products_dir.rglob("jw*_gs-*.fits")
            if looks_like_guider_file(path.name)
            and (parsed := parse_product_name(path.name)) is not None
        }
        if len(found) != 1:
            raise UsageError(f"{products_dir}: give program= (found programs {sorted(found)})")
        program = found.pop()
    edb: dict[str, tuple[list[float], list[Any]]] = {}
    if telemetry is not None:
        if isinstance(telemetry, Mapping):
            edb = {str(k): (list(t), list(v)) for k, (t, v) in telemetry.items()}
        else:
            span = products_span(products_dir)
            if span is not None:
                edb = simulated_edb(telemetry, span[0], span[1])
    gsc = None
    if catalog is not None:
        gsc = catalog if isinstance(catalog, Mapping | list | tuple) else simulated_catalog(catalog)
    with MastTestServer(
        products_dir=products_dir, telemetry=edb, catalog=gsc, faults=faults, checksums=True
    ) as srv:
        config = MastConfig(
            mast_url=srv.url,
            gsc_url=srv.url,
            poll_interval_s=0.02,
            backoff_s=0.02,
            backoff_max_s=0.5,
            timeout_s=30.0,
        )
        # never send a token from the environment to the loopback server
        object.__setattr__(config, "token", None)
        yield srv, config, program


def serve_and_ingest(
    db: Database | str | os.PathLike[str],
    products_dir: Any,
    *,
    program: int | None = None,
    telemetry: Any = None,
    catalog: Any = None,
    cache_dir: str | os.PathLike[str],
    workers: int = 2,
    products: str = "all",
    faults: Any = None,
    progress: ProgressCallback | None = None,
) -> ServeReport:
    """Serve ``products_dir`` from :class:`MastTestServer` on 127.0.0.1 and run the real path:
    discover -> download (into ``cache_dir``) -> ingest, then EDB telemetry, derive_events and the
    guide-star catalog look-up, all through :class:`MastClient`.

    ``products_dir``: a folder of guider files, or a :class:`~fgsarchive.simulate.SimulatedProgram`
    (then ``program``, ``telemetry`` and ``catalog`` default to its program, telemetry truth and
    star table). ``program``: the program to ingest (default: the only one in the folder).
    ``telemetry``: the simulator's telemetry truth (polars frame or truth dir, converted to EDB
    series of SA_ZHGAUPST and INIS_FWMTRCURR over the files' span) or a ready
    ``{mnemonic: (times_mjd, values)}``. ``catalog``: the simulator's star table (polars frame,
    converted to GSC rows) or GSC rows as :class:`MastTestServer` takes them. ``faults``: an optional
    :class:`~fgsarchive.testing.mast_server.FaultPlan`.
    """
    database = db if isinstance(db, Database) else Database(Path(db))
    with loopback_mast(
        products_dir, program=program, telemetry=telemetry, catalog=catalog, faults=faults
    ) as (srv, config, program):
        edb, gsc = srv.telemetry, srv.catalog or None
        with MastClient(config) as client:
            crawl_report = ingest_programs(
                database,
                [program],
                client=client,
                products=products,
                cache_dir=cache_dir,
                workers=workers,
                progress=progress,
            )
            tel = fetch_telemetry(database, client, list(edb) or None) if edb else None
            events = derive_events(database)
            stars = lookup_stars(database, client) if gsc is not None else None
        stats = srv.stats

    ing = crawl_report.ingest
    out = ServeReport(
        ingested=list(ing.ingested),
        skipped=list(ing.skipped) + list(crawl_report.skipped),
        failed={**crawl_report.failed, **crawl_report.auth, **crawl_report.unavailable},
        n_frames=ing.n_frames,
        n_bytes=ing.n_bytes,
        seconds=crawl_report.seconds,
        listed=crawl_report.listed,
        downloaded=len(crawl_report.downloaded),
        cached=len(crawl_report.cached),
        telemetry_rows=tel.rows if tel else 0,
        telemetry_windows=tel.fetched_windows if tel else 0,
        events=events,
        stars=stars.counts if stars else {},
        server_stats=stats,
    )
    return out
