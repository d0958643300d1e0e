"""One guider FITS file -> header metadata, per-frame pixel chunks, Pointing and Centroid tables.

HDUs are found by EXTNAME (``SCI``, ``ERR``, ``DQ``, ``POINTING``, ``FGS CENTROID PACKET``), never by
position. The SCI cube is read through a memory map in chunks, so memory stays flat however many
integrations a file holds.

Per-frame time rule (documented in the README): with ``n`` integrations in the SCI cube, frame ``i``
(0-based) spans ``DATASTRT + [i, i+1] * (DATAEND - DATASTRT) / n`` and is stamped at its mid-time
``DATASTRT + (i + 0.5) * (DATAEND - DATASTRT) / n`` (MJD, UTC). DATASTRT, DATAEND and NINTS are stored
with each file so frames can be re-timed by another rule (spelunker's ``linspace`` for instance).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from astropy.io import fits

from .errors import GuiderFileError
from .names import EXP_TYPE_TO_PRODUCT, ProductName, parse_product_name

FRAME_SHAPE = (8, 8)
N_PIXELS = 64
TIME_RULE = "mid"  # frame i at DATASTRT + (i + 0.5) * (DATAEND - DATASTRT) / n_frames
MJD_UNIX_EPOCH = 40587.0  # MJD of 1970-01-01T00:00:00 UTC

POINTING_COLUMNS = {
    # FITS column (case-insensitive) -> archive column
    "jitter": "jitter_mas",
    "delta_ddc_ra": "delta_ddc_ra_mas",
    "delta_ddc_dec": "delta_ddc_dec_mas",
    "delta_aperture_pa": "delta_aperture_pa_mas",
    "delta_v1_ra": "delta_v1_ra_mas",
    "delta_v1_dec": "delta_v1_dec_mas",
    "delta_v3_pa": "delta_v3_pa_mas",
    "delta_j1_ra": "delta_j1_ra_mas",
    "delta_j1_dec": "delta_j1_dec_mas",
    "delta_j3_pa": "delta_j3_pa_mas",
}
CENTROID_FLOAT_COLUMNS = {
    "guide_star_position_x": "x_arcsec",
    "guide_star_position_y": "y_arcsec",
    "guide_star_instrument_counts_per_sec": "counts_per_s",
    "signal_to_noise_current_frame": "snr",
    "delta_signal": "delta_signal",
    "delta_noise": "delta_noise",
}
CENTROID_INT_COLUMNS = {
    "psf_width_x": "psf_width_x",
    "psf_width_y": "psf_width_y",
    "data_quality": "data_quality",
}
CENTROID_TEXT_COLUMNS = {
    "observatory_time": "observatory_time",
    "centroid_time": "centroid_time",
    "bad_pixel_flag": "bad_pixel_flag",
    "bad_centroid_dq_flag": "bad_centroid_dq_flag",
    "cosmic_ray_hit_flag": "cosmic_ray_hit_flag",
    "sw_subwindow_loc_change_flag": "subwindow_change_flag",
    "guide_star_at_detector_subwindow_boundary_flag": "boundary_flag",
    "subwindow_out_of_fov_flag": "out_of_fov_flag",
}


@dataclass
class GuiderFile:
    """Metadata of one guider product and, for fine guide, access to its frames."""

    path: Path
    file_name: str
    name: ProductName | None
    product: str
    program: int | None
    observation: int | None
    visit: int | None
    exp_type: str | None
    detector: str | None
    gs_id: str | None
    gs_order: int | None
    segment: int | None
    n_segments: int | None
    int_start: int | None
    data_start_mjd: float | None
    data_end_mjd: float | None
    nints_header: int | None
    n_frames: int
    header: dict[str, object]
    guide_star: dict[str, object]
    dq: np.ndarray | None = None
    _sci: object = field(default=None, repr=False)
    _err: object = field(default=None, repr=False)
    _sci_offset: int | None = field(default=None, repr=False)
    _sci_dtype: np.dtype | None = field(default=None, repr=False)
    _hdul: object = field(default=None, repr=False)

    @property
    def guide_period(self) -> str:
        """Key that groups the segments of one guide period."""
        if self.name is not None:
            return self.name.guide_period
        return self.file_name

    @property
    def frame_time_s(self) -> float | None:
        """Duration of one integration, seconds (from DATASTRT/DATAEND and the cube length)."""
        if self.data_start_mjd is None or self.data_end_mjd is None or self.n_frames <= 0:
            return None
        return (self.data_end_mjd - self.data_start_mjd) * 86400.0 / self.n_frames

    def frame_times_mjd(self, start: int, stop: int) -> np.ndarray:
        """Mid-times (MJD UTC) of frames ``start..stop-1`` by the documented rule."""
        dt = (self.data_end_mjd - self.data_start_mjd) / self.n_frames
        return self.data_start_mjd + (np.arange(start, stop, dtype=np.float64) + 0.5) * dt

    def err_pixels(self, stop: int) -> np.ndarray | None:
        """ERR of frames ``0..stop-1`` as ``(m, 64)`` float32 [DN/s]; None without a usable ERR.

        A file without ERR, with an ERR of another shape or one that cannot be read gives None
        (the fit then models the noise from the frames, see :mod:`fgsarchive.fit.noise`).
        """
        if self._err is None:
            return None
        try:
            block = np.asarray(self._err[: min(stop, self.n_frames)])
        except Exception:  # truncated or unreadable ERR: the SCI frames are still good
            return None
        return np.ascontiguousarray(block, dtype="<f4").reshape(-1, N_PIXELS)

    def iter_pixel_chunks(self, chunk_frames: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_frame, pixels)`` with pixels ``(m, 64)`` float32, row-major per frame.

        Plain float SCI data are read straight from the file in large sequential blocks (much faster
        than page-faulting a memory map from a cold cache); scaled or integer data go through astropy.
        """
        if self._sci is None:
            return
        direct = self._sci_offset is not None
        handle = open(self.path, "rb", buffering=0) if direct else None  # noqa: SIM115
        try:
            for start in range(0, self.n_frames, chunk_frames):
                stop = min(start + chunk_frames, self.n_frames)
                try:
                    if direct:
                        count = (stop - start) * N_PIXELS
                        handle.seek(self._sci_offset + start * N_PIXELS * self._sci_dtype.itemsize)
                        block = np.fromfile(handle, dtype=self._sci_dtype, count=count)
                        if block.size != count:
                            raise OSError(f"short read ({block.size} of {count} values)")
                    else:
                        block = np.asarray(self._sci[start:stop])
                except Exception as exc:  # truncated file, I/O error
                    raise GuiderFileError(
                        self.path, f"cannot read SCI frames {start}-{stop}: {exc}"
                    ) from exc
                yield (
                    start,
                    np.ascontiguousarray(block, dtype="<f4").reshape(stop - start, N_PIXELS),
                )
        finally:
            if handle is not None:
                handle.close()


