"""A MAST-compatible HTTP server on 127.0.0.1 for tests and ``fgsarchive demo`` (no network needed).

It speaks the parts of the real protocol fgsarchive uses (see ``docs/crawler.md``)::

    POST /api/v0/invoke                              Mast.Jwst.Filtered.GuideStar (EXECUTING, paging)
    POST /portal/Mashup/Mashup.asmx/columnsconfig    column config (so astroquery.mast works too)
    GET  /api/v0.1/Download/file?uri=mast:JWST/product/<name>     bytes, Range -> 206
    GET  /api/v0.1/Download/file?uri=mast:jwstedb/<MNEM>-<start>-<end>.csv   EDB CSV (CRLF)
    GET  /webservices/vo/CatalogSearch.aspx?id=...&format=csv[&cat=...]     GSC CSV
    GET  /api/                                       liveness (as jwst's EDB client checks)

Rows of the GuideStar service come from the primary headers of the guider files found (recursively)
in ``products_dir``. Faults are injected by a seeded, deterministic :class:`FaultPlan`, and
:attr:`MastTestServer.stats` counts what happened. It only ever binds 127.0.0.1.

Example::

    with MastTestServer(products_dir=tmp, token="t0k", faults=FaultPlan(schedule={"*": ["drop"]})) as srv:
        MastClient(MastConfig(mast_url=srv.url, gsc_url=srv.url, token="t0k"))...
"""

from __future__ import annotations

import collections
import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import math
import numbers
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from ..names import looks_like_guider_file, parse_product_name

__all__ = ["FAULT_KINDS", "GSC_COLUMNS", "FaultPlan", "MastTestServer"]

logger = logging.getLogger(__name__)

FAULT_KINDS = frozenset(
    {"503", "429", "500", "reset", "drop", "truncate", "slow", "bad_json", "service_error"}
)
GSC_COLUMNS = (
    "hstID",
    "gsc1ID",
    "gsc2ID",
    "GAIAdr2sourceID",
    "GAIAdr3sourceID",
    "ra",
    "dec",
    "epoch",
    "raErr",
    "decErr",
    "rapm",
    "decpm",
    "rapmErr",
    "decpmErr",
    "parallax",
    "plxErr",
    "classification",
    "variableFlag",
    "multipleFlag",
    "gaiaGmag",
    "gaiaGmagErr",
    "gaiaBpmag",
    "gaiaRpmag",
    "tmassJMag",
    "tmassJMagErr",
    "tmassHMag",
    "tmassHMagErr",
    "tmassKsMag",
    "tmassKsMagErr",
    "sourceStatus",
    "mag",
    "objID",
)
_EDB_NAME = re.compile(r"([A-Za-z0-9_]+)-(\d{8}T\d{6})-(\d{8}T\d{6})\.csv", re.ASCII)
_MJD_EPOCH = datetime(1858, 11, 17)
_MJD_UNIX = 40587.0


# --------------------------------------------------------------------------------------------------
# Fault plan
# --------------------------------------------------------------------------------------------------


