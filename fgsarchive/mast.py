"""The one HTTP seam between fgsarchive and STScI: MAST discovery and downloads, the JWST
engineering database (EDB) and the Guide Star Catalog (GSC).

Every request goes through :meth:`MastClient._request` (one ``requests.Session``); tests point
:class:`MastConfig` at the MAST-compatible server in :mod:`fgsarchive.testing.mast_server` or replace
``_request`` itself. Protocol notes, and why this does not go through ``astroquery.mast``, are in
``docs/crawler.md``.

Endpoints (all relative to ``MastConfig.mast_url`` / ``gsc_url``)::

    POST /api/v0/invoke                          form field request=<JSON MashupRequest>
    GET  /api/v0.1/Download/file?uri=mast:JWST/product/<fileName>     product bytes (Range ok)
    GET  /api/v0.1/Download/file?uri=mast:jwstedb/<MNEMONIC>-<start>-<end>.csv   EDB CSV
    GET  <gsc_url>/webservices/vo/CatalogSearch.aspx?id=<GDSTARID>&format=csv&cat=<GSC243>

The MAST token travels only in the ``Authorization: token ...`` header, only to ``mast_url``; it is
never logged, never put in an exception message or ``repr``, and never written to a file.
"""

from __future__ import annotations

import csv
import email.utils
import hashlib
import json
import logging
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
import requests.adapters

from . import __version__
from . import config as _env
from .errors import (
    CatalogError,
    DownloadIntegrityError,
    EdbMnemonicError,
    MastAuthError,
    MastError,
    MastNotFoundError,
    MastServiceError,
    MastUnavailableError,
    NoResultsWarning,
    UnsafeFileNameError,
    one_line,
)
from .names import looks_like_guider_file

__all__ = [
    "ALL_EXP_TYPES",
    "GUIDESTAR_SERVICE",
    "CatalogError",
    "DownloadIntegrityError",
    "DownloadOutcome",
    "EdbMnemonicError",
    "EdbSample",
    "MastAuthError",
    "MastClient",
    "MastConfig",
    "MastError",
    "MastNotFoundError",
    "MastServiceError",
    "MastUnavailableError",
    "NoResultsWarning",
    "UnsafeFileNameError",
    "checksum_from_row",
    "summarize_row",
    "validate_product_name",
]

logger = logging.getLogger(__name__)

GUIDESTAR_SERVICE = "Mast.Jwst.Filtered.GuideStar"
ALL_EXP_TYPES = (
    "FGS_ID-IMAGE",
    "FGS_ID-STACK",
    "FGS_ACQ1",
    "FGS_ACQ2",
    "FGS_TRACK",
    "FGS_FINEGUIDE",
)
INVOKE_PATH = "/api/v0/invoke"
DOWNLOAD_PATH = "/api/v0.1/Download/file"
PRODUCT_URI = "mast:JWST/product/"
EDB_URI = "mast:jwstedb/"
GSC_PATH = "/webservices/vo/CatalogSearch.aspx"
EDB_HEADER = ("thetime", "mjd", "euvalue", "sqldatatype")
# date_obs_mjd bounds used when only one side of a date window is given (MJD 0 .. year 2132)
_MJD_FLOOR, _MJD_CEIL = 0.0, 100000.0
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_NUMERIC_SQL_TYPES = frozenset(
    {"real", "float", "double", "int", "tinyint", "smallint", "bigint", "bit", "decimal", "numeric"}
)


# --------------------------------------------------------------------------------------------------
# Exceptions and warnings
# --------------------------------------------------------------------------------------------------


# Defined in fgsarchive.errors (one home for every error); imported here for `fgsarchive.mast.X`.
_one_line = one_line


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MastConfig:
    """Where MAST/GSC are and how patiently to talk to them.

    ``None`` for ``mast_url``/``gsc_url``/``token`` means: take the environment
    (``FGSARCHIVE_MAST_URL``, ``FGSARCHIVE_GSC_URL``, ``MAST_API_TOKEN``), else the default. The token
    is kept out of ``repr``.

    Retries: a request that fails with a dropped connection, a timeout, 408/429/5xx is retried up to
    ``max_retries`` times, sleeping ``Retry-After`` when the server sends one (capped at
    ``retry_after_max_s``), else ``backoff_s * 2**k`` capped at ``backoff_max_s``. A host that
    cannot be reached at all (connection refused, name not resolved) is not busy: it is tried
    ``unreachable_retries`` more times after ``backoff_s`` and then reported, naming the host.
    ``on_retry(what, reason, attempt, max_attempts, delay_s)`` is called before each retry's sleep
    (the CLI shows it; stages never draw).
    """

    mast_url: str | None = None
    gsc_url: str | None = None
    token: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0  # connect and read timeout of one request
    max_retries: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 300.0
    page_size: int = 50000  # MAST "pagesize" (astroquery's default)
    poll_interval_s: float = 2.0  # sleep between polls while MAST says EXECUTING
    query_timeout_s: float = 600.0  # give up polling after this long
    gsc_catalog: str = "GSC243"  # pinned CAT= (column names differ between versions)
    chunk_size: int = 64 * 1024  # download read size, bytes (what a drop can lose)
    pool_size: int = 16  # HTTP connections kept per host (>= download workers)
    user_agent: str = f"fgsarchive/{__version__}"
    unreachable_retries: int = 1
    on_retry: Callable[[str, str, int, int, float], None] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        mast = self.mast_url or _env.mast_url()
        gsc = self.gsc_url or _env.gsc_url()
        for label, url in (("mast_url", mast), ("gsc_url", gsc)):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"{label} must be an http(s) URL, got {url!r}")
        object.__setattr__(self, "mast_url", mast.rstrip("/"))
        object.__setattr__(self, "gsc_url", gsc.rstrip("/"))
        object.__setattr__(self, "token", self.token or _env.mast_token())
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.page_size < 1:
            raise ValueError("page_size must be >= 1")