def _header_value(value: object) -> object:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _header_dict(header: fits.Header) -> dict[str, object]:
    out: dict[str, object] = {}
    for card in header.cards:
        key = card.keyword
        if not key or key in ("COMMENT", "HISTORY", ""):
            continue
        with contextlib.suppress(Exception):
            out[key] = _header_value(card.value)
    return out


def _as_int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _as_float(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _as_str(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _find_hdu(hdul: fits.HDUList, extname: str) -> fits.hdu.base._BaseHDU | None:
    wanted = extname.upper()
    for hdu in hdul:
        if str(hdu.header.get("EXTNAME", "")).strip().upper() == wanted:
            return hdu
    return None


def _plain_float_offset(
    hdul: fits.HDUList, hdu: fits.hdu.base._BaseHDU, path: Path
) -> tuple[int | None, np.dtype | None]:
    """Byte offset and big-endian dtype of unscaled float SCI data, else (None, None)."""
    header = hdu.header
    bitpix = int(header.get("BITPIX", 0))
    if (
        bitpix not in (-32, -64)
        or float(header.get("BSCALE", 1)) != 1
        or float(header.get("BZERO", 0)) != 0
    ):
        return None, None
    index = next(i for i, h in enumerate(hdul) if h is hdu)
    offset = int(hdul.fileinfo(index)["datLoc"])
    dtype = np.dtype(">f4" if bitpix == -32 else ">f8")
    size = int(np.prod([int(header[f"NAXIS{i}"]) for i in range(1, int(header["NAXIS"]) + 1)]))
    if offset + size * dtype.itemsize > path.stat().st_size:
        raise GuiderFileError(path, "SCI data truncated: the file ends before the data do")
    return offset, dtype


_INT_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8"}


def _read_dq(path: Path, dq_hdu) -> np.ndarray | None:
    """The (8, 8) DQ as uint32, read from the file's bytes; None when it is not an 8x8 integer image.

    Real DQ is BITPIX 32 with BZERO 2**31 (unsigned), which astropy refuses to scale from a
    memory map ("Cannot load a memory-mapped image"): until this read, every DQ was dropped.
    """
    header = dq_hdu.header
    code = _INT_BITPIX.get(int(header.get("BITPIX", 0)))
    if code is None or (int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0))) != FRAME_SHAPE:
        return None
    with open(path, "rb") as handle:
        handle.seek(dq_hdu.fileinfo()["datLoc"])
        raw = np.fromfile(handle, dtype=code, count=N_PIXELS)
    if raw.size != N_PIXELS:
        return None
    values = raw.astype(np.float64) * float(header.get("BSCALE", 1)) + float(header.get("BZERO", 0))
    return np.rint(values).clip(0, 2**32 - 1).astype(np.uint32).reshape(FRAME_SHAPE)