@dataclass
class FaultPlan:
    """Deterministic fault injection.

    Each request has a *key*: the product file name for downloads, ``"edb:<MNEMONIC>"`` for EDB,
    ``"invoke"`` and ``"gsc"``; and an index n = how many earlier requests had that key.

    * ``schedule``: key -> fault kinds for the key's 1st, 2nd, ... request (``None`` = no fault);
      key ``"*"`` applies to every product file separately ("first N requests of each file fail").
    * ``probabilities``: kind -> probability per request, for endpoints in ``endpoints``; the draw
      uses ``random.Random(f"{seed}|{key}|{n}")`` so it does not depend on thread timing.

    Kinds: ``503``/``429`` (with ``Retry-After: retry_after`` unless None), ``500``, ``reset``
    (close with no reply), ``drop`` (send ``partial_fraction`` of the body, then reset), ``truncate``
    (Content-Length says more than is sent, then a clean close), ``slow`` (sleep ``slow_s``, then
    answer normally), ``bad_json`` and ``service_error`` (invoke only: malformed JSON / an ERROR
    envelope).
    """

    seed: int = 0
    schedule: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    probabilities: Mapping[str, float] = field(default_factory=dict)
    endpoints: frozenset[str] = frozenset({"download"})
    retry_after: str | float | None = "1"
    slow_s: float = 0.2
    partial_fraction: float = 0.5

    def __post_init__(self) -> None:
        kinds = set(self.probabilities)
        for seq in self.schedule.values():
            kinds.update(k for k in seq if k is not None)
        bad = sorted(kinds - FAULT_KINDS)
        if bad:
            raise ValueError(f"unknown fault kind(s) {bad}; valid: {sorted(FAULT_KINDS)}")
        unknown = sorted(set(self.endpoints) - {"download", "edb", "invoke", "gsc"})
        if unknown:
            raise ValueError(f"unknown endpoint(s) {unknown}; valid: download, edb, invoke, gsc")
        if not 0.0 <= self.partial_fraction < 1.0:
            raise ValueError("partial_fraction must be in [0, 1)")

    @classmethod
    def first_requests_fail(cls, n: int, kind: str = "503", **kw: Any) -> FaultPlan:
        """The first ``n`` requests of every product file fail with ``kind``."""
        return cls(schedule={"*": [kind] * n}, **kw)

    def choose(self, endpoint: str, key: str, n: int) -> str | None:
        seq = self.schedule.get(key)
        if seq is None and endpoint == "download":
            seq = self.schedule.get("*")
        if seq is not None and n < len(seq):
            return seq[n]
        if endpoint in self.endpoints and self.probabilities:
            rng = random.Random(f"{self.seed}|{key}|{n}")
            for kind, p in sorted(self.probabilities.items()):
                if rng.random() < p:
                    return kind
        return None


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _mjd_to_datetime(mjd: float) -> datetime:
    return _MJD_EPOCH + timedelta(days=float(mjd))


def _datetime_to_mjd(dt: datetime) -> float:
    return (dt - _MJD_EPOCH).total_seconds() / 86400.0


def _ms_date(mjd: float | None) -> str | None:
    """MAST's non-MJD datetime form: '/Date(<unix ms>)/'."""
    if mjd is None:
        return None
    return f"/Date({round((mjd - _MJD_UNIX) * 86400000)})/"


