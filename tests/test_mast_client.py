"""fgsarchive.mast against the MAST-compatible server on 127.0.0.1 (no network)."""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import logging
import socket
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.io import fits
from hypothesis import given
from hypothesis import strategies as st

from fgsarchive.mast import (
    CatalogError,
    DownloadIntegrityError,
    EdbMnemonicError,
    MastAuthError,
    MastClient,
    MastConfig,
    MastError,
    MastNotFoundError,
    MastServiceError,
    MastUnavailableError,
    NoResultsWarning,
    UnsafeFileNameError,
    _retry_after_seconds,
    checksum_from_row,
    summarize_row,
    validate_product_name,
)
from fgsarchive.testing.mast_server import FaultPlan, MastTestServer

FG = "jw01534002002_gs-fg_2022338021919_cal.fits"
FG_UNCAL = "jw01534002002_gs-fg_2022338021919_uncal.fits"
ACQ1 = "jw01534002001_gs-acq1_2022338014704_cal.fits"
SEG = "jw01534002003_gs-fg_2022338023521-seg001_cal.fits"
ID_IMAGE = "jw01534002003_gs-id_1_image_cal.fits"
PUBLIC = "jw02079004001_gs-fg_2023031214828-seg001_cal.fits"
TOKEN = "s3cret-TOKEN-0123456789abcdef"
WRONG = "WRONG-token-fedcba9876543210"


def write_guider_file(
    path: Path,
    *,
    program: str = "01534",
    observtn: str = "002",
    visit: str = "002",
    exp_type: str = "FGS_FINEGUIDE",
    gdstarid: str = "S1HP079555",
    datastrt: float = 59917.06,
    nints: int = 64,
    seed: int = 0,
) -> Path:
    """A tiny guider-like file: the primary keywords MAST indexes and a small SCI cube."""
    hdr = fits.Header()
    hdr["PROGRAM"] = program
    hdr["OBSERVTN"] = observtn
    hdr["VISIT"] = visit
    hdr["EXP_TYPE"] = exp_type
    hdr["GDSTARID"] = gdstarid
    hdr["GS_RA"] = 80.8375841177552
    hdr["GS_DEC"] = -69.5411237576133
    hdr["GS_MAG"] = 15.2
    hdr["GS_ORDER"] = 1
    hdr["DATASTRT"] = datastrt
    hdr["DATAEND"] = datastrt + nints * 0.064 / 86400
    hdr["NINTS"] = nints
    hdr["APERNAME"] = "FGS2_FULL"
    hdr["DETECTOR"] = "GUIDER2"
    sci = np.random.default_rng(seed).normal(1000, 30, size=(nints, 8, 8)).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(sci, name="SCI")]).writeto(path)
    return path


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mast_products")
    write_guider_file(d / FG, nints=1200, seed=1)  # ~300 kB: several chunks, so drops matter
    write_guider_file(d / FG_UNCAL, nints=16, seed=2)
    write_guider_file(d / ACQ1, visit="001", exp_type="FGS_ACQ1", nints=6, seed=3)
    write_guider_file(d / SEG, visit="003", datastrt=59917.2, nints=300, seed=4)
    write_guider_file(
        d / ID_IMAGE, visit="003", exp_type="FGS_ID-IMAGE", datastrt=59917.19, nints=1, seed=5
    )
    write_guider_file(
        d / PUBLIC,
        program="02079",
        observtn="004",
        visit="001",
        datastrt=59975.84,
        nints=200,
        gdstarid="N13I000018",
        seed=6,
    )
    return d


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def mast(srv: MastTestServer | None = None, *, url: str | None = None, **config):
    """A client with tiny back-offs that records (and performs) its sleeps."""
    base = url or srv.url
    defaults = dict(
        mast_url=base,
        gsc_url=base,
        max_retries=4,
        backoff_s=0.001,
        backoff_max_s=0.01,
        poll_interval_s=0.001,
        timeout_s=5.0,
        chunk_size=16 * 1024,
    )
    defaults.update(config)
    client = MastClient(MastConfig(**defaults))
    client.sleeps = []

    def sleep(seconds: float) -> None:
        client.sleeps.append(seconds)
        import time

        time.sleep(seconds)

    client._sleep = sleep
    try:
        yield client
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------


def test_config_reads_environment_and_hides_token(monkeypatch):
    monkeypatch.setenv("FGSARCHIVE_MAST_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("FGSARCHIVE_GSC_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("MAST_API_TOKEN", TOKEN)
    cfg = MastConfig()
    assert cfg.mast_url == "http://127.0.0.1:1"
    assert cfg.gsc_url == "http://127.0.0.1:2"
    assert cfg.token == TOKEN
    assert TOKEN not in repr(cfg)
    assert MastConfig(token="explicit").token == "explicit"
    with MastClient(cfg) as client:
        assert TOKEN not in repr(client) and "token=set" in repr(client)
    with pytest.raises(ValueError, match="http"):
        MastConfig(mast_url="ftp://example.org")


# ---------------------------------------------------------------------------------------------------
# file names
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        FG,
        FG_UNCAL,
        ACQ1,
        SEG,
        ID_IMAGE,
        "jw00729011001_gs-id_12_image_cal.fits",
        "jw00729011001_gs-id_123_stacked_uncal.fits",
        "jw02725387001_gs-acq2_2022207163949_cal.fits",
        "jw01118005001_gs-track_2022150070312-seg002_uncal.fits",
    ],
)
def test_validate_accepts_guider_names(name):
    assert validate_product_name(name) == name


