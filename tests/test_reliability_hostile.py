"""Hostile input: corrupt guider files, hostile MAST rows and names, SQL that tries to escape.

Every bad file must end as ``status = 'failed'`` with a one-line reason (never a crash, never a
half-written part); MAST names must never become paths outside the cache; ``fgsarchive query``
must refuse anything that writes, reads outside the archive or changes settings.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fgsarchive.cli import app
from fgsarchive.db import Database, run_user_query
from fgsarchive.errors import FgsArchiveError, QueryError
from fgsarchive.ingest import ingest_paths, prepare_file
from fgsarchive.maintenance import archive_checksums
from fgsarchive.mast import UnsafeFileNameError, summarize_row, validate_product_name
from fgsarchive.simulate import simulate_program
from fgsarchive.storage import part_name

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """One valid fine-guide file of 40 frames (60 KB) in the real layout."""
    out = tmp_path_factory.mktemp("tiny")
    prog = simulate_program(
        out, program=1534, n_visits=1, frames_per_file=40, include_other_products=False, seed=1
    )
    return prog.fg_files[0]


def _check_row(row: dict, parts_root: Path) -> None:
    """The contract of prepare_file for any input: a files row, failed with a reason or whole."""
    assert row["status"] in ("ingested", "failed"), row
    staged = parts_root / "_staging" / part_name(str(row["file_name"]))
    if row["status"] == "failed":
        assert isinstance(row["error"], str) and row["error"].strip(), row
        assert "\n" not in row["error"]
        assert not staged.exists(), "a failed file left staged parts"
    elif row["product"] == "fg":
        assert row["n_frames"] >= 1
        frames = pq.read_table(staged / "frames.parquet")
        assert frames.num_rows == row["n_frames"]
        assert np.isfinite(frames.column("time_mjd").to_numpy()).all()


def _set_card(data: bytearray, key: str, value: str, occurrence: int = 0) -> bytearray:
    """Overwrite the value field of the ``occurrence``-th header card ``key`` (fixed 80-char cards)."""
    needle = f"{key:<8}= ".encode()
    start = -1
    for _ in range(occurrence + 1):
        start = data.index(needle, start + 1)
        assert start % 80 == 0
    data[start + 10 : start + 80] = f"{value:>20}".ljust(70).encode()
    return data


# --------------------------------------------------------------------------------------------------
# corrupt files
# --------------------------------------------------------------------------------------------------

CARD_CASES = [
    # (name, key, value, occurrence (0 = primary for DATA*, SCI for NAXIS*), expected words)
    ("naxis3-huge", "NAXIS3", "1000000000000", 0, ""),
    ("naxis3-zero", "NAXIS3", "0", 0, "0 integrations"),
    ("naxis-2", "NAXIS", "2", 0, ""),
    ("naxis1-9", "NAXIS1", "9", 0, ""),
    ("naxis-999", "NAXIS", "999", 0, ""),
    ("bitpix-7", "BITPIX", "7", 1, ""),
    ("datastrt-nan", "DATASTRT", "'NAN'", 0, "DATASTRT"),
    ("dataend-inf", "DATAEND", "'INF'", 0, "DATASTRT"),
    ("dataend-1e999", "DATAEND", "1E999", 0, "DATASTRT"),
    ("dataend-before-start", "DATAEND", "1.0", 0, "not after"),
    ("sci-renamed", "EXTNAME", "'SCX'", 0, "no SCI"),
    ("datastrt-text", "DATASTRT", "'yesterday'", 0, "DATASTRT"),
]


@pytest.mark.parametrize(
    "name,key,value,occurrence,words", CARD_CASES, ids=[c[0] for c in CARD_CASES]
)
def test_corrupt_header_cards_fail_with_a_reason(
    tiny, tmp_path, name, key, value, occurrence, words
):
    data = _set_card(bytearray(tiny.read_bytes()), key, value, occurrence)
    path = tmp_path / tiny.name
    path.write_bytes(bytes(data))
    row = prepare_file(path, tmp_path / "parts")
    _check_row(row, tmp_path / "parts")
    assert row["status"] == "failed", (name, row)
    assert words.lower() in row["error"].lower(), (name, row["error"])


def _fits_with(tmp_path: Path, tiny: Path, sci_hdu, *, keep_tables: bool = True) -> Path:
    with fits.open(tiny) as hdul:
        hdus = [fits.PrimaryHDU(header=hdul[0].header)]
        if sci_hdu is not None:
            hdus.append(sci_hdu)
        if keep_tables:
            hdus += [hdu.copy() for hdu in hdul[2:]]
        path = tmp_path / tiny.name
        fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


@pytest.mark.parametrize("dtype", ["int16", "int32", "uint8", "float64", ">f8", "int64"])
def test_other_sci_dtypes_are_read_exactly(tiny, tmp_path, dtype):
    with fits.open(tiny) as hdul:
        sci = np.asarray(hdul["SCI"].data)
    values = np.clip(np.round(sci / 1000.0), 0, 200).astype(dtype)
    path = _fits_with(tmp_path, tiny, fits.ImageHDU(values, name="SCI"))
    row = prepare_file(path, tmp_path / "parts")
    _check_row(row, tmp_path / "parts")
    assert row["status"] == "ingested", row["error"]
    staged = tmp_path / "parts" / "_staging" / part_name(tiny.name) / "frames.parquet"
    pixels = pq.read_table(staged).column("pixels").combine_chunks().flatten().to_numpy()
    np.testing.assert_array_equal(pixels, values.astype(np.float32).ravel())


@pytest.mark.parametrize(
    "case",
    ["zero-frames", "sci-as-table", "no-sci", "two-d", "complex-as-table-column", "sci-empty"],
)
def test_malformed_sci_fails_with_a_reason(tiny, tmp_path, case):
    if case == "zero-frames":
        hdu = fits.ImageHDU(np.zeros((0, 8, 8), np.float32), name="SCI")
    elif case == "sci-as-table":
        hdu = fits.BinTableHDU.from_columns([fits.Column("x", "E", array=np.ones(40))], name="SCI")
    elif case == "no-sci":
        hdu = None
    elif case == "two-d":
        hdu = fits.ImageHDU(np.zeros((40, 64), np.float32), name="SCI")
    elif case == "complex-as-table-column":  # FITS images cannot be complex; tables can
        col = fits.Column("x", "C", array=np.ones(40, np.complex64))
        hdu = fits.BinTableHDU.from_columns([col], name="SCI")
    else:
        hdu = fits.ImageHDU(None, name="SCI")
    path = _fits_with(tmp_path, tiny, hdu)
    row = prepare_file(path, tmp_path / "parts")
    _check_row(row, tmp_path / "parts")
    assert row["status"] == "failed", row


@pytest.mark.parametrize("case", ["empty", "garbage", "html", "directory", "symlink-loop", "fifo"])
def test_things_that_are_not_fits_fail_with_a_reason(tmp_path, case):
    path = tmp_path / "jw01534001001_gs-fg_2022339000111_cal.fits"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(os.urandom(20000))
    elif case == "html":
        path.write_text("<html><body>Service unavailable</body></html>")
    elif case == "directory":
        path.mkdir()
    elif case == "symlink-loop":
        path.symlink_to(path)
    else:
        os.mkfifo(path)
        # A FIFO would block any reader: a folder ingest must not pick it up at all.
        from fgsarchive.ingest import find_guider_files

        assert path not in find_guider_files(path.parent)
        # given by name, it fails at once instead of blocking (no writer will ever come)
        row = prepare_file(path, tmp_path / "parts")
        assert row["status"] == "failed" and "not a regular file" in row["error"]
        return
    row = prepare_file(path, tmp_path / "parts")
    _check_row(row, tmp_path / "parts")
    assert row["status"] == "failed"


def test_bad_tables_fail_or_are_ignored_never_crash(tiny, tmp_path):
    with fits.open(tiny) as hdul:
        bad_pointing = fits.BinTableHDU.from_columns(
            [fits.Column("time", "10A", array=np.array(["not a time"] * 3))], name="POINTING"
        )
        hdus = [hdu.copy() for hdu in hdul]
        hdus[4] = bad_pointing
        hdus[3] = fits.ImageHDU(np.zeros((3, 3), np.int32), name="DQ")  # wrong shape: ignored
        path = tmp_path / tiny.name
        fits.HDUList(hdus).writeto(path, overwrite=True)
    row = prepare_file(path, tmp_path / "parts")
    _check_row(row, tmp_path / "parts")
    assert row["status"] == "failed" and "POINTING" in row["error"]


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 60479), st.integers(0, 255)), min_size=1, max_size=30),
    cut=st.one_of(st.none(), st.integers(0, 60479)),
)
def test_fuzzed_bytes_never_crash_or_half_write(tiny, tmp_path_factory, flips, cut):
    work = tmp_path_factory.mktemp("fuzz")
    data = bytearray(tiny.read_bytes())
    for offset, value in flips:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[:cut]
    path = work / tiny.name
    path.write_bytes(bytes(data))
    row = prepare_file(path, work / "parts")
    _check_row(row, work / "parts")
    shutil.rmtree(work, ignore_errors=True)


@FUZZ
@given(
    header_edits=st.dictionaries(
        st.sampled_from(
            [
                "DATASTRT",
                "DATAEND",
                "NINTS",
                "PROGRAM",
                "OBSERVTN",
                "VISIT",
                "EXSEGNUM",
                "GDSTARID",
                "GS_RA",
                "GS_MAG",
                "EXP_TYPE",
                "INTSTART",
                "EXSEGTOT",
            ]
        ),
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
            st.booleans(),
        ),
        max_size=6,
    )
)
def test_fuzzed_header_values_never_crash(tiny, tmp_path_factory, header_edits):
    work = tmp_path_factory.mktemp("hdr")
    path = work / tiny.name
    with fits.open(tiny) as hdul:
        hdus = [hdu.copy() for hdu in hdul]
    for key, value in header_edits.items():
        if value is None:
            hdus[0].header.remove(key, ignore_missing=True)
        else:
            try:
                hdus[0].header[key] = value
            except (ValueError, TypeError):  # astropy refuses it: nothing to test
                continue
    try:
        fits.HDUList(hdus).writeto(path, overwrite=True)
    except (ValueError, TypeError, OSError):
        return
    row = prepare_file(path, work / "parts")
    _check_row(row, work / "parts")
    if row["status"] == "ingested" and row["product"] == "fg":
        assert math.isfinite(row["data_start_mjd"]) and row["data_end_mjd"] > row["data_start_mjd"]
    shutil.rmtree(work, ignore_errors=True)


def test_one_run_over_every_bad_file_keeps_the_archive_whole(tiny, tmp_path):
    """Good and bad files in one ingest: bad ones are failed rows, good ones whole, nothing staged."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(tiny, folder / tiny.name)
    stamps = iter(range(2022339000200, 2022339009999, 7))
    for _name, key, value, occurrence, _ in CARD_CASES:
        data = _set_card(bytearray(tiny.read_bytes()), key, value, occurrence)
        (folder / f"jw01534001001_gs-fg_{next(stamps)}_cal.fits").write_bytes(bytes(data))
    (folder / f"jw01534001001_gs-fg_{next(stamps)}_cal.fits").write_bytes(b"SIMPLE  =")
    (folder / f"jw01534001001_gs-fg_{next(stamps)}_cal.fits").write_bytes(tiny.read_bytes()[:30000])
    db = Database(tmp_path / "a.duckdb")
    paths = sorted(folder.iterdir())
    report = ingest_paths(db, paths, workers=2)
    assert report.ingested == [tiny.name]
    assert len(report.failed) == len(paths) - 1
    with db.reader() as con:
        rows = con.execute(
            "SELECT status, count(*), count(error) FROM files GROUP BY ALL"
        ).fetchall()
        frames = con.execute("SELECT count(DISTINCT file_name), count(*) FROM frames").fetchall()
    assert sorted(rows) == [("failed", len(paths) - 1, len(paths) - 1), ("ingested", 1, 0)]
    assert frames == [(1, 40)]
    assert not (db.parts.root / "_staging").exists() or not any(
        (db.parts.root / "_staging").iterdir()
    )