def _clean(value: Any) -> Any:
    """Header value -> JSON-safe value (NaN/inf -> None)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string"


def _number_key(value: Any) -> Any:
    text = str(value).strip()
    return int(text) if text.isdigit() else text


_PADDED_COLUMNS = {"program", "observtn", "visit"}


def _like(pattern: str, text: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL) is not None


@dataclass
class _Product:
    path: Path
    size: int
    mtime_ns: int
    row: dict[str, Any]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: MastTestServer

    def handle_error(
        self, request: Any, client_address: Any
    ) -> None:  # quiet, as faults are normal
        logger.debug("mast test server: error while handling a request", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.app._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.app._dispatch(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:  # request line only, never headers
        logger.debug("mast test server: " + format, *args)


class _Reply(Exception):
    """Internal: answer with this status and text body."""

    def __init__(self, status: int, text: str, headers: Mapping[str, str] | None = None):
        super().__init__(text)
        self.status, self.text, self.headers = status, text, dict(headers or {})


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class MastTestServer:
    """MAST, EDB and GSC look-alike on ``127.0.0.1:<free port>``; a context manager.

    Parameters
    ----------
    products_dir
        Folder searched (recursively, on every request) for guider files named by the guide-star
        grammar; their primary headers make the GuideStar rows and their bytes are served.
    telemetry
        ``{mnemonic: (times_mjd, values)}``; values numeric (``sqldataType`` real/int) or text
        (varchar).
    catalog
        GSC rows: ``{hstID: {column: value}}`` or a list of dicts with ``hstID``; column names are
        matched case-insensitively to :data:`GSC_COLUMNS` (or ``gsc_columns``).
    token
        When set, product downloads (all, or only ``exclusive_programs``) and every EDB request need
        ``Authorization: token <token>``; otherwise 401.
    faults
        A :class:`FaultPlan` (default: none).
    executing_polls
        How many times each distinct query (same request apart from ``page``) first answers
        ``{"status": "EXECUTING"}`` before COMPLETE.
    duplicate_rows
        Repeat every row once more (other ``obs_id``) at the end, as real MAST lists a guide-star
        file under several observations.
    extra_rows
        Rows appended to the GuideStar table as given (e.g. hostile file names); filters apply.
    checksums
        Add ``checksum = 'sha256:<hex>'`` to rows (the real column's format is unverified).
    honour_range
        False -> answer Range requests with 200 and the whole body.
    edb_unknown
        Unknown mnemonic: ``"404"`` (default, like an unknown product), ``"empty"`` (200, empty
        body) or ``"text"`` (200, an error sentence).
    gsc_reply
        ``"csv"`` (default), ``"error"`` (an ``Error ...`` line) or ``"html"`` (an IIS-style page).
    gsc_columns
        Override the CSV column list (e.g. GSC 2.4.1's ``tmassJmag`` spelling).
    """

    def __init__(
        self,
        products_dir: str | Path | None = None,
        telemetry: Mapping[str, tuple[Sequence[float], Sequence[Any]]] | None = None,
        catalog: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]] | None = None,
        token: str | None = None,
        faults: FaultPlan | None = None,
        *,
        exclusive_programs: Iterable[int] | None = None,
        executing_polls: int = 1,
        duplicate_rows: bool = True,
        extra_rows: Sequence[Mapping[str, Any]] = (),
        checksums: bool = False,
        honour_range: bool = True,
        edb_unknown: Literal["404", "empty", "text"] = "404",
        gsc_reply: Literal["csv", "error", "html"] = "csv",
        gsc_columns: Sequence[str] = GSC_COLUMNS,
        chunk_size: int = 64 * 1024,
    ) -> None:
        self.products_dir = Path(products_dir) if products_dir is not None else None
        self.telemetry = {k.upper(): (list(t), list(v)) for k, (t, v) in (telemetry or {}).items()}
        if catalog is None:
            rows: list[Mapping[str, Any]] = []
        elif isinstance(catalog, Mapping):
            rows = [{"hstID": k, **dict(v)} for k, v in catalog.items()]
        else:
            rows = [dict(r) for r in catalog]
        self.catalog = [{str(k).lower(): v for k, v in r.items()} for r in rows]
        self.token = token
        self.exclusive_programs = (
            None if exclusive_programs is None else {int(p) for p in exclusive_programs}
        )
        self.faults = faults or FaultPlan()
        self.executing_polls = executing_polls
        self.duplicate_rows = duplicate_rows
        self.extra_rows = [dict(r) for r in extra_rows]
        self.checksums = checksums
        self.honour_range = honour_range
        if edb_unknown not in ("404", "empty", "text"):
            raise ValueError("edb_unknown must be '404', 'empty' or 'text'")
        if gsc_reply not in ("csv", "error", "html"):
            raise ValueError("gsc_reply must be 'csv', 'error' or 'html'")
        self.edb_unknown = edb_unknown
        self.gsc_reply = gsc_reply
        self.gsc_columns = tuple(gsc_columns)
        self.chunk_size = chunk_size

        self._lock = threading.Lock()
        self._products: dict[str, _Product] = {}
        self._key_counts: collections.Counter[str] = collections.Counter()
        self._query_counts: collections.Counter[str] = collections.Counter()
        self._stats = self._empty_stats()
        self.request_log: list[dict[str, Any]] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> MastTestServer:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"mast-test-server-{self.port}"
        self._thread.start()
        logger.debug("mast test server listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> MastTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (use for both mast_url and gsc_url)."""
        return f"http://127.0.0.1:{self.port}"

    # -- statistics -----------------------------------------------------------------------------

    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {
            "requests": 0,
            "by_endpoint": collections.Counter(),
            "status": collections.Counter(),
            "faults": collections.Counter(),
            "bytes_served": 0,
            "range_requests": 0,
            "executing": 0,
            "by_file": collections.Counter(),
        }

    @property
    def stats(self) -> dict[str, Any]:
        """Snapshot: requests, by_endpoint, status (HTTP code -> n), faults (kind -> n),
        bytes_served (body bytes written), range_requests, executing (EXECUTING replies),
        by_file (product name -> download requests)."""
        with self._lock:
            return {
                k: (dict(v) if isinstance(v, collections.Counter) else v)
                for k, v in self._stats.items()
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = self._empty_stats()
            self.request_log.clear()

    def _count(self, key: str, n: int = 1, sub: Any = None) -> None:
        with self._lock:
            if sub is None:
                self._stats[key] += n
            else:
                self._stats[key][sub] += n

    # -- dispatch -------------------------------------------------------------------------------

    def _dispatch(self, h: _Handler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "uri": query.get("uri"),
            "range": h.headers.get("Range"),
            "auth": "present" if h.headers.get("Authorization") else "absent",
            "status": None,
            "fault": None,
        }
        with self._lock:
            self._stats["requests"] += 1
            self.request_log.append(entry)
        try:
            if method == "POST" and path == "/api/v0/invoke":
                self._count("by_endpoint", sub="invoke")
                self._invoke(h, entry)
            elif method == "POST" and path == "/portal/Mashup/Mashup.asmx/columnsconfig":
                self._count("by_endpoint", sub="columnsconfig")
                self._read_body(h)
                self._send(
                    h, entry, 200, json.dumps(self._columns_config()).encode(), "application/json"
                )
            elif method == "GET" and path in (
                "/api/v0.1/Download/file",
                "/jwst/api/v0.1/Download/file",
            ):
                uri = query.get("uri", "")
                if uri.startswith("mast:JWST/product/"):
                    self._count("by_endpoint", sub="download")
                    self._download(h, entry, uri.removeprefix("mast:JWST/product/"))
                elif uri.startswith("mast:jwstedb/"):
                    self._count("by_endpoint", sub="edb")
                    self._edb(h, entry, uri.removeprefix("mast:jwstedb/"))
                else:
                    self._count("by_endpoint", sub="download")
                    raise _Reply(404, "Not Found")
            elif method == "GET" and path.lower() == "/webservices/vo/catalogsearch.aspx":
                self._count("by_endpoint", sub="gsc")
                self._gsc(h, entry, query)
            elif method == "GET" and path in ("/api", "/api/"):
                self._send(h, entry, 200, b"MAST API", "text/plain")
            else:
                raise _Reply(404, "Not Found")
        except _Reply as reply:
            self._send(h, entry, reply.status, reply.text.encode(), "text/plain", reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    # -- low-level replies ----------------------------------------------------------------------

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def _fault(self, endpoint: str, key: str, entry: dict[str, Any]) -> str | None:
        with self._lock:
            n = self._key_counts[key]
            self._key_counts[key] += 1
        kind = self.faults.choose(endpoint, key, n)
        if kind is not None:
            entry["fault"] = kind
            self._count("faults", sub=kind)
        return kind

    def _apply_status_fault(self, h: _Handler, entry: dict[str, Any], kind: str | None) -> bool:
        """Answer ``kind`` if it replaces the reply (503/429/500/reset); True when answered."""
        if kind == "slow":
            time.sleep(self.faults.slow_s)
            return False
        if kind in ("503", "429", "500"):
            headers = {}
            if kind != "500" and self.faults.retry_after is not None:
                headers["Retry-After"] = str(self.faults.retry_after)
            text = {"503": "Service Unavailable", "429": "Too Many Requests"}.get(
                kind, "Server Error"
            )
            self._send(h, entry, int(kind), text.encode(), "text/plain", headers)
            return True
        if kind == "reset":
            entry["status"] = "reset"
            self._abort(h, reset=True)
            return True
        return False

    @staticmethod
    def _abort(h: _Handler, *, reset: bool) -> None:
        """Close the connection: RST (reset=True) or a clean FIN."""
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.wfile.flush()
        with contextlib.suppress(OSError):
            if reset:
                h.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                h.connection.close()
            else:
                h.connection.shutdown(socket.SHUT_WR)

    def _send(
        self,
        h: _Handler,
        entry: dict[str, Any],
        status: int,
        body: bytes | io.BufferedIOBase,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        *,
        length: int | None = None,
        fault: str | None = None,
    ) -> None:
        """Send a reply; ``drop``/``truncate`` faults cut the body short."""
        if isinstance(body, bytes):
            length = len(body)
            stream: io.BufferedIOBase = io.BytesIO(body)
        else:
            stream = body
            assert length is not None
        entry["status"] = status
        self._count("status", sub=status)
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if fault in ("drop", "truncate"):
            h.send_header("Connection", "close")
        h.end_headers()
        limit = length
        if fault in ("drop", "truncate"):
            limit = min(length - 1, int(length * self.faults.partial_fraction)) if length else 0
        sent = 0
        while sent < limit:
            chunk = stream.read(min(self.chunk_size, limit - sent))
            if not chunk:
                break
            h.wfile.write(chunk)
            sent += len(chunk)
        self._count("bytes_served", sent)
        if fault in ("drop", "truncate"):
            self._abort(h, reset=fault == "drop")

    # -- invoke ---------------------------------------------------------------------------------

    def _invoke(self, h: _Handler, entry: dict[str, Any]) -> None:
        body = self._read_body(h).decode("utf-8", errors="replace")
        kind = self._fault("invoke", "invoke", entry)
        if self._apply_status_fault(h, entry, kind):
            return
        if kind == "bad_json":
            self._send(
                h,
                entry,
                200,
                b'{"status": "COMPLETE", "data": [{"fileName": "jw0',
                "application/json",
            )
            return
        if kind == "service_error":
            self._send_json(h, entry, self._error("Internal error while executing the query"))
            return
        try:
            form = parse_qs(body, keep_blank_values=True)
            request = json.loads(form["request"][0])
            service = request["service"]
        except (KeyError, IndexError, ValueError, TypeError):
            self._send_json(h, entry, self._error("Could not parse the request"))
            return
        if service != "Mast.Jwst.Filtered.GuideStar":
            self._send_json(h, entry, self._error(f"Unknown service: {service}"))
            return
        key = json.dumps({k: v for k, v in request.items() if k != "page"}, sort_keys=True)
        with self._lock:
            self._query_counts[key] += 1
            polls = self._query_counts[key]
        if polls <= self.executing_polls:
            self._count("executing")
            self._send_json(
                h, entry, {"status": "EXECUTING", "msg": "", "data": [], "fields": []}, fault=kind
            )
            return
        try:
            result = self._guidestar(request)
        except ValueError as exc:
            result = self._error(str(exc))
        self._send_json(h, entry, result, fault=kind)

    @staticmethod
    def _error(msg: str) -> dict[str, Any]:
        return {"status": "ERROR", "msg": msg, "data": [], "fields": []}

    def _send_json(
        self, h: _Handler, entry: dict[str, Any], obj: Any, *, fault: str | None = None
    ) -> None:
        self._send(h, entry, 200, json.dumps(obj).encode(), "application/json", fault=fault)

    def _guidestar(self, request: Mapping[str, Any]) -> dict[str, Any]:
        params = request.get("params") or {}
        rows = self.guidestar_rows()
        columns = {c.lower(): c for r in rows for c in r}
        columns["filename"] = "fileName"
        for flt in params.get("filters") or []:
            name = str(flt.get("paramName", ""))
            col = columns.get(name.lower())
            if col is None:
                raise ValueError(f"Unknown column: {name}")
            rows = [r for r in rows if self._matches(r.get(col), flt, col)]
        wanted = params.get("columns", "*")
        if isinstance(wanted, str) and wanted.strip() not in ("*", "c.*", ""):
            names = [c.strip() for c in wanted.split(",") if c.strip()]
            missing = [c for c in names if c.lower() not in columns]
            if missing:
                raise ValueError(f"Unknown column(s): {', '.join(missing)}")
            keep = [columns[c.lower()] for c in names]
            rows = [{c: r.get(c) for c in keep} for r in rows]
        page_size = int(request.get("pagesize") or 50000)
        page = int(request.get("page") or 1)
        if page_size < 1 or page < 1:
            raise ValueError("page and pagesize must be positive")
        n = len(rows)
        chunk = rows[(page - 1) * page_size : page * page_size]
        fields: dict[str, str] = {}
        for r in rows:
            for c, v in r.items():
                if v is not None and c not in fields:
                    fields[c] = _json_type(v)
                fields.setdefault(c, "string")
        return {
            "status": "COMPLETE",
            "msg": "",
            "data": chunk,
            "fields": [{"name": c, "type": t} for c, t in fields.items()],
            "paging": {
                "page": page,
                "pageSize": page_size,
                "pagesFiltered": max(1, math.ceil(n / page_size)),
                "rows": len(chunk),
                "rowsFiltered": n,
                "rowsTotal": n,
            },
        }

    @staticmethod
    def _matches(value: Any, flt: Mapping[str, Any], col: str) -> bool:
        values = flt.get("values") or []
        free = flt.get("freeText")
        if free:
            if value is None or not _like(str(free), str(value)):
                return False
        if not values:
            return True
        if value is None:
            return False
        if isinstance(values[0], dict):  # continuous
            try:
                x = float(value)
            except (TypeError, ValueError):
                return False
            return any(
                float(v.get("min", -math.inf)) <= x <= float(v.get("max", math.inf)) for v in values
            )
        if col in _PADDED_COLUMNS:  # '1534' and '01534' both match the header's '01534'
            return _number_key(value) in {_number_key(v) for v in values}
        return str(value) in {str(v) for v in values}

    def _columns_config(self) -> dict[str, Any]:
        cols: dict[str, Any] = {}
        for row in self.guidestar_rows():
            for c, v in row.items():
                cols.setdefault(
                    c, {"text": c, "type": _json_type(v) if v is not None else "string"}
                )
        return cols

    # -- products -------------------------------------------------------------------------------

    def _scan(self) -> dict[str, _Product]:
        if self.products_dir is None or not self.products_dir.is_dir():
            return {}
        found: dict[str, Path] = {}
        for path in sorted(self.products_dir.rglob("jw*_gs-*.fits")):
            if looks_like_guider_file(path.name) and path.is_file():
                found.setdefault(path.name, path)
        with self._lock:
            cache = dict(self._products)
        products: dict[str, _Product] = {}
        for name, path in found.items():
            st = path.stat()
            old = cache.get(name)
            if (
                old
                and old.path == path
                and old.size == st.st_size
                and old.mtime_ns == st.st_mtime_ns
            ):
                products[name] = old
                continue
            try:
                row = self._row_for(path, st.st_size)
            except Exception:  # noqa: BLE001 - a broken file is listed without header fields
                logger.debug("mast test server: cannot read header of %s", path, exc_info=True)
                row = self._row_for(path, st.st_size, header={})
            products[name] = _Product(path, st.st_size, st.st_mtime_ns, row)
        with self._lock:
            self._products = products
        return products

    def _row_for(
        self, path: Path, size: int, header: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        if header is None:
            from astropy.io import fits

            with fits.open(path, memmap=False) as hdul:
                header = dict(hdul[0].header)
        m = parse_product_name(path.name)
        assert m is not None
        program = str(header.get("PROGRAM") or f"{m.program:05d}")
        observtn = str(header.get("OBSERVTN") or f"{m.observation:03d}")
        visit = str(header.get("VISIT") or f"{m.visit:03d}")
        start, end = _clean(header.get("DATASTRT")), _clean(header.get("DATAEND"))
        detector = header.get("DETECTOR")
        apername = header.get("APERNAME")
        if detector and str(detector)[-1:] in ("1", "2"):
            guider = str(detector)[-1]
        elif apername and str(apername)[3:4] in ("1", "2"):
            guider = str(apername)[3]
        else:
            guider = "1"
        suffix = m.suffix
        visit_id = f"{int(program):05d}{int(observtn):03d}{int(visit):03d}"
        row: dict[str, Any] = {
            "ArchiveFileID": int(hashlib.sha1(path.name.encode()).hexdigest()[:8], 16),
            "fileName": path.name,
            "fileSetName": path.name.rsplit("_", 1)[0],
            "productLevel": "2b" if suffix == "cal" else "1b",
            "obs_id": f"jw{visit_id}_02101_00001_guider{guider}",
            "program": program,
            "observtn": observtn,
            "visit": visit,
            "visit_id": visit_id,
            "exp_type": header.get("EXP_TYPE"),
            "apername": apername,
            "detector": detector,
            "pcs_mode": header.get("PCS_MODE"),
            "gdstarid": header.get("GDSTARID"),
            "gs_ra": _clean(header.get("GS_RA")),
            "gs_dec": _clean(header.get("GS_DEC")),
            "gs_mag": _clean(header.get("GS_MAG")),
            "gs_order": _clean(header.get("GS_ORDER")),
            "gsc_ver": header.get("GSC_VER"),
            "nints": _clean(header.get("NINTS")),
            "date_obs_mjd": start,
            "date_end_mjd": end,
            "date_beg": _ms_date(start),
            "date_end": _ms_date(end),
            "publicReleaseDate": _ms_date(end + 365 if end is not None else None),
            "publicReleaseDate_mjd": end + 365 if end is not None else None,
            "isRestricted": self._restricted(int(program)),
            "fileSize": size,
            "dataURI": f"mast:JWST/product/{path.name}",
        }
        if self.checksums:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            row["checksum"] = "sha256:" + h.hexdigest()
        return row

    def _restricted(self, program: int) -> bool:
        if self.token is None:
            return False
        return self.exclusive_programs is None or program in self.exclusive_programs

    def guidestar_rows(self) -> list[dict[str, Any]]:
        """The GuideStar table as served (sorted by fileName, duplicates and extra rows at the end)."""
        rows = [dict(p.row) for _, p in sorted(self._scan().items())]
        if self.duplicate_rows:
            for r in list(rows):
                dup = dict(r)
                dup["obs_id"] = str(r["obs_id"]).replace("_00001_", "_00002_")
                rows.append(dup)
        rows.extend(dict(r) for r in self.extra_rows)
        return rows

    def _authorized(self, h: _Handler) -> bool:
        if self.token is None:
            return True
        got = h.headers.get("Authorization") or ""
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "token" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    def _download(self, h: _Handler, entry: dict[str, Any], name: str) -> None:
        m = parse_product_name(name)
        if m is None or not looks_like_guider_file(name):
            raise _Reply(404, "Not Found")
        products = self._scan()
        product = products.get(name)
        if product is None:
            raise _Reply(404, "Not Found")
        self._count("by_file", sub=name)
        if self._restricted(m.program) and not self._authorized(h):
            raise _Reply(401, "Unauthorized: this product is exclusive access")
        kind = self._fault("download", name, entry)
        if self._apply_status_fault(h, entry, kind):
            return
        size = product.path.stat().st_size
        start, end = 0, size - 1
        status = 200
        headers = {
            "Content-Disposition": f'attachment; filename="{name}"',
            "Accept-Ranges": "bytes",
        }
        range_header = h.headers.get("Range")
        if range_header:
            self._count("range_requests")
        rm = re.fullmatch(r"bytes=(\d+)-(\d*)", (range_header or "").strip())
        if rm and self.honour_range:
            first = int(rm.group(1))
            last = int(rm.group(2)) if rm.group(2) else size - 1
            if first >= size or last < first:
                raise _Reply(416, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
            start, end = first, min(last, size - 1)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        with open(product.path, "rb") as fh:
            fh.seek(start)
            self._send(
                h,
                entry,
                status,
                fh,
                "application/octet-stream",
                headers,
                length=end - start + 1,
                fault=kind,
            )

    # -- EDB ------------------------------------------------------------------------------------

    def _edb(self, h: _Handler, entry: dict[str, Any], name: str) -> None:
        m = _EDB_NAME.fullmatch(name)
        if not m:
            raise _Reply(404, "Not Found")
        mnemonic = m.group(1).upper()
        if not self._authorized(h):
            raise _Reply(401, "Unauthorized: a MAST token with EDB access is required")
        kind = self._fault("edb", f"edb:{mnemonic}", entry)
        if self._apply_status_fault(h, entry, kind):
            return
        if mnemonic not in self.telemetry:
            if self.edb_unknown == "404":
                raise _Reply(404, "Not Found")
            text = "" if self.edb_unknown == "empty" else f"Error: mnemonic {mnemonic} not found"
            self._send(h, entry, 200, text.encode(), "text/plain", fault=kind)
            return
        try:
            t0 = _datetime_to_mjd(datetime.strptime(m.group(2), "%Y%m%dT%H%M%S"))
            t1 = _datetime_to_mjd(datetime.strptime(m.group(3), "%Y%m%dT%H%M%S"))
        except ValueError:
            raise _Reply(400, "Bad Request: cannot parse times") from None
        times, values = self.telemetry[mnemonic]
        order = sorted(range(len(times)), key=lambda i: times[i])
        eps = 1e-9  # days (86 us): whole-second stamps vs float MJDs
        inside = [i for i in order if t0 - eps <= times[i] <= t1 + eps]
        before = [i for i in order if times[i] < t0 - eps][-1:]
        after = [i for i in order if times[i] > t1 + eps][:1]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["theTime", "MJD", "euvalue", "sqldataType"])
        for i in before + inside + after:
            t, v = float(times[i]), values[i]
            if isinstance(v, str):
                value, sql = v, "varchar"
            elif isinstance(v, bool):
                value, sql = str(int(v)), "tinyint"
            elif isinstance(v, numbers.Integral):
                value, sql = str(int(v)), "int"
            else:
                value, sql = repr(float(v)), "real"
            stamp = _mjd_to_datetime(t).strftime("%Y-%m-%d %H:%M:%S.%f")
            writer.writerow([stamp, f"{t:.10f}", value, sql])
        self._send(h, entry, 200, out.getvalue().encode(), "text/csv", fault=kind)

    # -- GSC ------------------------------------------------------------------------------------

    def _gsc(self, h: _Handler, entry: dict[str, Any], query: Mapping[str, str]) -> None:
        kind = self._fault("gsc", "gsc", entry)
        if self._apply_status_fault(h, entry, kind):
            return
        entry["catalog"] = query.get("cat") or query.get("catalog")
        if self.gsc_reply == "error":
            text = "Error: The catalog query could not be completed.\r\n"
            self._send(h, entry, 200, text.encode(), "text/plain", fault=kind)
            return
        if self.gsc_reply == "html":
            text = (
                "<!DOCTYPE html><html><head><title>Runtime Error</title></head>"
                "<body><h1>Server Error in '/webservices' Application.</h1></body></html>"
            )
            self._send(h, entry, 200, text.encode(), "text/html", fault=kind)
            return
        if "id" in query:
            wanted = query["id"].strip().upper()
            rows = [r for r in self.catalog if str(r.get("hstid", "")).upper() == wanted]
        elif {"ra", "dec", "sr"} <= set(query):
            try:
                ra, dec, sr = float(query["ra"]), float(query["dec"]), float(query["sr"])
            except ValueError:
                self._send(h, entry, 200, b"Error: bad RA/DEC/SR\r\n", "text/plain")
                return
            rows = [r for r in self.catalog if _sep(r, ra, dec) <= sr]
        else:
            self._send(h, entry, 200, b"Error: no search parameters given\r\n", "text/plain")
            return
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        out.write(f"@Query returned {len(rows)} object(s) from {entry['catalog'] or 'GSC30'}\r\n")
        writer.writerow(self.gsc_columns)
        for r in rows:
            writer.writerow(
                ["" if r.get(c.lower()) is None else r.get(c.lower()) for c in self.gsc_columns]
            )
        self._send(h, entry, 200, out.getvalue().encode(), "text/plain", fault=kind)


def _sep(row: Mapping[str, Any], ra: float, dec: float) -> float:
    try:
        r_ra, r_dec = float(row["ra"]), float(row["dec"])
    except (KeyError, TypeError, ValueError):
        return math.inf
    a, b = math.radians(r_dec), math.radians(dec)
    c = math.sin(a) * math.sin(b) + math.cos(a) * math.cos(b) * math.cos(math.radians(r_ra - ra))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))