# --------------------------------------------------------------------------------------------------
# Product names
# --------------------------------------------------------------------------------------------------

_MAX_NAME_LEN = 64


def validate_product_name(name: object) -> str:
    """Return ``name`` if it is a plain guider product file name, else raise :class:`UnsafeFileNameError`.

    Accepted: calibrated or uncalibrated guider products named by the grammar of
    :mod:`fgsarchive.names` (:func:`~fgsarchive.names.looks_like_guider_file`, ASCII only). Anything else
    -- path separators, ``..``, absolute paths, NUL or control characters, other suffixes -- is refused,
    because these names come from a remote service and become local file names.
    """
    if not isinstance(name, str):
        raise UnsafeFileNameError(name, f"not a string ({type(name).__name__})")
    if not name:
        raise UnsafeFileNameError(name, "empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafeFileNameError(name, "contains NUL or control characters")
    if "/" in name or "\\" in name:
        raise UnsafeFileNameError(name, "contains a path separator")
    if ".." in name:
        raise UnsafeFileNameError(name, "contains '..'")
    if os.path.isabs(name) or name[1:3] == ":\\":
        raise UnsafeFileNameError(name, "is an absolute path")
    if len(name) > _MAX_NAME_LEN:
        raise UnsafeFileNameError(name, f"longer than {_MAX_NAME_LEN} characters")
    if not looks_like_guider_file(name):  # the strict, ASCII-only grammar of names.py
        raise UnsafeFileNameError(name, "does not follow the guider file-name grammar")
    return name


def _suffix_of(name: str) -> str:
    return name.rsplit("_", 1)[-1].removesuffix(".fits")


def _zero_padded_forms(value: int | str, width: int) -> list[str]:
    """Both spellings MAST users send for a number column: zero-padded first ('01534', '1534')."""
    text = str(value).strip().lower().removeprefix("jw")
    if not text.isdigit():
        raise ValueError(f"expected a number, got {value!r}")
    number = int(text)
    forms = [f"{number:0{width}d}", str(number)]
    return list(dict.fromkeys(forms))


# --------------------------------------------------------------------------------------------------
# Result helpers
# --------------------------------------------------------------------------------------------------


class EdbSample(NamedTuple):
    """One EDB record. ``value`` is the float value (None for text/empty), ``value_text`` the raw text."""

    time_mjd: float  # UTC MJD, days
    value: float | None
    value_text: str
    is_bracket: bool  # outside the requested window (the service adds one record on each side)


@dataclass(frozen=True)
class DownloadOutcome:
    """What happened to one file of :meth:`MastClient.parallel_download`."""

    name: str
    ok: bool
    path: Path | None = None
    reason: str | None = None  # one line, when not ok
    error_type: str | None = None  # exception class name, when not ok


def checksum_from_row(row: Mapping[str, Any]) -> str | None:
    """The row's ``checksum`` if it is in a form :meth:`MastClient.download_product` can verify."""
    value = row.get("checksum")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        _parse_checksum(value)
    except ValueError:
        return None
    return value.strip()


def _to_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _to_float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def summarize_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Typed archive fields from one GuideStar row (the raw row should be stored as well).

    ``program``/``observation``/``visit`` become integers (MAST sends '01534'); ``guider`` is 1 or 2
    from ``apername`` (FGS1_FULL/FGS2_FULL) or ``detector`` (GUIDER1/GUIDER2).
    """
    guider = None
    for key, prefix in (("apername", "FGS"), ("detector", "GUIDER")):
        text = str(row.get(key) or "").upper()
        if text.startswith(prefix) and text[len(prefix) : len(prefix) + 1] in ("1", "2"):
            guider = int(text[len(prefix)])
            break
    return {
        "file_name": row.get("fileName"),
        "program": _to_int(row.get("program")),
        "observation": _to_int(row.get("observtn")),
        "visit": _to_int(row.get("visit")),
        "exp_type": row.get("exp_type"),
        "guider": guider,
        "gs_id": row.get("gdstarid"),
        "gs_ra": _to_float(row.get("gs_ra")),
        "gs_dec": _to_float(row.get("gs_dec")),
        "gs_mag": _to_float(row.get("gs_mag")),
        "gs_order": _to_int(row.get("gs_order")),
        "date_obs_mjd": _to_float(row.get("date_obs_mjd")),
        "date_end_mjd": _to_float(row.get("date_end_mjd")),
        "file_size": _to_int(row.get("fileSize")),
        "checksum": checksum_from_row(row),
    }


# --------------------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------------------


def _retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)", re.ASCII)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from ``Content-Range``; None parts when absent or unknown."""
    m = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, total


_HASH_BY_HEX_LEN = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


def _parse_checksum(checksum: str) -> tuple[str, str]:
    """``'sha256:<hex>'``, ``'md5:<hex>'``... or bare hex (algorithm from its length) -> (algo, hex)."""
    text = checksum.strip().lower()
    algo, sep, digest = text.partition(":")
    if not sep:
        algo, digest = _HASH_BY_HEX_LEN.get(len(text), ""), text
    if algo not in ("md5", "sha1", "sha256", "sha512") or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ValueError(
            f"unrecognised checksum format {checksum[:80]!r} (want e.g. 'sha256:<hex>')"
        )
    if len(digest) != hashlib.new(algo).digest_size * 2:
        raise ValueError(f"checksum {checksum[:80]!r} has the wrong length for {algo}")
    return algo, digest


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mjd_to_stamp(mjd: float, *, ceil: bool) -> str:
    """UTC MJD -> 'YYYYmmddTHHMMSS' (whole seconds; floor for a start, ceiling for an end)."""
    from astropy.time import Time

    dt = Time(mjd, format="mjd", scale="utc").to_datetime()
    if ceil and dt.microsecond:
        dt = dt.replace(microsecond=0) + timedelta(seconds=1)
    return dt.strftime("%Y%m%dT%H%M%S")


_TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def unreachable_reason(exc: BaseException) -> str | None:
    """'connection refused' / 'host name not resolved' when ``exc`` says the host cannot be
    reached at all (no server listening, no such name), else None (a dropped or slow connection,
    worth retrying)."""
    if isinstance(exc, requests.Timeout) or not isinstance(exc, requests.ConnectionError):
        return None
    import socket

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return "host name not resolved"
        if type(e).__name__ == "MaxRetryError":  # urllib3's wrapper: look at its reason
            stack.append(e.reason)
        stack.extend(
            [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException))]
        )
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "Failed to resolve" in text:
        return "host name not resolved"
    return None


