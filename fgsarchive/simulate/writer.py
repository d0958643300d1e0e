"""Guider file layout: file names, PRIMARY headers and the FITS writer (fast path + astropy)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits

from .injections import GuideStar
from .times import _SECONDS_PER_DAY, _utc_str, file_stamp, mjd_to_iso

_COMMENTS = {
    "DATE": "UTC date file created",
    "ORIGIN": "Organization responsible for creating file",
    "TIMESYS": "principal time system for time-related keywords",
    "FILENAME": "Name of the file",
    "FILETYPE": "Type of data in the file",
    "DATAMODL": "Type of data model",
    "TELESCOP": "Telescope used to acquire the data",
    "CAL_VER": "Calibration software version number",
    "DATE-OBS": "[yyyy-mm-dd] UTC date at start of exposure",
    "TIME-OBS": "[hh:mm:ss.sss] UTC time at start of exposure",
    "DATE-BEG": "Date-time start of exposure",
    "DATE-END": "Date-time end of exposure",
    "OBS_ID": "Programmatic observation identifier",
    "VISIT_ID": "Visit identifier",
    "PROGRAM": "Program number",
    "OBSERVTN": "Observation number",
    "VISIT": "Visit number",
    "VISITGRP": "Visit group identifier",
    "SEQ_ID": "Parallel sequence identifier",
    "ACT_ID": "Activity identifier",
    "EXPOSURE": "Exposure request number",
    "VISITYPE": "Visit type",
    "VSTSTART": "UTC visit start time",
    "VISITSTA": "Status of a visit",
    "TSOVISIT": "Time Series Observation visit indicator",
    "ENG_QUAL": "Engineering data quality indicator",
    "INSTRUME": "Instrument used to acquire the data",
    "DETECTOR": "Name of detector used to acquire the data",
    "APERNAME": "PRD science aperture used",
    "PPS_APER": "Original AperName supplied by PPS",
    "EXP_TYPE": "Type of data in the exposure",
    "DATAPROB": "Science telemetry indicated a problem",
    "READPATT": "Readout pattern",
    "NINTS": "Number of integrations in exposure",
    "NGROUPS": "Number of groups in integration",
    "NFRAMES": "Number of frames per group",
    "GROUPGAP": "Number of frames dropped between groups",
    "TFRAME": "[s] Time between frames",
    "TGROUP": "[s] Time between groups",
    "EFFINTTM": "[s] Effective integration time",
    "DURATION": "[s] Total duration of exposure",
    "EXSEGNUM": "Segment number",
    "EXSEGTOT": "Total number of segments",
    "INTSTART": "Starting integration number in this segment",
    "INTEND": "Ending integration number in this segment",
    "SUBARRAY": "Subarray used",
    "SUBSTRT1": "Starting pixel in axis 1 direction",
    "SUBSTRT2": "Starting pixel in axis 2 direction",
    "SUBSIZE1": "Number of pixels in axis 1 direction",
    "SUBSIZE2": "Number of pixels in axis 2 direction",
    "GS_ORDER": "index of guide star within list of selected guide stars",
    "GSSTRTTM": "UTC time when guide star activity started",
    "GSENDTIM": "UTC time when guide star activity completed",
    "GF_START": "UTC time guider function started",
    "GF_END": "UTC time guider function ended",
    "GDSTARID": "guide star identifier",
    "GS_RA": "guide star right ascension",
    "GS_DEC": "guide star declination",
    "GS_URA": "guide star right ascension uncertainty",
    "GS_UDEC": "guide star declination uncertainty",
    "GS_MAG": "guide star magnitude in FGS detector",
    "GS_UMAG": "guide star magnitude uncertainty",
    "GS_MURA": "RA proper motion of guide star",
    "GS_MUDEC": "Dec proper motion of guide star",
    "GS_PARA": "parallax of guide star",
    "GS_EPOCH": "Epoch of guide star coordinates",
    "GS_V3_PA": "V3 Position Angle of guide star for science",
    "GSIDL_X": "guide star ideal x position",
    "GSIDL_Y": "guide star ideal y position",
    "PCS_MODE": "Pointing Control System mode",
    "FGS_APER": "Aperture used for guide star acquisition",
    "DATASTRT": "[d] MJD start time of guider data in this file",
    "DATAEND": "[d] MJD end time of guider data in this file",
    "GSACSTAT": "Guide star acquisition execution status",
    "VISITEND": "Observatory UTC time when the visit ended",
    "GSC_VER": "Guide star catalog version used",
    "HGA_MOVE": "High Gain Antenna moved during data collection",
    "HGA_STRT": "UTC time of HGA move start",
    "HGA_STOP": "UTC time of HGA move stop",
    "BUNIT": "physical units of the array values",
}


def _to_header(values: Mapping[str, Any] | fits.Header | None) -> fits.Header:
    """Dict ``{KEY: value | (value, comment)}`` -> ``fits.Header`` (None values skipped)."""
    if values is None:
        return fits.Header()
    if isinstance(values, fits.Header):
        return values.copy()
    hdr = fits.Header()
    for key, val in values.items():
        if isinstance(val, tuple):
            v, comment = val
        else:
            v, comment = val, _COMMENTS.get(key.upper(), "")
        if v is None:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        room = 80 - len(fits.Card(key, v).image.rstrip()) - 3
        hdr[key] = (v, comment[: max(room, 0)])
    return hdr


# --- a small strict FITS writer (astropy's per-card overhead dominates small files) ---

_BITPIX = {
    "u1": (8, None),
    "i2": (16, None),
    "i4": (32, None),
    "i8": (64, None),
    "f4": (-32, None),
    "f8": (-64, None),
    "u2": (16, 32768),
    "u4": (32, 2147483648),
    "u8": (64, 9223372036854775808),
}
_TFORM = {"f8": "D", "f4": "E", "i4": "J", "i2": "I", "i8": "K", "u1": "B"}
_KEY_RE = re.compile(r"^[A-Z0-9_-]{1,8}$")


class _Unsupported(Exception):
    pass


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return f"{'T' if v else 'F':>20}"
    if isinstance(v, int | np.integer):
        return f"{int(v):>20}"
    if isinstance(v, float | np.floating):
        v = float(v)
        if not math.isfinite(v):
            raise _Unsupported("non-finite header float")
        txt = repr(v).replace("e", "E")
        if "." not in txt and "E" not in txt:
            txt += ".0"
        digits = 16
        while len(txt) > 20:  # as astropy: fewer significant digits for huge/tiny values
            txt = f"{v:.{digits}G}"
            digits -= 1
        return f"{txt:>20}"
    if isinstance(v, str):
        if not v.isascii() or len(v) > 68 or any(ord(c) < 32 for c in v):
            raise _Unsupported("long or non-ASCII string")
        quoted = "'" + v.replace("'", "''").ljust(8) + "'"
        return quoted.ljust(20)
    raise _Unsupported(f"header value type {type(v).__name__}")


def _card(key: str, value: Any, comment: str = "") -> str:
    key = key.upper()
    if not _KEY_RE.match(key):
        raise _Unsupported(f"keyword {key!r}")
    img = f"{key:8}= {_fmt_value(value)}"
    if len(img) > 80:
        raise _Unsupported("card too long")
    if comment and len(img) < 77:
        img += " / " + comment
    return f"{img[:80]:80}"


def _user_cards(values: Mapping[str, Any] | None) -> list[str]:
    cards = []
    for key, val in (values or {}).items():
        v, comment = val if isinstance(val, tuple) else (val, _COMMENTS.get(key.upper(), ""))
        if v is None:
            continue
        cards.append(_card(key, v, comment))
    return cards


def _header_block(cards: list[str]) -> bytes:
    text = "".join(cards) + f"{'END':80}"
    text += " " * (-len(text) % 2880)
    return text.encode("ascii")


def _image_hdu(arr: np.ndarray | None, extname: str | None, keys: Mapping | None) -> list:
    if arr is None:
        cards = [
            _card("SIMPLE", True),
            _card("BITPIX", 8),
            _card("NAXIS", 0),
            _card("EXTEND", True),
        ]
        return [cards + _user_cards(keys), None]
    arr = np.asarray(arr)
    code = f"{arr.dtype.kind}{arr.dtype.itemsize}"
    if code not in _BITPIX or arr.ndim == 0:
        raise _Unsupported(f"image dtype {arr.dtype}")
    bitpix, bzero = _BITPIX[code]
    cards = [_card("XTENSION", "IMAGE"), _card("BITPIX", bitpix), _card("NAXIS", arr.ndim)]
    cards += [_card(f"NAXIS{i + 1}", n) for i, n in enumerate(arr.shape[::-1])]
    cards += [_card("PCOUNT", 0), _card("GCOUNT", 1)]
    if bzero is not None:
        cards += [_card("BSCALE", 1), _card("BZERO", bzero)]
        signed = np.dtype(f">i{arr.dtype.itemsize}")
        flip = np.array(1 << (8 * arr.dtype.itemsize - 1), dtype=arr.dtype)
        data = (arr ^ flip).astype(arr.dtype.newbyteorder(">")).view(signed)
    else:
        data = arr.astype(arr.dtype.newbyteorder(">"), copy=False)
    if extname:
        cards.append(_card("EXTNAME", extname, "extension name"))
    return [cards + _user_cards(keys), np.ascontiguousarray(data)]


def _table_hdu(arr: np.ndarray, extname: str, keys: Mapping | None) -> list:
    dt = arr.dtype
    if dt.names is None:
        raise _Unsupported("table must be a structured array")
    be_fields, forms = [], []
    for name in dt.names:
        f = dt.fields[name][0]
        if f.subdtype is not None:
            raise _Unsupported("array columns")
        if f.kind == "S":
            forms.append(f"{f.itemsize}A")
            be_fields.append((name, f))
        else:
            code = f"{f.kind}{f.itemsize}"
            if code not in _TFORM:
                raise _Unsupported(f"column dtype {f}")
            forms.append(_TFORM[code])
            be_fields.append((name, f.newbyteorder(">")))
    packed = np.dtype(be_fields)
    data = np.empty(arr.shape[0], dtype=packed)
    for name in dt.names:
        data[name] = arr[name]
    cards = [
        _card("XTENSION", "BINTABLE", "binary table extension"),
        _card("BITPIX", 8),
        _card("NAXIS", 2),
        _card("NAXIS1", packed.itemsize),
        _card("NAXIS2", arr.shape[0]),
        _card("PCOUNT", 0),
        _card("GCOUNT", 1),
        _card("TFIELDS", len(dt.names)),
    ]
    for i, (name, form) in enumerate(zip(dt.names, forms, strict=True)):
        cards += [_card(f"TTYPE{i + 1}", name), _card(f"TFORM{i + 1}", form)]
    cards.append(_card("EXTNAME", extname, "extension name"))
    return [cards + _user_cards(keys), data]


def _write_fast(path: Path, hdus: list[list], overwrite: bool) -> None:
    blocks = [(_header_block(cards), data) for cards, data in hdus]  # may raise first
    with open(path, "wb" if overwrite else "xb") as fh:
        for head, data in blocks:
            fh.write(head)
            if data is not None:
                fh.write(memoryview(data).cast("B"))
                pad = -data.nbytes % 2880
                if pad:
                    fh.write(b"\0" * pad)


def write_guider_file(
    path: str | os.PathLike[str],
    sci: np.ndarray,
    err: np.ndarray | None,
    dq: np.ndarray | None,
    header: Mapping[str, Any] | fits.Header,
    tables: Sequence[tuple[str, np.ndarray | None, Mapping[str, Any] | None]] = (),
    *,
    sci_header: Mapping[str, Any] | None = None,
    extra_hdus: Sequence[fits.hdu.base.ExtensionHDU] = (),
    overwrite: bool = True,
    engine: Literal["auto", "fast", "astropy"] = "auto",
) -> Path:
    """Write any guider product: PRIMARY, SCI, ERR, DQ, then binary tables in the given order.

    ``header``: PRIMARY keywords, ``{KEY: value | (value, comment)}`` (``None`` values are
    skipped) or an astropy ``Header``. ``tables`` holds ``(EXTNAME, structured array,
    extension keywords)``. Arrays are written with the dtype given (so tests can build odd
    files); ``None`` arrays/tables are omitted. SCI and ERR get ``BUNIT='DN/s'`` unless
    ``sci_header`` says otherwise.

    ``engine='fast'`` uses a small built-in FITS writer (standard numeric dtypes, short ASCII
    strings, byte-identical output for identical input); ``'astropy'`` uses
    ``astropy.io.fits``; ``'auto'`` (default) tries the fast writer and falls back to astropy
    for anything it does not handle (e.g. ``extra_hdus``, an astropy ``Header``).
    """
    path = Path(path)
    img_hdr = {"BUNIT": "DN/s"} if sci_header is None else dict(sci_header)
    tabs = [(n.upper(), a, k) for n, a, k in tables if a is not None]
    use_fast = engine == "fast" or (
        engine == "auto" and not extra_hdus and not isinstance(header, fits.Header)
    )
    if use_fast:
        try:
            hdus = [_image_hdu(None, None, header), _image_hdu(sci, "SCI", img_hdr)]
            if err is not None:
                hdus.append(_image_hdu(err, "ERR", img_hdr))
            if dq is not None:
                hdus.append(_image_hdu(dq, "DQ", None))
            hdus += [_table_hdu(np.asarray(a), n, k) for n, a, k in tabs]
            _write_fast(path, hdus, overwrite)
            return path
        except _Unsupported:
            if engine == "fast":
                raise
    hl: list[Any] = [fits.PrimaryHDU(header=_to_header(header))]
    hl.append(fits.ImageHDU(data=sci, header=_to_header(img_hdr), name="SCI"))
    if err is not None:
        hl.append(fits.ImageHDU(data=err, header=_to_header(img_hdr), name="ERR"))
    if dq is not None:
        hl.append(fits.ImageHDU(data=dq, name="DQ"))
    for extname, arr, keys in tabs:
        hl.append(fits.BinTableHDU(data=arr, header=_to_header(keys), name=extname))
    hl.extend(extra_hdus)
    fits.HDUList(hl).writeto(path, overwrite=overwrite)
    return path


def write_fg_file(
    path: str | os.PathLike[str],
    sci: np.ndarray,
    err: np.ndarray | None,
    dq: np.ndarray | None,
    header: Mapping[str, Any] | fits.Header,
    pointing: np.ndarray | None = None,
    centroids: np.ndarray | None = None,
    *,
    pointing_header: Mapping[str, Any] | None = None,
    centroid_header: Mapping[str, Any] | None = None,
    extra_hdus: Sequence[fits.hdu.base.ExtensionHDU] = (),
    overwrite: bool = True,
    engine: Literal["auto", "fast", "astropy"] = "auto",
) -> Path:
    """Write a fine-guide cal file in the real HDU order.

    PRIMARY (``header``: dict of keyword -> value or (value, comment)), SCI, ERR, DQ,
    POINTING (``pointing``, structured array, e.g. ``np.zeros(n, pointing_dtype())``) and
    FGS CENTROID PACKET (``centroids``, ``centroid_dtype()``). Nothing is validated: pass any
    arrays/headers to build corrupt or odd files. ``uint32`` DQ is written as
    ``BITPIX=32, BZERO=2147483648`` like stdatamodels/astropy do. ``engine``: see
    :func:`write_guider_file`.
    """
    tables = [
        ("POINTING", pointing, pointing_header),
        ("FGS CENTROID PACKET", centroids, centroid_header),
    ]
    return write_guider_file(
        path,
        sci,
        err,
        dq,
        header,
        tables,
        extra_hdus=extra_hdus,
        overwrite=overwrite,
        engine=engine,
    )


_MODE_INFO: dict[str, dict[str, Any]] = {
    "fg": {
        "EXP_TYPE": "FGS_FINEGUIDE",
        "READPATT": "FINEGUIDE",
        "SUBARRAY": "8X8",
        "PCS_MODE": "FINEGUIDE",
        "NGROUPS": 8,
        "NFRAMES": 4,
        "size": (8, 8),
    },
    "track": {
        "EXP_TYPE": "FGS_TRACK",
        "READPATT": "TRACK",
        "SUBARRAY": "32X32",
        "PCS_MODE": "TRACK",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (32, 32),
    },
    "acq1": {
        "EXP_TYPE": "FGS_ACQ1",
        "READPATT": "ACQ1",
        "SUBARRAY": "128X128",
        "PCS_MODE": "COARSE",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (128, 128),
    },
    "acq2": {
        "EXP_TYPE": "FGS_ACQ2",
        "READPATT": "ACQ2",
        "SUBARRAY": "32X32",
        "PCS_MODE": "COARSE",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (32, 32),
    },
    "id": {
        "EXP_TYPE": "FGS_ID-IMAGE",
        "READPATT": "ID",
        "SUBARRAY": "2048X64",
        "PCS_MODE": "COARSE",
        "NGROUPS": 2,
        "NFRAMES": 1,
        "size": (2048, 2024),
    },
}


def guider_file_name(
    program: int,
    observation: int,
    visit: int,
    mode: Literal["fg", "track", "acq1", "acq2", "id"],
    *,
    end_mjd: float | None = None,
    segment: int | None = None,
    attempt: int = 1,
    kind: Literal["image", "stacked"] = "image",
    suffix: Literal["cal", "uncal"] = "cal",
) -> str:
    """File name by the guider grammar (§1.2 of fgs-data-format.md).

    ``jw<ppppp><ooo><vvv>_gs-<mode>_<yyyydddhhmmss>[-seg<NNN>]_<suffix>.fits``; ID products
    ``jw<ppppp><ooo><vvv>_gs-id_<attempt>_<kind>_<suffix>.fits``. ``end_mjd`` is the stamp time
    (end of the data; for segments the end of the whole guide period).
    """
    head = f"jw{program:05d}{observation:03d}{visit:03d}_gs-{mode}"
    if mode == "id":
        return f"{head}_{attempt}_{kind}_{suffix}.fits"
    if end_mjd is None:
        raise ValueError("end_mjd is required for time-stamped guider products")
    seg = f"-seg{segment:03d}" if segment is not None else ""
    return f"{head}_{file_stamp(end_mjd)}{seg}_{suffix}.fits"


def make_guider_header(
    *,
    file_name: str,
    program: int,
    observation: int,
    visit: int,
    mode: Literal["fg", "track", "acq1", "acq2", "id"],
    data_start_mjd: float,
    data_end_mjd: float,
    nints: int,
    star: GuideStar,
    cadence_s: float | None = None,
    gs_order: int = 1,
    visit_start_mjd: float | None = None,
    visit_end_mjd: float | None = None,
    gs_start_mjd: float | None = None,
    gs_end_mjd: float | None = None,
    activity: int = 1,
    segment: tuple[int, int, int, int] | None = None,
    hga: tuple[float, float] | None = None,
    gsc_version: str = "GSC30",
) -> dict[str, Any]:
    """PRIMARY keywords of a guider cal product (values valid for the stdatamodels schema).

    ``segment`` = (EXSEGNUM, EXSEGTOT, INTSTART, INTEND) for segmented products; ``hga`` =
    (start, stop) MJD of an HGA move overlapping the data (sets HGA_MOVE/HGA_STRT/HGA_STOP).
    Times in MJD UTC. Returns an ordered ``dict`` for :func:`write_guider_file`.
    """
    info = _MODE_INFO[mode]
    ny, nx = info["size"]
    guider = 1 if star.detector == "GUIDER1" else 2
    aper = f"FGS{guider}_FULL"
    dur_s = (data_end_mjd - data_start_mjd) * _SECONDS_PER_DAY
    cad = cadence_s if cadence_s is not None else dur_s / max(nints, 1)
    ngroups = info["NGROUPS"]
    tgroup = cad / ngroups
    vstart = visit_start_mjd if visit_start_mjd is not None else data_start_mjd
    vend = visit_end_mjd if visit_end_mjd is not None else data_end_mjd
    date_beg = mjd_to_iso(data_start_mjd)
    visit_id = f"{program:05d}{observation:03d}{visit:03d}"
    h: dict[str, Any] = {
        "DATE": datetime(2024, 1, 1).isoformat(timespec="milliseconds"),
        "ORIGIN": "STSCI",
        "TIMESYS": "UTC",
        "FILENAME": file_name,
        "FILETYPE": "calibrated",
        "DATAMODL": "GuiderCalModel",
        "TELESCOP": "JWST",
        "CAL_VER": "fgsarchive-sim",
        "DATE-OBS": date_beg[:10],
        "TIME-OBS": date_beg[11:],
        "DATE-BEG": date_beg,
        "DATE-END": mjd_to_iso(data_end_mjd),
        "OBS_ID": f"V{visit_id}P{0:08d}{2:02d}1{activity:02d}",
        "VISIT_ID": visit_id,
        "PROGRAM": f"{program:05d}",
        "OBSERVTN": f"{observation:03d}",
        "VISIT": f"{visit:03d}",
        "VISITGRP": "02",
        "SEQ_ID": "1",
        "ACT_ID": f"{activity:02d}",
        "EXPOSURE": "1",
        "VISITYPE": "PRIME_TARGETED_FIXED",
        "VSTSTART": _utc_str(vstart),
        "VISITSTA": "SUCCESSFUL",
        "TSOVISIT": False,
        "ENG_QUAL": "OK",
        "INSTRUME": "FGS",
        "DETECTOR": star.detector,
        "APERNAME": aper,
        "PPS_APER": aper,
        "EXP_TYPE": info["EXP_TYPE"],
        "DATAPROB": False,
        "READPATT": info["READPATT"],
        "NINTS": int(nints),
        "NGROUPS": ngroups,
        "NFRAMES": info["NFRAMES"],
        "GROUPGAP": 0,
        "TFRAME": tgroup,
        "TGROUP": tgroup,
        "EFFINTTM": cad,
        "DURATION": dur_s,
    }
    if segment is not None:
        h["EXSEGNUM"], h["EXSEGTOT"], h["INTSTART"], h["INTEND"] = (int(v) for v in segment)
    h.update(
        {
            "SUBARRAY": info["SUBARRAY"],
            "SUBSTRT1": 1 if mode == "id" else 1017 - nx // 2,
            "SUBSTRT2": 1 if mode == "id" else 1017 - ny // 2,
            "SUBSIZE1": nx,
            "SUBSIZE2": ny,
            "GS_ORDER": int(gs_order),
            "GSSTRTTM": _utc_str(gs_start_mjd if gs_start_mjd is not None else vstart),
            "GSENDTIM": _utc_str(gs_end_mjd if gs_end_mjd is not None else vend),
            "GF_START": _utc_str(data_start_mjd),
            "GF_END": _utc_str(data_end_mjd),
            "GDSTARID": star.gs_id,
            "GS_RA": star.ra,
            "GS_DEC": star.dec,
            "GS_URA": 0.0001,
            "GS_UDEC": 0.0001,
            "GS_MAG": star.fgs_mag,
            "GS_UMAG": 0.05,
            "GS_MURA": 1.25,
            "GS_MUDEC": 0.43,
            "GS_PARA": 0.08,
            "GS_EPOCH": "2016-01-01 00:00:00",
            "GS_V3_PA": 123.4,
            "GSIDL_X": 0.0 if guider == 1 else -0.5,
            "GSIDL_Y": 0.0 if guider == 1 else 0.5,
            "PCS_MODE": info["PCS_MODE"],
            "FGS_APER": aper,
            "DATASTRT": float(data_start_mjd),
            "DATAEND": float(data_end_mjd),
            "GSACSTAT": "SUCCESSFUL",
            "VISITEND": _utc_str(vend),
            "GSC_VER": gsc_version,
            "HGA_MOVE": hga is not None,
        }
    )
    if hga is not None:
        h["HGA_STRT"] = _utc_str(hga[0])
        h["HGA_STOP"] = _utc_str(hga[1])
    return h


def _pointing_header(star: GuideStar, start_mjd: float, jitter_mas: np.ndarray) -> dict:
    aper = "FGS1_FULL" if star.detector == "GUIDER1" else "FGS2_FULL"
    j = jitter_mas[np.isfinite(jitter_mas)] if jitter_mas.size else np.zeros(1)
    return {
        "DDCFLDPT": aper,
        "POINTTIM": _utc_str(start_mjd),
        "RA_DDC": star.ra + 0.001,
        "DEC_DDC": star.dec - 0.001,
        "PA_APER": 123.4,
        "RA_V1": star.ra + 0.05,
        "DEC_V1": star.dec - 0.05,
        "PA_V3": 123.0,
        "RA_J1": star.ra + 0.06,
        "DEC_J1": star.dec - 0.04,
        "PA_J3": 122.9,
        "JITTRAVG": float(np.mean(j)) if j.size else 0.0,
        "JITTRMAX": float(np.max(j)) if j.size else 0.0,
        "JITTRMIN": float(np.min(j)) if j.size else 0.0,
    }