# --------------------------------------------------------------------------------------------------
# MAST rows and names
# --------------------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    "jw01534001001_gs-fg_2022339000111_cal.fits/../../x",
    "jw01534001001_gs-fg_2022339000111_cal.fits\x00.txt",
    "jw01534001001_gs-fg_2022339000111_cal.fits\n",
    "C:\\windows\\system32",
    "jw01534001001_gs-fg_2022339000111_cal.fits ",
    "ｊｗ01534001001_gs-fg_2022339000111_cal.fits",  # full-width letters
    "jw01534001001_gs-fg_2022339000111_cal.fits" * 3,
    "jw٠١534001001_gs-fg_2022339000111_cal.fits",  # Arabic-Indic digits
    ".jw01534001001_gs-fg_2022339000111_cal.fits",
    "",
    None,
    12345,
    ["jw01534001001_gs-fg_2022339000111_cal.fits"],
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_mast_names_are_refused(name):
    with pytest.raises(UnsafeFileNameError):
        validate_product_name(name)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_validated_names_stay_inside_the_cache(text):
    try:
        name = validate_product_name(text)
    except UnsafeFileNameError:
        return
    cache = Path("/cache/jw01534")
    assert (cache / name).resolve().parent == cache
    assert name.isascii() and "/" not in name and ".." not in name


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
ROW_KEYS = [
    "fileName",
    "program",
    "observtn",
    "visit",
    "exp_type",
    "apername",
    "detector",
    "gdstarid",
    "gs_ra",
    "gs_dec",
    "gs_mag",
    "gs_order",
    "date_obs_mjd",
    "date_end_mjd",
    "fileSize",
    "checksum",
    "isRestricted",
    "obs_id",
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(ROW_KEYS), JSON, max_size=len(ROW_KEYS)))
def test_mast_rows_of_any_shape_parse_or_raise_our_error(row):
    try:
        info = summarize_row(row)
    except FgsArchiveError:
        return
    for key in ("program", "observation", "visit", "file_size", "gs_order"):
        assert info[key] is None or isinstance(info[key], int)
    for key in ("gs_ra", "gs_dec", "gs_mag", "date_obs_mjd", "date_end_mjd"):
        assert info[key] is None or isinstance(info[key], float)