def _guide_star(header: dict[str, object]) -> dict[str, object]:
    return {
        "gs_id": _as_str(header.get("GDSTARID")),
        "ra": _as_float(header.get("GS_RA")),
        "dec": _as_float(header.get("GS_DEC")),
        "ra_err": _as_float(header.get("GS_URA")),
        "dec_err": _as_float(header.get("GS_UDEC")),
        "fgs_mag": _as_float(header.get("GS_MAG")),
        "fgs_mag_err": _as_float(header.get("GS_UMAG")),
        "pm_ra": _as_float(header.get("GS_MURA")),
        "pm_dec": _as_float(header.get("GS_MUDEC")),
        "epoch": _as_str(header.get("GS_EPOCH")),
        "catalog_version": _as_str(header.get("GSC_VER")),
    }


@contextlib.contextmanager
def open_guider_file(path: str | Path) -> Iterator[GuiderFile]:
    """Open a guider product; raise :class:`GuiderFileError` naming the file when it is unusable."""
    path = Path(path)
    # The file is opened here, not by astropy: when a header cannot be parsed, astropy raises
    # without closing a file it opened itself (a leaked handle per bad file in a long ingest).
    if path.exists() and not path.is_file():
        # a FIFO or a device would block the read (or never end); a folder is not a product
        raise GuiderFileError(path, "not a regular file")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below on every path
    except FileNotFoundError as exc:
        raise GuiderFileError(path, "file not found") from exc
    except OSError as exc:
        raise GuiderFileError(path, f"cannot open ({exc.strerror or exc})") from exc
    with handle:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                hdul = fits.open(handle, memmap=True, mode="readonly", lazy_load_hdus=False)
            for warning in caught:
                if "truncated" in str(warning.message).lower():
                    hdul.close()
                    first = str(warning.message).split(";")[0].split(". ")[0]
                    raise GuiderFileError(path, f"file truncated ({first})")
        except GuiderFileError:
            raise
        except Exception as exc:
            first = str(exc).split(". ")[0].split(", ")[0]
            raise GuiderFileError(path, f"not a readable FITS file ({first})") from exc
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield _describe(path, hdul)
        finally:
            hdul.close()


