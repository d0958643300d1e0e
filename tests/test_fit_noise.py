"""The per-file pixel noise model (ERR, frames, none), the weighted fit it drives, and bad input.

Each bad file (no ERR, ERR of zeros or NaN, DQ flagging every pixel, a segment of 10 frames) is
ingested and fitted: it must fit, or be skipped with a status that says why, and nothing crashes.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest
from astropy.io import fits

from fgsarchive import migrate as mig
from fgsarchive.db import Database
from fgsarchive.fit.model import fit_gaussian_stack
from fgsarchive.fit.noise import noise_from_err, noise_from_frames
from fgsarchive.fit.runner import fit_archive
from fgsarchive.ingest import ingest_directory
from fgsarchive.reader import open_guider_file
from fgsarchive.simulate import read_frame_truth, simulate_program

# the simulator's defaults: gain 2 e-/DN, exposure 0.032 s, read noise 12 e-
TRUE_B = 1.0 / (2.0 * 0.032)
TRUE_A = (12.0 / (2.0 * 0.032)) ** 2


def _variant(src, folder, stamp: str, *, err=None, drop_err=False, dq=None, n_frames=None):
    """A copy of ``src`` named with another time stamp, with ERR/DQ/length changed."""
    name = src.name.replace("2022339000316", stamp)
    with fits.open(src) as hdul:
        hdus = [h.copy() for h in hdul if not (drop_err and h.name == "ERR")]
    out = fits.HDUList(hdus)
    if n_frames is not None:
        out["SCI"].data = out["SCI"].data[:n_frames]
        if not drop_err:
            out["ERR"].data = out["ERR"].data[:n_frames]
    if err is not None:
        out["ERR"].data = np.full_like(out["ERR"].data, err)
    if dq is not None:
        out["DQ"].data = np.broadcast_to(np.asarray(dq, dtype=np.uint32), (8, 8)).copy()
    out.writeto(folder / name)
    return name


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noise")
    sim = simulate_program(
        folder / "sim",
        program=42,
        n_visits=1,
        frames_per_file=2000,
        seed=3,
        include_other_products=False,
    )
    src = sim.files[0]
    assert "2022339000316" in src.name  # the variants are named from it
    products = folder / "products"
    products.mkdir()
    names = {"good": _variant(src, products, "2022339000316")}
    names["no_err"] = _variant(src, products, "2022339000317", drop_err=True)
    names["err_zero"] = _variant(src, products, "2022339000318", err=0.0)
    names["err_nan"] = _variant(src, products, "2022339000319", err=np.nan)
    names["dq_all"] = _variant(src, products, "2022339000320", dq=1)
    names["ten"] = _variant(src, products, "2022339000321", n_frames=10)
    names["ten_no_err"] = _variant(src, products, "2022339000322", n_frames=10, drop_err=True)
    db = Database(folder / "a.duckdb")
    ingest = ingest_directory(db, products)
    assert not ingest.failed
    report = fit_archive(db, workers=1)
    return sim, db, names, report


def _files(db):
    with db.reader() as con:
        rows = con.execute("SELECT file_name, noise_a, noise_b, noise_source FROM files").fetchall()
    return {r[0]: r[1:] for r in rows}


def _fits(db, name):
    with db.reader() as con:
        return pl.from_arrow(
            con.sql(
                f"SELECT * FROM fits WHERE file_name = '{name}' ORDER BY frame"
            ).to_arrow_table()
        )


def test_each_file_records_where_its_noise_model_came_from(bad_inputs):
    _, db, names, report = bad_inputs
    files = _files(db)
    assert not report.failed
    expected = {
        "good": "err",
        "no_err": "frames",
        "err_zero": "frames",
        "err_nan": "frames",
        "dq_all": "none",
        "ten": "err",
        "ten_no_err": "none",
    }
    assert {k: files[names[k]][2] for k in expected} == expected
    a, b, _ = files[names["good"]]
    assert b == pytest.approx(TRUE_B, rel=0.03) and a == pytest.approx(TRUE_A, rel=0.1)
    a, b, _ = files[names["no_err"]]  # the frames alone give the same model
    assert b == pytest.approx(TRUE_B, rel=0.1) and a == pytest.approx(TRUE_A, rel=0.3)
    assert files[names["dq_all"]][:2] == (None, None)


def test_weighted_fit_has_honest_errors_on_the_archive(bad_inputs):
    sim, db, names, _ = bad_inputs
    for key in ("good", "no_err"):
        fitted = _fits(db, names[key]).filter(pl.col("status") == 0)
        truth = read_frame_truth(sim.truth_dir, sim.files[0].name).select(
            "frame", pl.col("x_mean").alias("x_true"), pl.col("amplitude").alias("a_true")
        )
        joined = fitted.join(truth, on="frame")
        assert len(joined) > 1900
        for col, true in (("x_mean", "x_true"), ("amplitude", "a_true")):
            pull = (joined[col] - joined[true]) / joined[f"{col}_err"]
            # robust spread (cosmic rays hit a few frames)
            spread = 1.4826 * (pull - pull.median()).abs().median()
            assert 0.9 < spread < 1.1, (key, col, spread)
        assert 0.9 < joined["chi2_red"].median() < 1.1


def test_bad_input_fits_or_says_why(bad_inputs):
    _, db, names, _ = bad_inputs
    dq_all = _fits(db, names["dq_all"])
    assert len(dq_all) == 2000 and (dq_all["status"] == 2).all()  # BAD_FRAME: no usable pixel
    assert dq_all["x_mean"].is_nan().all()
    for key in ("err_zero", "err_nan"):
        fitted = _fits(db, names[key])
        assert (fitted["status"] == 0).mean() > 0.95
        assert 0.9 < fitted["chi2_red"].median() < 1.1
    ten = _fits(db, names["ten"])
    assert len(ten) == 10 and (ten["status"] == 0).all() and ten["chi2_red"].is_finite().all()
    ten_no_err = _fits(db, names["ten_no_err"])
    # no noise model: fitted unweighted, errors relative (scaled by chi2/dof), no chi2_red
    assert (ten_no_err["status"] == 0).all() and ten_no_err["x_mean_err"].is_finite().all()
    assert ten_no_err["chi2_red"].is_nan().all()


def test_noise_models_refuse_what_cannot_give_one():
    rng = np.random.default_rng(1)
    sci = rng.normal(3000, 200, (100, 64)).astype(np.float32)
    assert noise_from_err(sci, None) is None
    assert noise_from_err(sci, np.zeros_like(sci)) is None
    assert noise_from_err(sci, np.full_like(sci, np.nan)) is None
    assert noise_from_err(sci, np.ones((3, 64))) is None  # another shape
    assert noise_from_err(sci, np.full_like(sci, 200.0), dq=np.ones((8, 8))) is None
    assert noise_from_frames(sci[:10]) is None  # too few frames
    flat = noise_from_frames(sci)  # no star: the frame-to-frame scatter, a constant variance
    assert flat is not None and flat.a == pytest.approx(200.0**2, rel=0.2)
    with pytest.raises(ValueError, match="exclusive"):
        fit_gaussian_stack(sci.reshape(-1, 8, 8), noise=(1.0, 1.0), weighted=True, err=sci)
    with pytest.raises(ValueError, match="noise"):
        fit_gaussian_stack(sci.reshape(-1, 8, 8), noise=(0.0, 0.0))


def test_an_archive_without_noise_columns_is_migrated_and_fitted(tmp_path, bad_inputs):
    sim, *_ = bad_inputs
    db = Database(tmp_path / "old.duckdb")
    ingest_directory(db, sim.files[0].parent)
    with duckdb.connect(str(db.writer_path)) as con:  # the writer database holds the tables
        con.execute("UPDATE schema_info SET value = '1' WHERE key = 'schema_version'")
        for column in ("noise_a", "noise_b", "noise_source"):
            con.execute(f"ALTER TABLE files DROP COLUMN {column}")
    report = mig.migrate(db)
    assert report.steps == ["migrate/1_to_2"]
    assert fit_archive(db, what=("gauss",), workers=1).files == 1
    fitted = _fits(db, sim.files[0].name)
    # NULL noise columns: the model is taken from the frames at fit time
    assert 0.9 < fitted.filter(pl.col("status") == 0)["chi2_red"].median() < 1.1


def test_dq_with_bzero_is_read(bad_inputs, tmp_path):
    """Unsigned DQ (BITPIX 32, BZERO 2**31) as real cal files write it; it used to be dropped."""
    sim, *_ = bad_inputs
    dq = np.zeros(64, dtype=np.uint32)
    dq[[0, 9, 63]] = [1, 2**31, 2**32 - 1]
    name = _variant(sim.files[0], tmp_path, "2022339000323", dq=dq.reshape(8, 8))
    with open_guider_file(tmp_path / name) as guider:
        np.testing.assert_array_equal(guider.dq.ravel(), dq)
        err = guider.err_pixels(5)
    assert err.shape == (5, 64) and np.all(err > 0)