@pytest.mark.parametrize(
    "name, why",
    [
        ("../" + FG, "separator"),
        ("/etc/" + FG, "separator"),
        ("..", "'..'"),
        ("jw01534002002_gs-fg_2022338021919..cal.fits", "'..'"),
        ("sub\\" + FG, "separator"),
        (FG + "\x00.txt", "control"),
        (FG + "\n", "control"),
        ("C:" + FG, "grammar"),
        ("jw01534002002_gs-fg_2022338021919_stream.fits", "grammar"),
        ("jw01534002002_gs-fg_2022338021919_cal.fits.exe", "grammar"),
        ("jw01534002002_04101_00001_guider2_cal.fits", "grammar"),
        ("jw０1534002002_gs-fg_2022338021919_cal.fits", "grammar"),  # non-ASCII digit
        ("JW01534002002_GS-FG_2022338021919_CAL.FITS", "grammar"),
        ("", "empty"),
        (None, "not a string"),
    ],
)
def test_validate_rejects_unsafe_names(name, why):
    with pytest.raises(UnsafeFileNameError, match=why) as info:
        validate_product_name(name)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, MastError) and isinstance(info.value, ValueError)


@given(st.text(max_size=80))
def test_validate_never_accepts_a_path(name):
    try:
        validate_product_name(name)
    except UnsafeFileNameError:
        return
    assert Path(name).name == name and name.isascii()
    assert "/" not in name and "\\" not in name and ".." not in name
    assert name.endswith(("_cal.fits", "_uncal.fits"))


# ---------------------------------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------------------------------


def test_query_polls_executing_follows_pages_and_dedupes(products):
    with (
        MastTestServer(products_dir=products, executing_polls=2, duplicate_rows=True) as srv,
        mast(srv, page_size=2) as client,
    ):
        rows = client.query_guide_star_files(1534)
        stats = srv.stats
        posted = [json.loads(e) for e in _requests_sent(srv)]
    names = [r["fileName"] for r in rows]
    assert names == sorted({FG, ACQ1, SEG, ID_IMAGE})  # _cal only, each once, sorted
    assert stats["executing"] == 2
    # 4 _cal + 1 _uncal files, twice each = 10 rows -> 5 pages of 2; + 2 EXECUTING answers
    assert stats["by_endpoint"]["invoke"] == 5 + 2
    assert client.sleeps.count(0.001) >= 2  # polled with the configured interval
    first = rows[names.index(FG)]
    assert first["program"] == "01534" and first["exp_type"] == "FGS_FINEGUIDE"
    assert first["dataURI"] == f"mast:JWST/product/{FG}"
    assert first["date_beg"].startswith("/Date(")
    s = summarize_row(first)
    assert (s["program"], s["observation"], s["visit"], s["guider"]) == (1534, 2, 2, 2)
    assert s["gs_id"] == "S1HP079555" and s["file_size"] == (products / FG).stat().st_size
    assert s["date_obs_mjd"] == pytest.approx(59917.06)
    program_filter = posted[0]["params"]["filters"][0]
    assert program_filter == {"paramName": "program", "values": ["01534", "1534"]}
    assert posted[0]["service"] == "Mast.Jwst.Filtered.GuideStar"
    assert posted[0]["params"]["columns"] == "*"


def _requests_sent(srv: MastTestServer) -> list[str]:
    """The JSON requests the client posted, captured by wrapping the server's parser."""
    return srv.captured_requests


@pytest.fixture(autouse=True)
def _capture_invoke_requests(monkeypatch):
    """Record every MashupRequest the server parses (srv.captured_requests)."""
    original = MastTestServer._guidestar

    def spy(self, request):
        self.__dict__.setdefault("captured_requests", []).append(json.dumps(request))
        return original(self, request)

    monkeypatch.setattr(MastTestServer, "_guidestar", spy)


