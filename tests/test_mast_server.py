"""The MAST-compatible test server on its own: raw HTTP, fault plan, and astroquery as a client."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.io import fits

from fgsarchive.testing.mast_server import FaultPlan, MastTestServer

FG = "jw01534002002_gs-fg_2022338021919_cal.fits"
OTHER = "jw02079004001_gs-fg_2023031214828-seg001_cal.fits"


def _write(path: Path, program: str, seed: int) -> None:
    hdr = fits.Header()
    hdr.update(
        PROGRAM=program,
        OBSERVTN=path.name[7:10],
        VISIT=path.name[10:13],
        EXP_TYPE="FGS_FINEGUIDE",
        GDSTARID="S1HP079555",
        DATASTRT=59917.06,
        DATAEND=59917.07,
        APERNAME="FGS1_FULL",
        DETECTOR="GUIDER1",
    )
    sci = np.random.default_rng(seed).normal(size=(100, 8, 8)).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(sci, name="SCI")]).writeto(path)


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("server_products")
    _write(d / FG, "01534", 1)
    _write(d / OTHER, "02079", 2)
    (d / "notes.txt").write_text("not a product")
    return d


def _invoke(url: str, request: dict) -> dict:
    resp = requests.post(url + "/api/v0/invoke", data={"request": json.dumps(request)}, timeout=5)
    resp.raise_for_status()
    return resp.json()


def test_binds_loopback_only_and_stops(products):
    srv = MastTestServer(products_dir=products)
    with srv:
        assert srv.url.startswith("http://127.0.0.1:")
        assert srv._httpd.server_address[0] == "127.0.0.1"
        assert requests.get(srv.url + "/api/", timeout=5).status_code == 200
        url = srv.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/api/", timeout=2)


def test_guidestar_rows_paging_and_program_forms(products):
    with MastTestServer(products_dir=products, executing_polls=1) as srv:
        req = {
            "service": "Mast.Jwst.Filtered.GuideStar",
            "format": "json",
            "params": {"columns": "*", "filters": [{"paramName": "program", "values": ["1534"]}]},
            "pagesize": 1,
            "page": 1,
        }
        assert _invoke(srv.url, req)["status"] == "EXECUTING"
        first = _invoke(srv.url, req)
        second = _invoke(srv.url, {**req, "page": 2})  # other pages of the same query: no wait
        padded_req = {
            **req,
            "pagesize": 10,
            "params": {
                "columns": "fileName, program",
                "filters": [{"paramName": "program", "values": ["01534"]}],
            },
        }
        assert _invoke(srv.url, padded_req)["status"] == "EXECUTING"  # a new query
        padded = _invoke(srv.url, padded_req)
    assert first["status"] == second["status"] == "COMPLETE"
    assert first["paging"] == {
        "page": 1,
        "pageSize": 1,
        "pagesFiltered": 2,
        "rows": 1,
        "rowsFiltered": 2,
        "rowsTotal": 2,
    }
    row = first["data"][0]
    assert row["fileName"] == FG and row["program"] == "01534" and row["apername"] == "FGS1_FULL"
    assert row["obs_id"].endswith("_guider1") and second["data"][0]["obs_id"] != row["obs_id"]
    assert {f["name"]: f["type"] for f in first["fields"]}["date_obs_mjd"] == "float"
    assert padded["data"] == [{"fileName": FG, "program": "01534"}] * 2


def test_unknown_service_and_unparsable_request_are_error_envelopes(products):
    with MastTestServer(products_dir=products) as srv:
        assert _invoke(srv.url, {"service": "Mast.Nope", "params": {}})["status"] == "ERROR"
        resp = requests.post(srv.url + "/api/v0/invoke", data={"request": "{not json"}, timeout=5)
        assert resp.json()["status"] == "ERROR"


def test_range_requests(products):
    data = (products / FG).read_bytes()
    url = None
    with MastTestServer(products_dir=products) as srv:
        url = srv.url + "/api/v0.1/Download/file"
        params = {"uri": f"mast:JWST/product/{FG}"}
        full = requests.get(url, params=params, timeout=5)
        part = requests.get(url, params=params, headers={"Range": "bytes=100-"}, timeout=5)
        middle = requests.get(url, params=params, headers={"Range": "bytes=10-19"}, timeout=5)
        beyond = requests.get(
            url, params=params, headers={"Range": f"bytes={len(data)}-"}, timeout=5
        )
        missing = requests.get(url, params={"uri": "mast:JWST/product/../etc/passwd"}, timeout=5)
        expected_bytes = (
            2 * len(data) - 100 + 10 + len(b"Range Not Satisfiable") + len(b"Not Found")
        )
        # The server counts a response after writing it: the client may see it a moment sooner.
        deadline = time.monotonic() + 5
        while srv.stats["bytes_served"] < expected_bytes and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = srv.stats
    assert full.status_code == 200 and full.content == data
    assert int(full.headers["Content-Length"]) == len(data)
    assert part.status_code == 206 and part.content == data[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert middle.status_code == 206 and middle.content == data[10:20]
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    assert missing.status_code == 404
    assert stats["range_requests"] == 3 and stats["status"][206] == 2
    assert stats["bytes_served"] == expected_bytes


def test_token_checks(products):
    with MastTestServer(products_dir=products, token="tok", exclusive_programs=[1534]) as srv:
        url = srv.url + "/api/v0.1/Download/file"

        def get(name, auth=None):
            headers = {"Authorization": auth} if auth else {}
            return requests.get(
                url, params={"uri": f"mast:JWST/product/{name}"}, headers=headers, timeout=5
            ).status_code

        assert get(FG) == 401
        assert get(FG, "token wrong") == 401
        assert get(FG, "Bearer tok") == 401
        assert get(FG, "token tok") == 200
        assert get(OTHER) == 200  # not exclusive
        assert "tok" not in json.dumps(srv.request_log).replace("token", "")


def test_fault_plan_is_deterministic_and_validated():
    plan = FaultPlan(seed=3, probabilities={"drop": 0.5})
    draws = [plan.choose("download", "a.fits", n) for n in range(50)]
    assert draws == [
        FaultPlan(seed=3, probabilities={"drop": 0.5}).choose("download", "a.fits", n)
        for n in range(50)
    ]
    assert 10 < draws.count("drop") < 40
    assert all(plan.choose("invoke", "invoke", n) is None for n in range(20))  # endpoint not chosen
    sched = FaultPlan.first_requests_fail(2, "429")
    assert [sched.choose("download", "x.fits", n) for n in range(3)] == ["429", "429", None]
    assert sched.choose("edb", "edb:X", 0) is None  # "*" is for product files only
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan(schedule={"*": ["explode"]})
    with pytest.raises(ValueError, match="endpoint"):
        FaultPlan(endpoints=frozenset({"ftp"}))


def test_astroquery_service_request_works_against_the_server(products):
    """astroquery.mast's own client (columnsconfig, EXECUTING polling, paging) accepts our server."""
    astroquery_mast = pytest.importorskip("astroquery.mast")
    with MastTestServer(products_dir=products, executing_polls=1) as srv:
        m = astroquery_mast.MastClass()
        portal = m._portal_api_connection
        portal.MAST_REQUEST_URL = srv.url + "/api/v0/invoke"
        portal.COLUMNS_CONFIG_URL = srv.url + "/portal/Mashup/Mashup.asmx/columnsconfig"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = m.service_request(
                "Mast.Jwst.Filtered.GuideStar",
                {"columns": "*", "filters": [{"paramName": "program", "values": ["01534"]}]},
                pagesize=1,
            )
        stats = srv.stats
    assert list(table["fileName"]) == [FG, FG]  # two rows: MAST repeats files
    assert stats["by_endpoint"] == {"columnsconfig": 1, "invoke": 3}
    assert stats["executing"] == 1