def _describe(path: Path, hdul: fits.HDUList) -> GuiderFile:
    header = _header_dict(hdul[0].header)
    name = parse_product_name(path.name)
    exp_type = _as_str(header.get("EXP_TYPE"))
    if exp_type is not None and exp_type not in EXP_TYPE_TO_PRODUCT:
        raise GuiderFileError(path, f"not a guide-star product (EXP_TYPE={exp_type!r})")
    product = EXP_TYPE_TO_PRODUCT.get(exp_type or "", name.product if name else None)
    if product is None:
        raise GuiderFileError(path, f"not a guide-star product (EXP_TYPE={exp_type!r})")
    program = _as_int(header.get("PROGRAM"))
    observation = _as_int(header.get("OBSERVTN"))
    visit = _as_int(header.get("VISIT"))
    if name is not None:
        program = name.program if program is None else program
        observation = name.observation if observation is None else observation
        visit = name.visit if visit is None else visit
    if program is None:
        raise GuiderFileError(path, "no program: neither a PROGRAM keyword nor a guider file name")

    sci_hdu = _find_hdu(hdul, "SCI")
    if sci_hdu is None:
        raise GuiderFileError(path, "no SCI extension")
    naxis = int(sci_hdu.header.get("NAXIS", 0))
    shape = tuple(int(sci_hdu.header.get(f"NAXIS{i}", 0)) for i in range(naxis, 0, -1))
    sci = None
    sci_offset = sci_dtype = None
    n_frames = shape[0] if shape else 0
    if product == "fg":
        if naxis != 3 or shape[1:] != FRAME_SHAPE:
            raise GuiderFileError(path, f"SCI has shape {shape}, expected (nints, 8, 8)")
        if n_frames < 1:
            raise GuiderFileError(path, "SCI has 0 integrations")
        if int(sci_hdu.header.get("BITPIX", 0)) not in (-32, -64, 8, 16, 32, 64):
            raise GuiderFileError(
                path, f"SCI has unsupported BITPIX {sci_hdu.header.get('BITPIX')}"
            )
        try:
            sci = sci_hdu.data
        except Exception as exc:
            raise GuiderFileError(path, f"SCI data unreadable (truncated file?): {exc}") from exc
        if sci is None or sci.shape != shape:
            raise GuiderFileError(path, f"SCI data unreadable: expected shape {shape}")
        sci_offset, sci_dtype = _plain_float_offset(hdul, sci_hdu, path)
        # Touch the last frame now, so a truncated file fails before anything is written.
        try:
            np.asarray(sci[-1])
        except Exception as exc:
            raise GuiderFileError(path, f"SCI data truncated: {exc}") from exc

    start = _as_float(header.get("DATASTRT"))
    end = _as_float(header.get("DATAEND"))
    if product == "fg":
        if start is None or end is None:
            raise GuiderFileError(path, "DATASTRT/DATAEND missing or not finite")
        if not end > start:
            raise GuiderFileError(path, f"DATAEND ({end}) is not after DATASTRT ({start})")

    dq = None
    dq_hdu = _find_hdu(hdul, "DQ")
    if dq_hdu is not None and product == "fg":
        try:
            dq = _read_dq(path, dq_hdu)
        except Exception:
            dq = None

    err = None
    err_hdu = _find_hdu(hdul, "ERR")
    if err_hdu is not None and product == "fg":
        err_shape = tuple(
            int(err_hdu.header.get(f"NAXIS{i}", 0))
            for i in range(int(err_hdu.header.get("NAXIS", 0)), 0, -1)
        )
        if err_shape == shape:
            try:
                err = err_hdu.data
            except Exception:
                err = None

    segment = _as_int(header.get("EXSEGNUM"))
    if segment is None and name is not None:
        segment = name.segment
    return GuiderFile(
        path=path,
        file_name=path.name,
        name=name,
        product=product,
        program=program,
        observation=observation,
        visit=visit,
        exp_type=exp_type,
        detector=_as_str(header.get("DETECTOR")),
        gs_id=_as_str(header.get("GDSTARID")),
        gs_order=_as_int(header.get("GS_ORDER")),
        segment=segment,
        n_segments=_as_int(header.get("EXSEGTOT")),
        int_start=_as_int(header.get("INTSTART")),
        data_start_mjd=start,
        data_end_mjd=end,
        nints_header=_as_int(header.get("NINTS")),
        n_frames=n_frames,
        header=header,
        guide_star=_guide_star(header),
        dq=dq,
        _sci=sci,
        _err=err,
        _sci_offset=sci_offset if product == "fg" else None,
        _sci_dtype=sci_dtype if product == "fg" else None,
        _hdul=hdul,
    )


def _column(data: np.ndarray, wanted: str) -> np.ndarray | None:
    for name in data.dtype.names or ():
        if name.lower() == wanted:
            return np.asarray(data[name])
    return None