def test_query_filters_observation_visit_exp_type_and_dates(products):
    with MastTestServer(products_dir=products, executing_polls=0) as srv, mast(srv) as client:
        by_visit = client.query_guide_star_files("01534", observation=2, visit=3)
        fg_only = client.query_guide_star_files(1534, exp_types=["FGS_FINEGUIDE"])
        window = client.query_guide_star_files(1534, date_min_mjd=59917.1, date_max_mjd=59917.3)
        open_ended = client.query_guide_star_files(1534, date_min_mjd=59917.1)
        other = client.query_guide_star_files(2079, suffixes=("cal", "uncal"))
        sent = [json.loads(r) for r in srv.captured_requests]
    assert {r["fileName"] for r in by_visit} == {SEG, ID_IMAGE}
    assert {r["fileName"] for r in fg_only} == {FG, SEG}
    assert {r["fileName"] for r in window} == {SEG, ID_IMAGE}
    assert {r["fileName"] for r in open_ended} == {SEG, ID_IMAGE}
    assert [r["fileName"] for r in other] == [PUBLIC]
    date_filter = sent[2]["params"]["filters"][-1]
    assert date_filter == {
        "paramName": "date_obs_mjd",
        "values": [{"min": 59917.1, "max": 59917.3}],
    }
    assert sent[0]["params"]["filters"][1] == {"paramName": "observtn", "values": ["002", "2"]}
    with pytest.raises(ValueError, match="FGS_FINEGUIDE"):
        client.query_guide_star_files(1534, exp_types=["FGS_SCIENCE"])


def test_query_uncal_included_on_request(products):
    with MastTestServer(products_dir=products) as srv, mast(srv) as client:
        rows = client.query_guide_star_files(1534, visit=2, suffixes=("cal", "uncal"))
    assert [r["fileName"] for r in rows] == [FG, FG_UNCAL]


def test_empty_query_warns(products):
    with MastTestServer(products_dir=products) as srv, mast(srv) as client:
        with pytest.warns(NoResultsWarning, match="program 9999"):
            assert client.query_guide_star_files(9999) == []


def test_error_envelope_raises_service_error(products):
    with MastTestServer(products_dir=products) as srv, mast(srv) as client:
        with pytest.raises(MastServiceError, match="Unknown service: Mast.No.Such") as info:
            client.invoke("Mast.No.Such", {"columns": "*", "filters": []})
        assert "/api/v0/invoke" in str(info.value)
        with pytest.raises(MastServiceError, match="ERROR"):
            client.invoke(
                "Mast.Jwst.Filtered.GuideStar",
                {"columns": "*", "filters": [{"paramName": "nosuchcolumn", "values": ["1"]}]},
            )
    faults = FaultPlan(schedule={"invoke": [None, "service_error"]})
    with MastTestServer(products_dir=products, faults=faults, executing_polls=1) as srv:
        with mast(srv) as client, pytest.raises(MastServiceError, match="Internal error"):
            client.query_guide_star_files(1534)


def test_malformed_json_raises_service_error(products):
    faults = FaultPlan(schedule={"invoke": ["bad_json"]})
    with MastTestServer(products_dir=products, faults=faults) as srv, mast(srv) as client:
        with pytest.raises(MastServiceError, match="malformed JSON"):
            client.query_guide_star_files(1534)
        assert srv.stats["faults"] == {"bad_json": 1}


def test_query_retries_503_and_429_on_invoke(products):
    faults = FaultPlan(schedule={"invoke": ["503", "429", "reset"]}, retry_after="0")
    with MastTestServer(products_dir=products, faults=faults) as srv, mast(srv) as client:
        rows = client.query_guide_star_files(1534, visit=2)
        assert [r["fileName"] for r in rows] == [FG]
        assert srv.stats["faults"] == {"503": 1, "429": 1, "reset": 1}


def test_unsafe_names_from_mast_are_skipped_and_never_written(products, tmp_path):
    hostile = [
        "../../" + FG,
        "/etc/passwd",
        FG + "\x00.txt",
        "jw01534002002_gs-fg_2022338021919_cal.fits/../../x_cal.fits",
        "..\\..\\evil_cal.fits",
    ]
    extra = [{"fileName": n, "program": "01534", "exp_type": "FGS_FINEGUIDE"} for n in hostile]
    dest = tmp_path / "dest"
    with MastTestServer(products_dir=products, extra_rows=extra) as srv, mast(srv) as client:
        with pytest.warns(UserWarning, match="5 MAST row"):
            rows = client.query_guide_star_files(1534)
        assert {r["fileName"] for r in rows} == {FG, ACQ1, SEG, ID_IMAGE}
        before = srv.stats["requests"]
        for name in hostile:
            with pytest.raises(UnsafeFileNameError):
                client.download_product(name, dest)
        outcomes = client.parallel_download(hostile, dest, workers=2)
        assert srv.stats["requests"] == before  # nothing was even asked for
    assert not dest.exists()
    assert all(not o.ok and o.error_type == "UnsafeFileNameError" for o in outcomes)
    assert sorted(p.name for p in tmp_path.rglob("*")) == []
    assert not (tmp_path.parent / "passwd").exists()


