"""Ingest: content is exact, per-file atomic, idempotent, resumable; bad files fail alone."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from fgsarchive.errors import UsageError
from fgsarchive.ingest import (
    find_guider_files,
    ingest_directory,
    ingest_paths,
    part_name,
    prepare_file,
)
from fgsarchive.maintenance import archive_checksums
from fgsarchive.names import parse_product_name


def fg_files(folder):
    return [p for p in find_guider_files(folder) if "_gs-fg_" in p.name]


def test_frames_match_the_fits_files_exactly(products, db):
    report = ingest_directory(db, products, workers=2)
    assert not report.failed
    with db.reader() as con:
        for path in fg_files(products)[:3]:
            with fits.open(path) as hdul:
                sci = np.asarray(hdul["SCI"].data, dtype=np.float32)
                start, end = hdul[0].header["DATASTRT"], hdul[0].header["DATAEND"]
            rows = con.execute(
                "SELECT frame, time_mjd, flux, pixels FROM frames WHERE file_name = $f ORDER BY frame",
                {"f": path.name},
            ).fetchnumpy()
            n = sci.shape[0]
            assert len(rows["frame"]) == n
            pixels = np.stack(rows["pixels"]).reshape(n, 8, 8)
            np.testing.assert_array_equal(pixels, sci)
            np.testing.assert_allclose(
                rows["flux"], np.nansum(sci.reshape(n, 64), axis=1, dtype=np.float64)
            )
            dt = (end - start) / n
            np.testing.assert_allclose(
                rows["time_mjd"], start + (np.arange(n) + 0.5) * dt, rtol=0, atol=1e-12
            )


def test_files_programs_and_guide_stars(products, db, small_program):
    ingest_directory(db, products)
    with db.reader() as con:
        n_fg, n_frames = con.execute(
            "SELECT count(*), sum(n_frames) FROM files WHERE product = 'fg' AND status = 'ingested'"
        ).fetchall()[0]
        assert n_frames == con.execute("SELECT count(*) FROM frames").fetchall()[0][0]
        assert n_frames == small_program.n_frames
        program, n_files, frames = con.execute(
            "SELECT program, n_files, n_frames FROM programs"
        ).fetchall()[0]
        assert (program, frames) == (1534, n_frames)
        assert con.execute("SELECT count(*) FROM guide_stars").fetchall()[0][0] == 2
        # segments: several files of one guide period, numbered, with increasing INTSTART
        seg = con.execute(
            "SELECT guide_period, list(segment ORDER BY segment), list(int_start ORDER BY segment) "
            "FROM files WHERE segment IS NOT NULL GROUP BY 1"
        ).fetchall()
        assert seg, "the fixture simulates segmented guide periods"
        for _, segments, starts in seg:
            assert segments == list(range(1, len(segments) + 1))
            assert starts == sorted(starts)
        products_seen = {r[0] for r in con.execute("SELECT DISTINCT product FROM files").fetchall()}
        assert {"fg", "acq1", "acq2", "track"} <= products_seen
        assert con.execute("SELECT count(*) FROM pointing").fetchall()[0][0] > 0
        assert con.execute("SELECT count(*) FROM centroids").fetchall()[0][0] > 0
        # pointing times fall inside their file's data span
        outside = con.execute(
            "SELECT count(*) FROM pointing p JOIN files f USING (file_name) "
            "WHERE p.time_mjd < f.data_start_mjd - 1e-5 OR p.time_mjd > f.data_end_mjd + 1e-5"
        ).fetchall()[0][0]
        assert outside == 0


def test_reingest_is_idempotent(products, db):
    first = ingest_directory(db, products)
    before = archive_checksums(db)
    second = ingest_directory(db, products)
    assert second.ingested == [] and len(second.skipped) == len(first.ingested)
    assert archive_checksums(db) == before
    forced = ingest_directory(db, products, force=True)
    assert len(forced.ingested) == len(first.ingested)
    assert archive_checksums(db) == before


def test_staging_left_by_a_killed_run_is_finished_or_discarded(products, db):
    paths = fg_files(products)
    ingest_paths(db, paths[:1])
    reference = archive_checksums(db)
    # A worker staged a file but the run died before the commit: it must vanish.
    row = prepare_file(paths[1], db.parts.root)
    assert row["status"] == "ingested" and db.parts.staged_parts() == [part_name(paths[1].name)]
    db.initialise()
    assert db.parts.staged_parts() == []
    assert archive_checksums(db) == reference
    # Committed but not yet published: the next run publishes it.
    full = db.__class__(db.path.parent / "full.duckdb")
    ingest_paths(full, paths[:2])
    prepare_file(paths[1], db.parts.root)
    import pyarrow as pa

    from fgsarchive.ingest import FILES_SCHEMA

    with db.writer() as con:
        db.run(
            con, "ingest/files_insert", new_files=pa.Table.from_pylist([row], schema=FILES_SCHEMA)
        )
    db.initialise()
    assert archive_checksums(db)["frames"] == archive_checksums(full)["frames"]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _wrong_shape(path):
    with fits.open(path) as hdul:
        hdul["SCI"].data = np.zeros((10, 4, 16), np.float32)
        hdul.writeto(path, overwrite=True)


def _not_fits(path):
    path.write_text("SIMPLE? no, this is not a FITS file\n")


def _not_a_guider_product(path):
    with fits.open(path) as hdul:
        hdul[0].header["EXP_TYPE"] = "NRC_IMAGE"
        hdul.writeto(path, overwrite=True)


def _no_times(path):
    with fits.open(path) as hdul:
        del hdul[0].header["DATASTRT"]
        hdul.writeto(path, overwrite=True)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "trunc"),
        (_wrong_shape, "shape"),
        (_not_fits, "not a readable FITS"),
        (_no_times, "DATASTRT"),
        (_not_a_guider_product, "EXP_TYPE"),
    ],
)
def test_a_bad_file_fails_alone_and_names_why(products, db, damage, reason):
    victim = fg_files(products)[0]
    damage(victim)
    report = ingest_directory(db, products)
    assert list(report.failed) == [victim.name]
    assert reason.lower() in report.failed[victim.name].lower()
    with db.reader() as con:
        status, error = con.execute(
            "SELECT status, error FROM files WHERE file_name = $f", {"f": victim.name}
        ).fetchall()[0]
        assert status == "failed" and error
        assert (
            con.execute(
                "SELECT count(*) FROM frames WHERE file_name = $f", {"f": victim.name}
            ).fetchall()[0][0]
            == 0
        )
        good = con.execute("SELECT count(*) FROM files WHERE status = 'ingested'").fetchall()[0][0]
        assert good == len(find_guider_files(products)) - 1


def test_a_bad_file_does_not_change_what_is_already_there(products, db, tmp_path):
    ingest_directory(db, products)
    before = archive_checksums(db)
    extra = tmp_path / "extra"
    extra.mkdir()
    bad = extra / "jw01534009001_gs-fg_2022338021919_cal.fits"
    bad.write_bytes(b"\0" * 5000)
    report = ingest_directory(db, extra)
    assert list(report.failed) == [bad.name]
    after = archive_checksums(db)
    assert after["frames"] == before["frames"]
    assert after["files"][0] == before["files"][0] + 1


def test_missing_and_empty_folders_are_usage_errors(tmp_path, db):
    with pytest.raises(UsageError, match="no such directory"):
        ingest_directory(db, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no guider files"):
        ingest_directory(db, tmp_path / "empty")


def test_simulated_names_follow_the_grammar(small_program):
    for path in small_program.files:
        assert parse_product_name(path.name) is not None, path.name


def test_parts_of_one_file_only(tmp_path):
    """A file's parts, every version, and nothing of its neighbours (the analyses read exactly
    these instead of the archive-wide views)."""
    from fgsarchive.storage import PartStore

    store = PartStore(tmp_path)
    folder = tmp_path / "fits" / "program=1534"
    folder.mkdir(parents=True)
    names = ["a_cal.v1", "a_cal.v2", "a_cal-seg002.v1", "b_cal.v1", "a_cal.v1.tmp", "a_cal.vx"]
    for name in names:
        (folder / f"{name}.parquet").write_bytes(b"")
    assert [p.name for p in store.parts_of("fits", 1534, "a_cal")] == [
        "a_cal.v1.parquet",
        "a_cal.v2.parquet",
    ]
    (tmp_path / "frames" / "program=1534").mkdir(parents=True)
    (tmp_path / "frames" / "program=1534" / "a_cal.parquet").write_bytes(b"")
    assert [p.name for p in store.parts_of("frames", 1534, "a_cal")] == ["a_cal.parquet"]
    assert store.parts_of("frames", 1534, "[a]_cal") == []  # a name is never a pattern
    assert store.parts_of("frames", 9999, "a_cal") == []