# --------------------------------------------------------------------------------------------------
# SQL through `fgsarchive query`
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_archive(tiny, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("q")
    db = Database(folder / "a.duckdb")
    ingest_paths(db, [tiny], workers=1)
    (folder / "secret.csv").write_text("password\nhunter2\n")
    pq.write_table(
        pq.read_table(next(db.parts.root.glob("frames/*/*.parquet"))), folder / "x.parquet"
    )
    return db.path


def hostile_sql(folder: Path) -> list[str]:
    parts = f"{folder}/a.duckdb.parts"
    return [
        "INSERT INTO files (file_name, status) VALUES ('x', 'y')",
        "UPDATE files SET status = 'failed'",
        "DELETE FROM files",
        "DROP TABLE files",
        "CREATE TABLE evil AS SELECT 1",
        "CREATE TEMP TABLE evil AS SELECT 1",
        "CREATE MACRO evil() AS 1",
        "ALTER TABLE files ADD COLUMN evil INTEGER",
        "TRUNCATE files",
        f"ATTACH '{folder}/other.duckdb' AS o",
        f"ATTACH '{folder}/a.duckdb' AS again",
        "DETACH a",
        f"COPY files TO '{folder}/stolen.csv'",
        f"COPY (SELECT 1) TO '{folder}/stolen.parquet' (FORMAT parquet)",
        f"EXPORT DATABASE '{folder}/export'",
        f"IMPORT DATABASE '{folder}/export'",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "RESET lock_configuration",
        "SET lock_configuration = false",
        "INSTALL httpfs",
        "LOAD httpfs",
        "FORCE INSTALL httpfs",
        "PRAGMA enable_profiling",
        "PRAGMA database_list",
        "CALL pragma_version()",
        "CHECKPOINT",
        "VACUUM",
        "BEGIN TRANSACTION",
        "USE memory",
        "SELECT 1; DROP TABLE files",
        f"SELECT * FROM read_csv('{folder}/secret.csv')",
        f"SELECT * FROM '{folder}/secret.csv'",
        f"SELECT * FROM read_text('{folder}/secret.csv')",
        f"SELECT * FROM read_blob('{folder}/secret.csv')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM read_parquet('{folder}/x.parquet')",
        f"SELECT * FROM read_parquet('{parts}/../x.parquet')",
        f"SELECT * FROM read_parquet('{parts}/frames/../../x.parquet')",
        f"SELECT * FROM read_csv('{parts}/../secret.csv')",
        f"SELECT * FROM glob('{folder}/*')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM parquet_metadata('{folder}/x.parquet')",
        "SELECT * FROM read_json('https://example.com/x.json')",
        "SELECT * FROM 'https://example.com/x.parquet'",
        "EXPLAIN ANALYZE DELETE FROM files",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{folder}/stolen2.csv'",
        "EXPLAIN ANALYZE CREATE TABLE evil AS SELECT 1",
        f"EXPLAIN ANALYZE SELECT * FROM read_csv('{folder}/secret.csv')",
        f"WITH t AS (SELECT * FROM read_csv('{folder}/secret.csv')) SELECT * FROM t",
        "SELECT * FROM query('SELECT * FROM read_text(''/etc/passwd'')')",
        f"SELECT * FROM query_table('{folder}/secret.csv')",
        f"SELECT * FROM sniff_csv('{folder}/secret.csv')",
        "SELECT getenv('HOME')",
    ]


def _leaks(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(("stolen", "export", "other"))]


def test_hostile_sql_is_refused_and_changes_nothing(small_archive):
    db = Database(small_archive)
    folder = small_archive.parent
    before = archive_checksums(db, ("files", "frames"))
    accepted = []
    for sql in hostile_sql(folder):
        try:
            result = run_user_query(db, sql)
        except QueryError as exc:
            # the message on one line; DuckDB's hints and its LINE pointer (kept) below it
            first, *rest = str(exc).splitlines()
            assert first.startswith("SQL error:") or not rest
            assert len(rest) <= 3 and all(
                r.startswith(("LINE ", "Did you mean", "Candidate bindings")) or not r.strip("^ ")
                for r in rest
            ), rest
            continue
        text = str(result.to_pylist())
        if "hunter2" in text or "root:" in text or "SIMPLE" in text:
            accepted.append(sql)
        elif sql.startswith("EXPLAIN ANALYZE"):
            accepted.append(sql)  # executing arbitrary statements is not a read
        elif "getenv" not in sql:
            accepted.append(sql)
    assert accepted == [], accepted
    assert _leaks(folder) == []
    assert archive_checksums(db, ("files", "frames")) == before
    with duckdb.connect(str(small_archive), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "evil" not in tables


@pytest.mark.parametrize("index", [0, 10, 12, 16, 21, 24, 31, 37, 44, 46])
def test_hostile_sql_through_the_cli_is_one_line_exit_2(small_archive, index):
    sql = hostile_sql(small_archive.parent)[index]
    result = CliRunner().invoke(app, ["query", sql, "--db", str(small_archive)])
    assert result.exit_code == 2, (sql, result.output)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert _leaks(small_archive.parent) == []


def test_reading_the_archive_itself_still_works(small_archive):
    db = Database(small_archive)
    out = run_user_query(db, "SELECT count(*) AS n, min(frame) AS f FROM frames").to_pylist()
    assert out == [{"n": 40, "f": 0}]
    parts = db.parts.root
    direct = run_user_query(
        db, f"SELECT count(*) AS n FROM read_parquet('{parts}/frames/*/*.parquet')"
    )
    assert direct.to_pylist() == [{"n": 40}]


# --------------------------------------------------------------------------------------------------
# the MAST token never leaves the Authorization header
# --------------------------------------------------------------------------------------------------

TOKEN = "tok-Zq8v3XkP9wL2mN7rT4yB6cD1eF5gH0jK"


def test_the_token_never_appears_in_output_logs_archive_or_cache(products, tmp_path, caplog):
    """Faults and retries (warnings and errors are printed), --verbose, exclusive files: the
    crawler's own test covers a refused token; this one covers every message of a faulty run."""
    import logging

    from fgsarchive.testing.mast_server import FaultPlan, MastTestServer

    caplog.set_level(logging.DEBUG)
    faults = FaultPlan(
        seed=3,
        probabilities={"503": 0.3, "drop": 0.2, "reset": 0.2, "500": 0.1},
        retry_after="0",
        endpoints=frozenset({"download", "invoke"}),
    )
    db, cache = tmp_path / "a.duckdb", tmp_path / "cache"
    outputs = []
    with MastTestServer(
        products, token=TOKEN, faults=faults, exclusive_programs={1534}, executing_polls=0
    ) as srv:
        env = {
            "FGSARCHIVE_MAST_URL": srv.url,
            "FGSARCHIVE_MAST_RETRIES": "1",
            "FGSARCHIVE_MAST_BACKOFF": "0.01",
            "MAST_API_TOKEN": TOKEN,
        }
        for _ in range(6):
            result = CliRunner().invoke(
                app,
                [
                    *("-v", "ingest", "1534", "--db", str(db), "--cache", str(cache)),
                    *("--no-fit", "--no-telemetry", "--no-stars", "--no-analyse"),
                ],
                env=env,
            )
            outputs.append(result.output + repr(result.exception))
            if result.exit_code == 0:
                break
        for args in (
            ["status", "--db", str(db)],
            ["query", "SELECT * FROM mast_files", "--format", "json", "--db", str(db)],
        ):
            outputs.append(CliRunner().invoke(app, args).output)
        downloads = [e for e in srv.request_log if "Download" in e["path"]]
        assert downloads and all(e["auth"] == "present" for e in downloads)
    assert result.exit_code == 0, outputs[-3:]
    for text in (*outputs, caplog.text):
        assert TOKEN not in text
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaks == []
    with duckdb.connect(str(db), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            assert TOKEN not in str(con.execute(f"SELECT * FROM {table}").fetchall())