# ---------------------------------------------------------------------------------------------------
# downloads
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["503", "429", "500", "reset", "drop", "truncate", "slow"])
def test_download_survives_each_fault_kind(products, tmp_path, kind):
    faults = FaultPlan(schedule={"*": [kind, kind]}, retry_after="0", slow_s=0.05)
    with MastTestServer(products_dir=products, faults=faults) as srv, mast(srv) as client:
        path = client.download_product(FG, tmp_path, expected_size=(products / FG).stat().st_size)
        stats = srv.stats
    assert path == tmp_path / FG
    assert sha256(path) == sha256(products / FG)
    assert not (tmp_path / (FG + ".part")).exists()
    assert stats["faults"] == {kind: 1 if kind == "slow" else 2}  # a slow reply still succeeds
    if kind == "truncate":
        assert stats["status"].get(206, 0) >= 1  # resumed rather than restarted


def test_resume_uses_range_and_cached_file_is_not_fetched(products, tmp_path):
    faults = FaultPlan(schedule={"*": ["truncate"]}, partial_fraction=0.6)
    with MastTestServer(products_dir=products, faults=faults) as srv, mast(srv) as client:
        seen: list[tuple[int, int | None]] = []
        client.download_product(
            FG, tmp_path, progress=lambda n, done, tot: seen.append((done, tot))
        )
        stats = srv.stats
        ranges = [e["range"] for e in srv.request_log]
        assert stats["status"][206] == 1 and stats["range_requests"] == 1
        assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
        size = (products / FG).stat().st_size
        assert seen[-1] == (size, size)
        requests_before = srv.stats["requests"]
        again = client.download_product(FG, tmp_path, expected_size=size)
        outcomes = client.parallel_download([FG], tmp_path)
        assert srv.stats["requests"] == requests_before  # a complete cached file: no request
    assert again == tmp_path / FG and outcomes[0].ok
    assert sha256(again) == sha256(products / FG)


def test_server_ignoring_range_restarts_from_zero(products, tmp_path):
    faults = FaultPlan(schedule={"*": ["truncate"]})
    with (
        MastTestServer(products_dir=products, faults=faults, honour_range=False) as srv,
        mast(srv) as client,
    ):
        path = client.download_product(FG, tmp_path)
        assert srv.stats["range_requests"] == 1 and 206 not in srv.stats["status"]
    assert sha256(path) == sha256(products / FG)


def test_stale_part_file_longer_than_product_is_replaced(products, tmp_path):
    (tmp_path / (ACQ1 + ".part")).write_bytes(b"x" * ((products / ACQ1).stat().st_size + 10))
    with MastTestServer(products_dir=products) as srv, mast(srv) as client:
        path = client.download_product(ACQ1, tmp_path)
    assert sha256(path) == sha256(products / ACQ1)


def test_retry_after_seconds_is_honoured(products, tmp_path):
    faults = FaultPlan(schedule={"*": ["503"]}, retry_after="1")
    with MastTestServer(products_dir=products, faults=faults) as srv, mast(srv) as client:
        client.download_product(ACQ1, tmp_path)
    assert client.sleeps == [1.0]  # not the 0.001 s back-off


def test_retry_after_http_date_is_honoured(products, tmp_path):
    when = datetime.now(UTC) + timedelta(seconds=2)
    faults = FaultPlan(
        schedule={"*": ["429"]}, retry_after=email.utils.format_datetime(when, usegmt=True)
    )
    with MastTestServer(products_dir=products, faults=faults) as srv, mast(srv) as client:
        client.download_product(ACQ1, tmp_path)
    assert len(client.sleeps) == 1 and 0.0 <= client.sleeps[0] <= 2.0


def test_retry_after_parsing():
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert _retry_after_seconds("120") == 120.0
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=now) == 30.0
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0
    assert _retry_after_seconds("soon") is None
    assert _retry_after_seconds(None) is None


def test_retry_after_is_capped(products, tmp_path):
    faults = FaultPlan(schedule={"*": ["503"]}, retry_after="3600")
    with MastTestServer(products_dir=products, faults=faults) as srv:
        with mast(srv, retry_after_max_s=0.01) as client:
            client.download_product(ACQ1, tmp_path)
    assert client.sleeps == [0.01]


def test_persistent_failure_gives_up_after_bounded_retries(products, tmp_path):
    faults = FaultPlan(schedule={"*": ["503"] * 50}, retry_after=None)
    with (
        MastTestServer(products_dir=products, faults=faults) as srv,
        mast(srv, max_retries=3) as client,
    ):
        with pytest.raises(MastUnavailableError, match="gave up after 4 attempts") as info:
            client.download_product(ACQ1, tmp_path)
        assert srv.stats["by_file"][ACQ1] == 4
    assert "/api/v0.1/Download/file?uri=mast:JWST/product/" + ACQ1 in str(info.value)
    assert not (tmp_path / ACQ1).exists()