def _utc_strings_to_mjd(values: np.ndarray) -> np.ndarray:
    """UTC strings 'YYYY-MM-DD hh:mm:ss.fff' (or ISO with 'T') -> MJD; unparseable -> NaN.

    Vectorised: the date/time separator is set to 'T' on the raw bytes, then numpy parses.
    """
    raw = (
        np.ascontiguousarray(values.astype("S"))
        if values.dtype.kind != "S"
        else np.ascontiguousarray(values)
    )
    out = np.full(raw.shape, np.nan)
    if raw.size == 0:
        return out
    width = raw.dtype.itemsize
    if width > 10:
        chars = raw.view(np.uint8).reshape(raw.size, width).copy()
        chars[chars[:, 10] == ord(" "), 10] = ord("T")
        raw = chars.view(f"S{width}").ravel()
    raw = np.char.strip(raw)
    try:
        stamps = raw.astype("datetime64[us]")
    except ValueError:
        stamps = np.array([_parse_one(item) for item in raw], dtype="datetime64[us]")
    ok = ~np.isnat(stamps)
    out[ok] = MJD_UNIX_EPOCH + stamps[ok].astype(np.int64) / 86400e6
    return out


def _parse_one(item: bytes) -> np.datetime64:
    try:
        return np.datetime64(item.decode("ascii", "replace"), "us")
    except ValueError:
        return np.datetime64("NaT")


def pointing_table(guider: GuiderFile) -> pa.Table | None:
    """The file's POINTING rows with ``time_mjd`` (MJD UTC), or None when absent.

    The ``time`` column's unit is unsettled (docs: ms since the start of the file; files seen in
    public code: MJD). Values between 40000 and 100000 are taken as MJD, anything else as
    milliseconds since DATASTRT.
    """
    return _read_table(guider, "POINTING", _pointing_from_fits)


def centroid_table(guider: GuiderFile) -> pa.Table | None:
    """The file's FGS CENTROID PACKET rows with ``time_mjd`` from observatory_time, or None."""
    return _read_table(guider, "FGS CENTROID PACKET", _centroids_from_fits)


def _read_table(guider: GuiderFile, extname: str, convert) -> pa.Table | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdu = _find_hdu(guider._hdul, extname)
            if hdu is None or not isinstance(hdu, fits.BinTableHDU) or hdu.data is None:
                return None
            return convert(guider, hdu.data)
    except GuiderFileError:
        raise
    except Exception as exc:
        raise GuiderFileError(guider.path, f"{extname} table unreadable: {exc}") from exc


def _text(values: np.ndarray | None, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.string())
    if values.dtype.kind == "S":
        array = pa.array(values, pa.binary()).cast(pa.string(), safe=False)
    else:
        array = pa.array(values.astype(str), pa.string())
    return pc.utf8_trim_whitespace(array)


def _floats(values: np.ndarray | None, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.float64())
    return pa.array(np.asarray(values, dtype=np.float64))


def _pointing_from_fits(guider: GuiderFile, data: np.ndarray) -> pa.Table:
    n = len(data)
    raw = _column(data, "time")
    raw = np.asarray(raw, dtype=np.float64) if raw is not None else np.full(n, np.nan)
    if n and np.nanmedian(raw) > 40000 and np.nanmedian(raw) < 100000:
        time_mjd, unit = raw, "mjd"
    else:
        time_mjd, unit = (guider.data_start_mjd or np.nan) + raw / 86400e3, "ms"
    cols = {
        "row": pa.array(np.arange(n, dtype=np.int32)),
        "time_mjd": pa.array(time_mjd),
        "time_raw": pa.array(raw),
        "time_unit": pa.array([unit] * n, pa.string()),
    }
    for fits_name, out in POINTING_COLUMNS.items():
        cols[out] = _floats(_column(data, fits_name), n)
    cols["hga_motion"] = _text(_column(data, "hga_motion"), n)
    return pa.table(cols)


def _centroids_from_fits(guider: GuiderFile, data: np.ndarray) -> pa.Table:
    n = len(data)
    obs = _column(data, "observatory_time")
    cols = {
        "row": pa.array(np.arange(n, dtype=np.int32)),
        "time_mjd": pa.array(_utc_strings_to_mjd(obs) if obs is not None else np.full(n, np.nan)),
    }
    for fits_name, out in CENTROID_FLOAT_COLUMNS.items():
        cols[out] = _floats(_column(data, fits_name), n)
    for fits_name, out in CENTROID_INT_COLUMNS.items():
        values = _column(data, fits_name)
        cols[out] = (
            pa.nulls(n, pa.int32()) if values is None else pa.array(np.asarray(values, np.int32))
        )
    for fits_name, out in CENTROID_TEXT_COLUMNS.items():
        cols[out] = _text(_column(data, fits_name), n)
    return pa.table(cols)