#: Environment variables that can point the client elsewhere, by config field.
_URL_ENV = {"mast_url": "FGSARCHIVE_MAST_URL", "gsc_url": "FGSARCHIVE_GSC_URL"}


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------


class MastClient:
    """MAST, EDB and GSC over one ``requests.Session``.

    Use as a context manager (or call :meth:`close`)::

        with MastClient(MastConfig(token=...)) as mast:
            rows = mast.query_guide_star_files(1534)
            mast.parallel_download([r["fileName"] for r in rows], "cache/")
    """

    def __init__(
        self, config: MastConfig | None = None, *, session: requests.Session | None = None
    ):
        self.config = config or MastConfig()
        self._own_session = session is None
        self._session = session or requests.Session()
        if self._own_session:
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=4, pool_maxsize=max(4, self.config.pool_size)
            )
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = self.config.user_agent
        self._sleep: Callable[[float], None] = time.sleep
        self._mast_netloc = urlsplit(self.config.mast_url).netloc

    def __repr__(self) -> str:
        token = "set" if self.config.token else "none"
        return f"MastClient(mast_url={self.config.mast_url!r}, gsc_url={self.config.gsc_url!r}, token={token})"

    def __enter__(self) -> MastClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    # -- the seam -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send ONE HTTP request (no retry). The only place that touches the network.

        Adds ``Authorization: token ...`` when a token is configured and the URL is on the MAST host
        (never to GSC or elsewhere). Tests may replace this method.
        """
        all_headers = dict(headers or {})
        if self.config.token and urlsplit(url).netloc == self._mast_netloc:
            all_headers["Authorization"] = f"token {self.config.token}"
        return self._session.request(
            method,
            url,
            params=params,
            data=data,
            headers=all_headers,
            stream=stream,
            timeout=self.config.timeout_s,
            allow_redirects=True,
        )

    # -- shared plumbing ------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Remove the token from text that came from elsewhere (a server may echo headers)."""
        token = self.config.token
        text = str(text)
        return text.replace(token, "<token>") if token else text

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        cfg = self.config
        seconds = _retry_after_seconds(retry_after)
        if seconds is not None:
            return min(seconds, cfg.retry_after_max_s)
        return min(cfg.backoff_s * (2 ** max(0, attempt - 1)), cfg.backoff_max_s)

    def _where(self, url: str) -> str:
        """The host of ``url``, and the environment variable that chose it when one did."""
        netloc = urlsplit(url).netloc
        for field_name, env in _URL_ENV.items():
            base = getattr(self.config, field_name) or ""
            setting = _env.env_text(env)
            if url.startswith(base) and setting.rstrip("/") == base:
                return f"{netloc} (from {env}={setting})"
        return netloc

    def _unreachable_error(self, what: str, url: str, reason: str, attempts: int):
        return MastUnavailableError(
            f"{what}: cannot reach {self._where(url)}: {reason} "
            f"({attempts} attempt{'s' if attempts > 1 else ''})",
            path=what,
        )

    def _notify_retry(
        self, what: str, reason: str, attempt: int, max_attempts: int, delay: float
    ) -> None:
        logger.info("%s: %s; retry %d in %.2f s", what, reason, attempt, delay)
        if self.config.on_retry is not None:
            self.config.on_retry(what, reason, attempt, max_attempts, delay)

    def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """``_request`` with bounded retries on connection errors, timeouts, 408/429/5xx.

        Returns the final response (any other status) with its body read; raises
        :class:`MastUnavailableError` when the retries are used up.
        """
        reason = ""
        retry_after: str | None = None
        unreachable = 0
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                delay = self.config.backoff_s if unreachable else self._delay(attempt, retry_after)
                self._notify_retry(what, reason, attempt, self.config.max_retries + 1, delay)
                self._sleep(delay)
            retry_after = None
            try:
                resp = self._request(method, url, params=params, data=data, headers=headers)
            except _TRANSIENT_ERRORS as exc:
                reason = f"{type(exc).__name__}"
                cause = unreachable_reason(exc)
                if cause is not None:
                    unreachable += 1
                    reason = cause
                    if unreachable > self.config.unreachable_retries:
                        raise self._unreachable_error(what, url, cause, attempt + 1) from None
                continue
            logger.debug("%s %s -> HTTP %d", method, what, resp.status_code)
            if resp.status_code in _RETRY_STATUSES:
                reason = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                continue
            return resp
        raise MastUnavailableError(
            f"{what}: {self._where(url)} unavailable after {self.config.max_retries + 1} attempts "
            f"(last: {reason})",
            path=what,
        )

    def _auth_error(self, what: str, status: int, subject: str) -> MastAuthError:
        state = (
            "no MAST token is set (--token or MAST_API_TOKEN)"
            if not self.config.token
            else "the MAST token is expired, invalid or lacks rights"
        )
        return MastAuthError(
            f"{what}: HTTP {status}: {state} for {subject}; get one at https://auth.mast.stsci.edu/token",
            path=what,
            status=status,
        )

    # -- discovery ------------------------------------------------------------------------------

    def invoke(
        self, service: str, params: Mapping[str, Any], *, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        """Run one MAST MashupRequest, polling while EXECUTING and following all pages.

        Raises :class:`MastServiceError` on an ERROR envelope, malformed JSON or an unexpected HTTP
        status, :class:`MastAuthError` on 401/403, :class:`MastUnavailableError` when MAST cannot be
        reached or is still EXECUTING after ``query_timeout_s``.
        """
        cfg = self.config
        url = cfg.mast_url + INVOKE_PATH
        what = f"{INVOKE_PATH} {service}"
        page_size = page_size or cfg.page_size
        cache_breaker = str(uuid.uuid4())
        rows: list[dict[str, Any]] = []
        page, pages = 1, 1
        started = time.monotonic()
        while page <= pages:
            request = {
                "service": service,
                "params": dict(params),
                "format": "json",
                "pagesize": page_size,
                "page": page,
                "cacheBreaker": cache_breaker,
            }
            body = {"request": json.dumps(request)}
            while True:
                resp = self._call(
                    "POST",
                    url,
                    what=what,
                    data=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                )
                result = self._invoke_result(resp, what)
                status = result.get("status")
                if status != "EXECUTING":
                    break
                if time.monotonic() - started > cfg.query_timeout_s:
                    raise MastUnavailableError(
                        f"{what}: still EXECUTING after {cfg.query_timeout_s:g} s", path=what
                    )
                logger.debug("%s: EXECUTING, polling again in %.2f s", what, cfg.poll_interval_s)
                self._sleep(cfg.poll_interval_s)
            if status != "COMPLETE":
                msg = self._scrub(result.get("msg") or "no message")
                raise MastServiceError(f"{what}: MAST status {status}: {msg}", path=what)
            data = result.get("data") or []
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise MastServiceError(f"{what}: 'data' is not a list of rows", path=what)
            rows.extend(data)
            paging = result.get("paging")
            if isinstance(paging, dict) and isinstance(paging.get("pagesFiltered"), int):
                pages = min(paging["pagesFiltered"], 100000)
            page += 1
        return rows

    def _invoke_result(self, resp: requests.Response, what: str) -> dict[str, Any]:
        with resp:
            if resp.status_code in (401, 403):
                raise self._auth_error(what, resp.status_code, "this query")
            if resp.status_code != 200:
                snippet = self._scrub(resp.text[:200])
                raise MastServiceError(
                    f"{what}: unexpected HTTP {resp.status_code}: {snippet}",
                    path=what,
                    status=resp.status_code,
                )
            try:
                result = json.loads(resp.content)
            except ValueError as exc:
                raise MastServiceError(
                    f"{what}: malformed JSON reply ({exc.__class__.__name__} at byte {getattr(exc, 'pos', '?')})",
                    path=what,
                ) from None
        if not isinstance(result, dict) or "status" not in result:
            raise MastServiceError(f"{what}: reply is not a MAST envelope", path=what)
        return result

    def query_guide_star_files(
        self,
        program: int | str | None,
        observation: int | str | None = None,
        visit: int | str | None = None,
        exp_types: Sequence[str] | None = ALL_EXP_TYPES,
        date_min_mjd: float | None = None,
        date_max_mjd: float | None = None,
        *,
        suffixes: Sequence[str] = ("cal",),
        unsafe_rows: list[tuple[dict[str, Any], str]] | None = None,
    ) -> list[dict[str, Any]]:
        """Guide-star product rows of ``Mast.Jwst.Filtered.GuideStar`` for one program.

        Filters: ``program`` (sent as both '01534' and '1534': MAST stores the header string, STScI
        code sends it zero-padded), optional ``observtn``/``visit`` (same), ``exp_type`` (None = all),
        and ``date_obs_mjd`` as a continuous ``{"min","max"}`` window (UTC MJD, file start).
        Rows are returned as MAST sent them (store them as-is), deduplicated on ``fileName``, and
        only for safe guider names (see :func:`validate_product_name`) with a suffix in ``suffixes``.
        Unsafe names are dropped with a warning (and appended to ``unsafe_rows`` as ``(row, reason)``
        when a list is given). No match -> :class:`NoResultsWarning` and ``[]``.

        ``program=None`` drops the program filter (every program, for crawling by date window); a
        date window is then required.
        """
        filters: list[dict[str, Any]] = []
        if program is not None:
            filters.append({"paramName": "program", "values": _zero_padded_forms(program, 5)})
        elif date_min_mjd is None and date_max_mjd is None:
            raise ValueError("query_guide_star_files: give a program or a date window")
        if observation is not None:
            filters.append({"paramName": "observtn", "values": _zero_padded_forms(observation, 3)})
        if visit is not None:
            filters.append({"paramName": "visit", "values": _zero_padded_forms(visit, 3)})
        if exp_types:
            bad = sorted(set(exp_types) - set(ALL_EXP_TYPES))
            if bad:
                raise ValueError(f"unknown exp_types {bad}; valid: {', '.join(ALL_EXP_TYPES)}")
            filters.append({"paramName": "exp_type", "values": list(exp_types)})
        if date_min_mjd is not None or date_max_mjd is not None:
            window = {
                "min": float(date_min_mjd if date_min_mjd is not None else _MJD_FLOOR),
                "max": float(date_max_mjd if date_max_mjd is not None else _MJD_CEIL),
            }
            filters.append({"paramName": "date_obs_mjd", "values": [window]})

        raw = self.invoke(GUIDESTAR_SERVICE, {"columns": "*", "filters": filters})
        seen: dict[str, dict[str, Any]] = {}
        unsafe: list[str] = []
        for row in raw:
            name = row.get("fileName")
            try:
                validate_product_name(name)
            except UnsafeFileNameError as exc:
                unsafe.append(str(exc))
                if unsafe_rows is not None:
                    unsafe_rows.append((row, exc.reason))
                continue
            if _suffix_of(name) not in suffixes or name in seen:
                continue
            seen[name] = row
        if unsafe:
            warnings.warn(
                f"{len(unsafe)} MAST row(s) skipped: {unsafe[0]}", UserWarning, stacklevel=2
            )
            logger.warning("skipped %d unsafe MAST row name(s); first: %s", len(unsafe), unsafe[0])
        rows = sorted(seen.values(), key=lambda r: r["fileName"])
        if not rows:
            what = (
                f"program {program}"
                if program is not None
                else f"MJD {date_min_mjd if date_min_mjd is not None else _MJD_FLOOR:.5f}"
                f"-{date_max_mjd if date_max_mjd is not None else _MJD_CEIL:.5f}"
            )
            warnings.warn(
                f"no guide-star files on MAST for {what}"
                + (f" observation {observation}" if observation is not None else "")
                + (f" visit {visit}" if visit is not None else ""),
                NoResultsWarning,
                stacklevel=2,
            )
        logger.info(
            "program %s: %d guide-star file(s) (%d raw rows)",
            program if program is not None else "(any)",
            len(rows),
            len(raw),
        )
        return rows

    # -- downloads ------------------------------------------------------------------------------

    def download_product(
        self,
        name: str,
        dest_dir: str | os.PathLike[str],
        *,
        expected_size: int | None = None,
        checksum: str | None = None,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> Path:
        """Download one product to ``dest_dir/name`` and return that path.

        Streams to ``name.part``; after a drop resumes with ``Range: bytes=N-`` (a 200 answer to a
        Range request restarts from 0); retries 408/429/5xx (honouring ``Retry-After``), timeouts and
        connection errors. Gives up with :class:`MastUnavailableError` after ``max_retries``
        consecutive attempts that made no progress (and after ``10 * (max_retries + 1)`` attempts in
        all). The file is renamed into place only when its size equals the server's total (and
        ``expected_size``) and ``checksum`` (``'sha256:<hex>'``, ``'md5:<hex>'`` or bare hex)
        matches. A complete cached file is returned without any request.
        """
        name = validate_product_name(name)
        digest = _parse_checksum(checksum) if checksum else None
        cfg = self.config
        dest_dir = Path(dest_dir)
        dest = dest_dir / name
        part = dest_dir / (name + ".part")
        what = f"{DOWNLOAD_PATH}?uri={PRODUCT_URI}{name}"

        if dest.is_file():
            size = dest.stat().st_size
            if (expected_size is None or size == expected_size) and (
                digest is None or _file_digest(dest, digest[0]) == digest[1]
            ):
                logger.debug("%s: cached, %d bytes", name, size)
                if progress:
                    progress(name, size, size)
                return dest
            logger.warning(
                "%s: cached copy does not match MAST (size/checksum); fetching again", name
            )

        dest_dir.mkdir(parents=True, exist_ok=True)
        url = cfg.mast_url + DOWNLOAD_PATH
        params = {"uri": PRODUCT_URI + name}
        stalled = attempts = integrity_failures = unreachable = 0
        max_attempts = 10 * (cfg.max_retries + 1)
        while True:
            attempts += 1
            offset = part.stat().st_size if part.exists() else 0
            written = 0
            total: int | None = None
            retry_after: str | None = None
            failure: str | None = None
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                with self._request("GET", url, params=params, headers=headers, stream=True) as resp:
                    status = resp.status_code
                    logger.debug("GET %s (from byte %d) -> HTTP %d", what, offset, status)
                    if status in (401, 403):
                        raise self._auth_error(what, status, f"product {name}")
                    if status == 404:
                        raise MastNotFoundError(
                            f"{what}: HTTP 404, no such product", path=what, status=404
                        )
                    if status == 416:
                        _, total = _parse_content_range(resp.headers.get("Content-Range"))
                        if total is None or offset != total:
                            part.unlink(missing_ok=True)
                            failure = f"HTTP 416 at byte {offset}"
                    elif status in _RETRY_STATUSES or 500 <= status < 600:
                        failure = f"HTTP {status}"
                        retry_after = resp.headers.get("Retry-After")
                    elif status in (200, 206):
                        if status == 206:
                            start, total = _parse_content_range(resp.headers.get("Content-Range"))
                            if start != offset:
                                part.unlink(missing_ok=True)
                                raise _Restart(f"206 from byte {start}, wanted {offset}")
                            mode = "ab"
                        else:
                            length = resp.headers.get("Content-Length")
                            total = int(length) if length and length.isdigit() else None
                            if offset:
                                logger.info(
                                    "%s: server ignored Range; restarting from byte 0", name
                                )
                            offset, mode = 0, "wb"
                        if (
                            expected_size is not None
                            and total is not None
                            and total != expected_size
                        ):
                            raise DownloadIntegrityError(
                                f"{what}: server has {total} bytes but MAST listed {expected_size}",
                                path=what,
                            )
                        with open(part, mode) as fh:
                            for chunk in resp.iter_content(chunk_size=cfg.chunk_size):
                                fh.write(chunk)
                                written += len(chunk)
                                if progress:
                                    progress(name, offset + written, total)
                    else:
                        raise MastServiceError(
                            f"{what}: unexpected HTTP {status}", path=what, status=status
                        )
            except _Restart as exc:
                failure = str(exc)
            except _TRANSIENT_ERRORS as exc:
                failure = f"{type(exc).__name__} after {offset + written} bytes"
                cause = unreachable_reason(exc)
                if cause is not None:
                    unreachable += 1
                    if unreachable > cfg.unreachable_retries:
                        raise self._unreachable_error(what, url, cause, attempts) from None
                    failure = cause

            if failure is None:
                size = part.stat().st_size if part.exists() else 0
                if total is None:
                    total = expected_size if expected_size is not None else size
                if size < total:
                    failure = f"short body: {size} of {total} bytes"
                elif size > total or (
                    digest is not None and _file_digest(part, digest[0]) != digest[1]
                ):
                    part.unlink(missing_ok=True)
                    failure = (
                        f"body longer than announced ({size} > {total} bytes)"
                        if size > total
                        else f"{digest[0]} checksum mismatch"
                    )
                    integrity_failures += 1
                    if integrity_failures > 1:  # one fresh retry, then give up
                        raise DownloadIntegrityError(f"{what}: {failure}", path=what)
                else:
                    os.replace(part, dest)
                    logger.info("%s: downloaded, %d bytes", name, size)
                    return dest

            stalled = 0 if written > 0 else stalled + 1
            if stalled > cfg.max_retries or attempts >= max_attempts:
                raise MastUnavailableError(
                    f"{what}: gave up after {attempts} attempts (last: {failure})", path=what
                )
            delay = 0.0 if written > 0 else self._delay(stalled, retry_after)
            if not written:
                self._notify_retry(name, failure, attempts, cfg.max_retries + 1, delay)
            else:
                logger.info("%s: %s; attempt %d, retry in %.2f s", name, failure, attempts, delay)
            if delay:
                self._sleep(delay)

    def parallel_download(
        self,
        names: Iterable[str],
        dest_dir: str | os.PathLike[str],
        *,
        workers: int = 4,
        expected_sizes: Mapping[str, int] | None = None,
        checksums: Mapping[str, str] | None = None,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> list[DownloadOutcome]:
        """Download many products with a bounded thread pool; one failure never stops the others.

        Returns one :class:`DownloadOutcome` per distinct name, in input order.
        """
        unique = list(dict.fromkeys(names))
        expected_sizes = expected_sizes or {}
        checksums = checksums or {}

        def one(name: str) -> DownloadOutcome:
            try:
                path = self.download_product(
                    name,
                    dest_dir,
                    expected_size=expected_sizes.get(name),
                    checksum=checksums.get(name),
                    progress=progress,
                )
                return DownloadOutcome(name=name, ok=True, path=path)
            except Exception as exc:  # noqa: BLE001 - one file's failure is reported, not raised
                reason = self._scrub(_one_line(str(exc)) or type(exc).__name__)
                logger.warning("%s: download failed: %s", _one_line(repr(name)), reason)
                return DownloadOutcome(
                    name=name, ok=False, reason=reason, error_type=type(exc).__name__
                )

        if not unique:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
            return list(pool.map(one, unique))

    # -- engineering database -------------------------------------------------------------------

    def fetch_edb(
        self,
        mnemonic: str,
        start_mjd: float,
        end_mjd: float,
        *,
        include_bracket: bool = True,
    ) -> list[EdbSample]:
        """EDB records of one mnemonic between two UTC MJDs.

        The request window is whole UTC seconds (start floored, end ceiled). The service adds one
        record before and one after the window; they are kept and flagged ``is_bracket`` (or dropped
        with ``include_bracket=False``). Unknown mnemonic (404, empty reply, or non-CSV text) ->
        :class:`EdbMnemonicError`; a header with no records -> :class:`NoResultsWarning` and ``[]``.
        """
        mnemonic = str(mnemonic).strip().upper()
        if not re.fullmatch(r"[A-Z0-9_]{1,64}", mnemonic, re.ASCII):
            raise EdbMnemonicError(f"invalid EDB mnemonic {mnemonic[:80]!r}")
        if not end_mjd >= start_mjd:
            raise ValueError(f"end_mjd {end_mjd} is before start_mjd {start_mjd}")
        start = _mjd_to_stamp(start_mjd, ceil=False)
        end = _mjd_to_stamp(end_mjd, ceil=True)
        uri = f"{EDB_URI}{mnemonic}-{start}-{end}.csv"
        what = f"{DOWNLOAD_PATH}?uri={uri}"
        resp = self._call(
            "GET", self.config.mast_url + DOWNLOAD_PATH, what=what, params={"uri": uri}
        )
        with resp:
            status = resp.status_code
            if status in (401, 403):
                raise self._auth_error(what, status, "the engineering database")
            if status == 404:
                raise EdbMnemonicError(f"{what}: HTTP 404: unknown mnemonic {mnemonic}", path=what)
            if status != 200:
                raise MastServiceError(
                    f"{what}: unexpected HTTP {status}", path=what, status=status
                )
            text = resp.content.decode("utf-8", errors="replace")

        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise EdbMnemonicError(f"{what}: empty reply: unknown mnemonic {mnemonic}", path=what)
        header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
        if tuple(header[:4]) != EDB_HEADER:
            raise EdbMnemonicError(
                f"{what}: not EDB CSV (unknown mnemonic {mnemonic}?): {self._scrub(lines[0][:120])}",
                path=what,
            )
        samples: list[EdbSample] = []
        for fields in csv.reader(lines[1:]):
            if len(fields) < 4:
                raise MastServiceError(f"{what}: short CSV record {fields!r:.120}", path=what)
            time_mjd = _to_float(fields[1])
            if time_mjd is None:
                raise MastServiceError(f"{what}: bad MJD {fields[1]!r:.40}", path=what)
            text_value = fields[2]
            sql_type = fields[3].strip().lower()
            value = _to_float(text_value) if sql_type in _NUMERIC_SQL_TYPES else None
            bracket = time_mjd < start_mjd or time_mjd > end_mjd
            if bracket and not include_bracket:
                continue
            samples.append(EdbSample(time_mjd, value, text_value, bracket))
        if not samples:
            warnings.warn(
                f"EDB {mnemonic}: no records between MJD {start_mjd} and {end_mjd}",
                NoResultsWarning,
                stacklevel=2,
            )
        return samples

    # -- guide star catalog ---------------------------------------------------------------------

    def lookup_guide_star(
        self,
        gs_id: str,
        *,
        ra: float | None = None,
        dec: float | None = None,
        catalog: str | None = None,
    ) -> dict[str, Any] | None:
        """One GSC row for a guide-star id (GDSTARID = GSC ``hstID``), mapped to archive names.

        Asks ``CatalogSearch.aspx?id=<gs_id>&format=csv&cat=<gsc_catalog>``. When that finds nothing
        and ``ra``/``dec`` (deg) are given, falls back to a 1-arcsec cone search at that position and
        takes the row whose ``hstID`` equals ``gs_id`` (else the nearest). Returns None when there is
        no row; raises :class:`CatalogError` on an ``Error ...`` line or an HTML page.

        Keys: hst_id, gsc2_id, gaia_dr3_id, gaia_dr2_id, ra, dec (deg), epoch (yr), pm_ra, pm_dec
        (mas/yr), parallax (mas), gaia_g_mag, tmass_j_mag, tmass_h_mag, tmass_ks_mag, variable_flag,
        classification, catalog, match ('id' or 'cone'), raw (every column as text).
        """
        gs_id = str(gs_id).strip()
        if not re.fullmatch(r"[A-Za-z0-9]{1,20}", gs_id, re.ASCII):
            raise CatalogError(f"invalid guide-star id {gs_id[:40]!r}")
        cat = catalog or self.config.gsc_catalog
        rows = self._gsc_query({"id": gs_id, "format": "csv", "cat": cat})
        match = "id"
        if not rows and ra is not None and dec is not None:
            rows = self._gsc_query(
                {
                    "ra": f"{ra:.8f}",
                    "dec": f"{dec:.8f}",
                    "sr": f"{1 / 3600:.8f}",
                    "format": "csv",
                    "cat": cat,
                }
            )
            match = "cone"
        if not rows:
            return None
        by_id = [r for r in rows if (_ci_get(r, "hstid") or "").strip().upper() == gs_id.upper()]
        if by_id:
            row = by_id[0]
        elif match == "cone":
            row = min(rows, key=lambda r: _sep_deg(r, ra, dec))
        else:
            row = rows[0]
        return _map_gsc_row(row, cat, match)

    def _gsc_query(self, params: Mapping[str, str]) -> list[dict[str, str]]:
        url = self.config.gsc_url + GSC_PATH
        what = f"{GSC_PATH}?" + "&".join(f"{k}={v}" for k, v in params.items())
        resp = self._call("GET", url, what=what, params=params)
        with resp:
            status = resp.status_code
            text = resp.content.decode("utf-8", errors="replace")
        if status != 200:
            raise CatalogError(f"{what}: HTTP {status}", path=what, status=status)
        return _parse_gsc_csv(text, what, scrub=self._scrub)


class _Restart(Exception):
    """Internal: throw the partial file away and start again."""


# --------------------------------------------------------------------------------------------------
# GSC parsing
# --------------------------------------------------------------------------------------------------

_GSC_FIELDS: dict[str, tuple[str, str]] = {
    # archive key: (GSC column, lower-cased, matched case-insensitively; kind)
    "hst_id": ("hstid", "str"),
    "gsc2_id": ("gsc2id", "str"),
    "gaia_dr3_id": ("gaiadr3sourceid", "id"),
    "gaia_dr2_id": ("gaiadr2sourceid", "id"),
    "ra": ("ra", "float"),
    "dec": ("dec", "float"),
    "epoch": ("epoch", "float"),
    "pm_ra": ("rapm", "float"),
    "pm_dec": ("decpm", "float"),
    "parallax": ("parallax", "float"),
    "gaia_g_mag": ("gaiagmag", "float"),
    "tmass_j_mag": ("tmassjmag", "float"),
    "tmass_h_mag": ("tmasshmag", "float"),
    "tmass_ks_mag": ("tmassksmag", "float"),
    "variable_flag": ("variableflag", "int"),
    "classification": ("classification", "int"),
}


def _ci_get(row: Mapping[str, str], key_lower: str) -> str | None:
    for key, value in row.items():
        if key is not None and key.strip().lower() == key_lower:
            return value
    return None


def _sep_deg(row: Mapping[str, str], ra: float | None, dec: float | None) -> float:
    r_ra, r_dec = _to_float(_ci_get(row, "ra")), _to_float(_ci_get(row, "dec"))
    if None in (r_ra, r_dec, ra, dec):
        return math.inf
    d_ra = math.radians(r_ra - ra)
    a, b = math.radians(r_dec), math.radians(dec)
    c = math.sin(a) * math.sin(b) + math.cos(a) * math.cos(b) * math.cos(d_ra)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def _parse_gsc_csv(
    text: str, what: str, *, scrub: Callable[[str], str] = str
) -> list[dict[str, str]]:
    """CatalogSearch CSV: a status/count line, then a CSV header and rows. Errors -> CatalogError."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] == "<":
        raise CatalogError(f"{what}: got an HTML page instead of CSV", path=what)
    lines = [line for line in stripped.splitlines() if line.strip()]
    if not lines:
        return []
    for line in lines[:2]:
        if line.lstrip().lower().startswith("error"):
            raise CatalogError(f"{what}: {scrub(line.strip())}", path=what)
    first_fields = [f.strip().lower() for f in next(csv.reader([lines[0]]))]
    start = 0 if "hstid" in first_fields else 1  # skip the status line unless absent
    if start >= len(lines):
        return []
    reader = csv.DictReader(lines[start:])
    if not reader.fieldnames or "hstid" not in {f.strip().lower() for f in reader.fieldnames if f}:
        raise CatalogError(
            f"{what}: CSV has no hstID column: {scrub(lines[start][:120])}", path=what
        )
    return [dict(row) for row in reader]


def _map_gsc_row(row: Mapping[str, str], catalog: str, match: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (column, kind) in _GSC_FIELDS.items():
        raw = _ci_get(row, column)
        raw = raw.strip() if isinstance(raw, str) else None
        if not raw:
            out[key] = None
        elif kind == "float":
            out[key] = _to_float(raw)
        elif kind == "int":
            number = _to_float(raw)
            out[key] = int(number) if number is not None else None
        elif kind == "id":
            out[key] = int(raw) if raw.isdigit() else raw
        else:
            out[key] = raw
    out["catalog"] = catalog
    out["match"] = match
    out["raw"] = {k: v for k, v in row.items() if k is not None}
    return out