def test_unknown_product_is_not_found(products, tmp_path):
    with MastTestServer(products_dir=products) as srv, mast(srv) as client:
        with pytest.raises(MastNotFoundError, match="404"):
            client.download_product("jw09999001001_gs-fg_2022338021919_cal.fits", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_expected_size_and_checksum_are_verified(products, tmp_path):
    size = (products / ACQ1).stat().st_size
    good = "sha256:" + sha256(products / ACQ1)
    with MastTestServer(products_dir=products, checksums=True) as srv, mast(srv) as client:
        rows = client.query_guide_star_files(1534, visit=1)
        assert checksum_from_row(rows[0]) == good
        with pytest.raises(DownloadIntegrityError, match=f"listed {size + 1}"):
            client.download_product(ACQ1, tmp_path, expected_size=size + 1)
        assert not (tmp_path / ACQ1).exists()
        with pytest.raises(DownloadIntegrityError, match="checksum mismatch"):
            client.download_product(ACQ1, tmp_path, checksum="sha256:" + "0" * 64)
        assert not (tmp_path / ACQ1).exists() and not (tmp_path / (ACQ1 + ".part")).exists()
        path = client.download_product(ACQ1, tmp_path, expected_size=size, checksum=good)
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        assert client.download_product(ACQ1, tmp_path, checksum=md5) == path  # bare hex, cached
        with pytest.raises(ValueError, match="checksum"):
            client.download_product(ACQ1, tmp_path, checksum="crc32:1234")
    assert checksum_from_row({"checksum": "not-a-digest"}) is None


def test_cached_file_with_wrong_size_is_fetched_again(products, tmp_path):
    (tmp_path / ACQ1).write_bytes(b"stale")
    with MastTestServer(products_dir=products) as srv, mast(srv) as client:
        path = client.download_product(
            ACQ1, tmp_path, expected_size=(products / ACQ1).stat().st_size
        )
        assert srv.stats["by_file"][ACQ1] == 1
    assert sha256(path) == sha256(products / ACQ1)


def test_parallel_download_with_random_faults_is_byte_identical(products, tmp_path):
    faults = FaultPlan(
        seed=7,
        probabilities={"drop": 0.2, "truncate": 0.2, "503": 0.15, "reset": 0.1},
        retry_after="0",
    )
    names = [FG, ACQ1, SEG, ID_IMAGE, PUBLIC]
    with MastTestServer(products_dir=products, faults=faults) as srv:
        with mast(srv, max_retries=8) as client:
            outcomes = client.parallel_download(names + [FG], tmp_path, workers=4)
        stats = srv.stats
    assert [o.name for o in outcomes] == names  # distinct, in input order
    assert all(o.ok for o in outcomes), [o.reason for o in outcomes if not o.ok]
    for name in names:
        assert sha256(tmp_path / name) == sha256(products / name)
    assert sum(stats["faults"].values()) > 0
    assert not list(tmp_path.glob("*.part"))


def test_parallel_download_one_failure_does_not_stop_the_others(products, tmp_path):
    missing = "jw09999001001_gs-fg_2022338021919_cal.fits"
    names = [FG, missing, "../" + ACQ1, PUBLIC]
    with (
        MastTestServer(products_dir=products, token=TOKEN, exclusive_programs={1534}) as srv,
        mast(srv, token=None) as client,
    ):
        outcomes = {o.name: o for o in client.parallel_download(names, tmp_path, workers=3)}
    assert outcomes[PUBLIC].ok and sha256(tmp_path / PUBLIC) == sha256(products / PUBLIC)
    assert outcomes[FG].error_type == "MastAuthError" and "token" in outcomes[FG].reason
    assert outcomes[missing].error_type == "MastNotFoundError"
    assert outcomes["../" + ACQ1].error_type == "UnsafeFileNameError"
    assert sorted(p.name for p in tmp_path.iterdir()) == [PUBLIC]


# ---------------------------------------------------------------------------------------------------
# tokens
# ---------------------------------------------------------------------------------------------------


def test_auth_errors_and_the_token_never_leaks(products, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    telemetry = {"SA_ZFGGSPOSX": ([59917.0, 59917.00001], [0.1, 0.2])}
    errors: list[str] = []
    with MastTestServer(
        products_dir=products, telemetry=telemetry, token=TOKEN, exclusive_programs={1534}
    ) as srv:
        with mast(srv, token=None) as client:
            with pytest.raises(MastAuthError, match="no MAST token is set") as info:
                client.download_product(FG, tmp_path)
            errors.append(str(info.value))
            assert client.download_product(PUBLIC, tmp_path).exists()  # public data needs none
            with pytest.raises(MastAuthError, match="token"):
                client.fetch_edb("SA_ZFGGSPOSX", 59917.0, 59917.0001)
        with mast(srv, token=WRONG) as client:
            with pytest.raises(MastAuthError, match="expired, invalid or lacks rights") as info:
                client.download_product(FG, tmp_path)
            errors.append(str(info.value))
            errors.append(repr(info.value))
            outcome = client.parallel_download([FG], tmp_path)[0]
            errors.append(outcome.reason)
            with pytest.raises(MastAuthError, match=r"HTTP 401.*engineering database") as info:
                client.fetch_edb("SA_ZFGGSPOSX", 59917.0, 59917.0001)
            errors.append(str(info.value))
            errors.append(repr(client))
        faults = FaultPlan(schedule={"*": ["drop", "503"]}, retry_after="0")
        srv.faults = faults
        with mast(srv, token=TOKEN) as client:
            path = client.download_product(FG, tmp_path)
            assert sha256(path) == sha256(products / FG)
            assert len(client.fetch_edb("SA_ZFGGSPOSX", 59917.0, 59917.00001)) == 2
            errors.append(repr(client))
            errors.append(repr(client.config))
        log_of_server = json.dumps(srv.request_log)
    assert all("token" in e for e in errors[:2])
    for secret in (TOKEN, WRONG):
        assert secret not in caplog.text
        assert all(secret not in e for e in errors)
        assert secret not in log_of_server
        for f in tmp_path.rglob("*"):
            assert secret.encode() not in f.read_bytes()
    assert "present" in log_of_server  # the header was sent, just never recorded


def test_token_is_not_sent_to_the_catalog(products):
    catalog = {"S1HP079555": {"ra": 80.83, "dec": -69.54}}
    with MastTestServer(products_dir=products, catalog=catalog) as mast_srv:
        with MastTestServer(catalog=catalog) as gsc_srv:
            with mast(mast_srv, gsc_url=gsc_srv.url, token=TOKEN) as client:
                client.query_guide_star_files(1534, visit=2)
                assert client.lookup_guide_star("S1HP079555")["ra"] == pytest.approx(80.83)
            assert gsc_srv.request_log[0]["auth"] == "absent"
            assert mast_srv.request_log[0]["auth"] == "present"


def test_server_text_echoing_the_token_is_scrubbed(tmp_path):
    """A misbehaving server that echoes the header: the message must not carry the token."""
    with mast(url="http://127.0.0.1:9", token=TOKEN) as client:

        def fake_request(method, url, **kw):
            resp = requests.Response()
            resp.status_code = 200
            resp._content = json.dumps(
                {"status": "ERROR", "msg": f"bad header Authorization: token {TOKEN}"}
            ).encode()
            return resp

        client._request = fake_request  # the one seam
        with pytest.raises(MastServiceError) as info:
            client.invoke("Mast.Jwst.Filtered.GuideStar", {"columns": "*", "filters": []})
    assert TOKEN not in str(info.value) and "<token>" in str(info.value)


# ---------------------------------------------------------------------------------------------------
# MAST down
# ---------------------------------------------------------------------------------------------------


def test_refused_connection_fails_fast_naming_the_host(tmp_path):
    """Nothing listening is not a busy server: one quick retry, then an error naming the host."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with mast(url=url, max_retries=5) as client:
        with pytest.raises(MastUnavailableError) as info:
            client.query_guide_star_files(1534)
        assert len(client.sleeps) == 1  # unreachable_retries=1, not max_retries=5
        text = str(info.value)
        assert f"cannot reach 127.0.0.1:{port}" in text and "connection refused" in text
        assert "/api/v0/invoke" in text
        client.sleeps.clear()
        with pytest.raises(MastUnavailableError, match="cannot reach"):
            client.download_product(FG, tmp_path)
        assert len(client.sleeps) == 1
        with pytest.raises(MastUnavailableError, match="cannot reach"):
            client.fetch_edb("SA_ZFGGSPOSX", 59917.0, 59917.001)
        with pytest.raises(MastUnavailableError, match="cannot reach"):
            client.lookup_guide_star("S1HP079555")
    assert isinstance(info.value, MastError) and info.value.exit_code == 4
    assert list(tmp_path.iterdir()) == []


def test_unresolvable_host_names_the_environment_variable(monkeypatch):
    monkeypatch.setenv("FGSARCHIVE_MAST_URL", "http://no-such-host.invalid")
    client = MastClient(MastConfig(backoff_s=0.0, max_retries=5))
    client._sleep = lambda s: None
    with client, pytest.raises(MastUnavailableError) as info:
        client.query_guide_star_files(1534)
    text = str(info.value)
    assert "no-such-host.invalid" in text and "FGSARCHIVE_MAST_URL=" in text
    assert "host name not resolved" in text


def test_timeouts_still_retry_with_backoff_and_report_each_retry():
    seen = []
    with mast(
        url="http://127.0.0.1:9", max_retries=2, on_retry=lambda *a: seen.append(a)
    ) as client:
        calls = []

        def slow(method, url, **kw):
            calls.append(url)
            raise requests.ConnectTimeout("timed out")

        client._request = slow
        with pytest.raises(MastUnavailableError, match="unavailable after 3 attempts"):
            client.query_guide_star_files(1534)
    assert len(calls) == 3 and len(client.sleeps) == 2
    assert [a[2:4] for a in seen] == [(1, 3), (2, 3)]  # (attempt, of) for the CLI's notice
    assert all(a[1] == "ConnectTimeout" for a in seen)


# ---------------------------------------------------------------------------------------------------
# EDB
# ---------------------------------------------------------------------------------------------------

T0 = 59917.0
SECOND = 1 / 86400


@pytest.fixture(scope="module")
def telemetry():
    times = [T0 + k * SECOND for k in range(60)]
    return {
        "SA_ZFGGSPOSX": (times, [0.25 * k - 3.0 for k in range(60)]),
        "SA_ZHGAUPST": (times[::10], ["MOVING", "FINISHED"] * 3),
        "SA_ZFGDETID": (times[::20], np.array([1, 2, 1], dtype=np.int64)),
        "ICTM_EVENT_MSG": (times[:2], ['FGS "track", mode ok', ""]),
    }


def test_edb_numeric_with_bracketing_rows(telemetry):
    with MastTestServer(telemetry=telemetry, token=TOKEN) as srv, mast(srv, token=TOKEN) as client:
        start, end = T0 + 10.5 * SECOND, T0 + 20.2 * SECOND
        rows = client.fetch_edb("sa_zfggsposx ", start, end)
        trimmed = client.fetch_edb("SA_ZFGGSPOSX", start, end, include_bracket=False)
        uri = srv.request_log[0]["uri"]
    assert uri == "mast:jwstedb/SA_ZFGGSPOSX-20221204T000010-20221204T000021.csv"
    # whole-second window 10..21 s, plus one bracketing record each side (9 s and 22 s)
    assert [round((r.time_mjd - T0) / SECOND) for r in rows] == list(range(9, 23))
    assert [r.is_bracket for r in rows] == [True, True] + [False] * 10 + [True, True]
    assert [r.value for r in trimmed] == pytest.approx([0.25 * k - 3.0 for k in range(11, 21)])
    assert all(r.value_text and not r.is_bracket for r in trimmed)


def test_edb_text_int_and_quoted_values(telemetry):
    with MastTestServer(telemetry=telemetry) as srv, mast(srv) as client:
        hga = client.fetch_edb("SA_ZHGAUPST", T0 + 5 * SECOND, T0 + 35 * SECOND)
        det = client.fetch_edb("SA_ZFGDETID", T0, T0 + 59 * SECOND)
        msg = client.fetch_edb("ICTM_EVENT_MSG", T0, T0 + SECOND)
    assert [(r.value, r.value_text, r.is_bracket) for r in hga][:2] == [
        (None, "MOVING", True),
        (None, "FINISHED", False),
    ]
    assert [r.value_text for r in hga] == ["MOVING", "FINISHED", "MOVING", "FINISHED", "MOVING"]
    assert [r.value for r in det] == [1.0, 2.0, 1.0]
    assert [r.value_text for r in msg] == ['FGS "track", mode ok', ""]


def test_edb_reply_uses_crlf(telemetry):
    with MastTestServer(telemetry=telemetry) as srv:
        resp = requests.get(
            srv.url + "/api/v0.1/Download/file",
            params={"uri": "mast:jwstedb/SA_ZFGGSPOSX-20221204T000001-20221204T000003.csv"},
            timeout=5,
        )
    body = resp.content
    assert body.startswith(b"theTime,MJD,euvalue,sqldataType\r\n")
    assert body.count(b"\n") == body.count(b"\r\n") == 6  # header + 3 inside + 2 bracketing


@pytest.mark.parametrize("mode", ["404", "empty", "text"])
def test_edb_unknown_mnemonic(telemetry, mode):
    with MastTestServer(telemetry=telemetry, edb_unknown=mode) as srv, mast(srv) as client:
        with pytest.raises(EdbMnemonicError, match="SA_NOSUCHTHING"):
            client.fetch_edb("SA_NOSUCHTHING", T0, T0 + SECOND)


def test_edb_invalid_mnemonic_is_refused_without_a_request(telemetry):
    with MastTestServer(telemetry=telemetry) as srv, mast(srv) as client:
        for bad in ("../secret", "SA ZFG", "SA_X-20220101T000000", ""):
            with pytest.raises(EdbMnemonicError, match="invalid EDB mnemonic"):
                client.fetch_edb(bad, T0, T0 + SECOND)
        assert srv.stats["requests"] == 0


def test_edb_no_records_warns(telemetry):
    with MastTestServer(telemetry={"SA_EMPTY": ([], [])}) as srv, mast(srv) as client:
        with pytest.warns(NoResultsWarning, match="SA_EMPTY"):
            assert client.fetch_edb("SA_EMPTY", T0, T0 + SECOND) == []


def test_edb_retries_faults(telemetry):
    faults = FaultPlan(schedule={"edb:SA_ZFGGSPOSX": ["503", "truncate", "reset"]}, retry_after="0")
    with MastTestServer(telemetry=telemetry, faults=faults) as srv, mast(srv) as client:
        rows = client.fetch_edb("SA_ZFGGSPOSX", T0 + SECOND, T0 + 2 * SECOND)
        assert srv.stats["faults"] == {"503": 1, "truncate": 1, "reset": 1}
    assert len(rows) == 4


# ---------------------------------------------------------------------------------------------------
# GSC
# ---------------------------------------------------------------------------------------------------

CATALOG = {
    "S1HP079555": {
        "gsc2ID": "S013203179555",
        "GAIAdr2sourceID": "4658077781376437888",
        "GAIAdr3sourceID": "4658077781377287680",
        "ra": 80.8375841177552,
        "dec": -69.5411237576133,
        "epoch": 2015.5,
        "rapm": 2.2538,
        "decpm": -0.41,
        "parallax": 0.0767,
        "classification": 0,
        "variableFlag": "",
        "gaiaGmag": 16.1666,
        "tmassJMag": 13.659,
        "tmassHMag": 12.898,
        "tmassKsMag": 12.690,
        "objID": "2013203179555",
    },
    "N13I000018": {"ra": 10.0, "dec": 20.0, "gaiaGmag": 12.0, "variableFlag": 1},
}


def test_gsc_lookup_maps_columns(products):
    with MastTestServer(catalog=CATALOG) as srv, mast(srv) as client:
        star = client.lookup_guide_star("S1HP079555")
        other = client.lookup_guide_star("n13i000018")
        assert srv.request_log[0]["catalog"] == "GSC243"  # pinned CAT=
    assert star["hst_id"] == "S1HP079555" and star["match"] == "id"
    assert star["gaia_dr3_id"] == 4658077781377287680
    assert star["gaia_dr2_id"] == 4658077781376437888
    assert (star["ra"], star["dec"]) == pytest.approx((80.8375841177552, -69.5411237576133))
    assert (star["pm_ra"], star["pm_dec"], star["epoch"]) == pytest.approx((2.2538, -0.41, 2015.5))
    assert (star["tmass_j_mag"], star["tmass_h_mag"], star["tmass_ks_mag"]) == pytest.approx(
        (13.659, 12.898, 12.690)
    )
    assert star["gaia_g_mag"] == pytest.approx(16.1666)
    assert star["variable_flag"] is None and star["classification"] == 0
    assert star["raw"]["objID"] == "2013203179555" and star["catalog"] == "GSC243"
    assert other["variable_flag"] == 1 and other["tmass_j_mag"] is None


def test_gsc_column_names_are_matched_case_insensitively():
    columns = ("hstID", "ra", "dec", "tmassJmag", "tmassHmag", "TMASSKSMAG", "GaiaGMag")
    catalog = {
        "S1HP079555": {
            "ra": 1.0,
            "dec": 2.0,
            "tmassjmag": 13.6,
            "tmasshmag": 12.9,
            "tmassksmag": 12.7,
            "gaiagmag": 16.2,
        }
    }
    with MastTestServer(catalog=catalog, gsc_columns=columns) as srv, mast(srv) as client:
        star = client.lookup_guide_star("S1HP079555", catalog="GSC241")
        assert srv.request_log[0]["catalog"] == "GSC241"
    assert (star["tmass_j_mag"], star["tmass_h_mag"], star["tmass_ks_mag"]) == (13.6, 12.9, 12.7)
    assert star["gaia_g_mag"] == 16.2 and star["gaia_dr3_id"] is None


def test_gsc_unknown_id_is_none_and_cone_fallback():
    with MastTestServer(catalog=CATALOG) as srv, mast(srv) as client:
        assert client.lookup_guide_star("S1HP000000") is None
        star = client.lookup_guide_star("S1HP000000", ra=80.8375841, dec=-69.5411238)
        far = client.lookup_guide_star("S1HP000000", ra=81.0, dec=-69.0)
    assert star["hst_id"] == "S1HP079555" and star["match"] == "cone"
    assert far is None


@pytest.mark.parametrize("reply, match", [("error", "Error: The catalog query"), ("html", "HTML")])
def test_gsc_error_line_and_html_raise(reply, match):
    with MastTestServer(catalog=CATALOG, gsc_reply=reply) as srv, mast(srv) as client:
        with pytest.raises(CatalogError, match=match) as info:
            client.lookup_guide_star("S1HP079555")
    assert "/webservices/vo/CatalogSearch.aspx" in str(info.value)
    assert "\n" not in str(info.value)


def test_gsc_invalid_id_and_retries():
    faults = FaultPlan(schedule={"gsc": ["503", "slow"]}, retry_after="0", slow_s=0.01)
    with MastTestServer(catalog=CATALOG, faults=faults) as srv, mast(srv) as client:
        with pytest.raises(CatalogError, match="invalid guide-star id"):
            client.lookup_guide_star("S1HP&cat=x")
        assert client.lookup_guide_star("S1HP079555")["hst_id"] == "S1HP079555"
        assert srv.stats["faults"] == {"503": 1, "slow": 1}


def test_no_warnings_leak_from_a_clean_run(products, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with MastTestServer(products_dir=products) as srv, mast(srv) as client:
            rows = client.query_guide_star_files(1534, visit=1)
            client.download_product(rows[0]["fileName"], tmp_path)
