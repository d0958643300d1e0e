"""Physical simulator of JWST FGS guide-star products (test data for fgsarchive).

No machine running the tests reaches MAST, so the archive is exercised with files written
here in the layout of real calibrated guider products (``GuiderCalModel``, see
``docs/simulator.md``):

* fine-guide cal files ``jw<ppppp><ooo><vvv>_gs-fg_<yyyydddhhmmss>[-seg<NNN>]_cal.fits``
  with PRIMARY, SCI ``(nints, 8, 8)`` float32 [DN/s], ERR, DQ ``(8, 8)`` uint32, POINTING and
  FGS CENTROID PACKET tables;
* the other guider products of a visit (``gs-acq1``, ``gs-acq2``, ``gs-track`` and, on
  request, ``gs-id_<m>_image``);
* the truth beside them in ``<out_dir>/truth/`` (per-frame Gaussian parameters, injected
  events, star list, telemetry intervals).

Frames follow the pixel and Gaussian conventions of ``docs/CONVENTIONS.md``: ``frame[y, x]``,
pixel centres at integer coordinates, and the PSF is astropy's ``Gaussian2D`` plus a constant
evaluated at the pixel centres, so fitted parameters compare directly with the truth.

Everything is deterministic given ``seed``. Pixels are generated in vectorised chunks of
frames (no per-frame Python loop) on a small thread pool, and every file is generated and
written on its own so memory stays flat.

Times of injected events are given in **seconds relative to the fine-guide start of the
visit** they belong to (the ``DATASTRT`` of the visit's first ``gs-fg`` file); the truth
tables report them as absolute MJD (UTC).

Modules, each importing only the ones listed before it: ``times`` (MJD helpers),
``injections`` (events and guide stars), ``psf`` (PSF model, pixel noise), ``writer`` (file
names, headers, FITS writer), ``plan`` (visits, guide periods, segments), ``noise``
(correlated noise, short guide periods), ``physics`` (per-frame parameters), ``tables``
(POINTING / CENTROID tables), ``truth`` (results, truth tables), ``edb`` (EDB-style telemetry),
``runner`` (one program, step by step), ``generator`` (``simulate_program``,
``simulate_archive``). This package re-exports the public names.
"""

from __future__ import annotations

from .edb import edb_csv, edb_timeseries
from .generator import simulate_archive, simulate_program
from .injections import (
    REFERENCE_PSF_AREA,
    CentroidJump,
    FilterWheelMove,
    FluxDrop,
    GuideStar,
    HgaMove,
    Injection,
    PeriodicSignal,
    PsfWidthChange,
    VariableStar,
    amplitude_from_mag,
    flux_from_mag,
    make_guide_stars,
)
from .noise import (
    NOISE_PRESETS,
    CorrelatedNoise,
    noise_series,
    resolve_noise,
    white_noise_sigmas,
)
from .noise import (
    _short_guide_periods as _short_guide_periods,  # used by the tests
)
from .psf import PIXEL_SCALE_ARCSEC, gaussian_frames
from .psf import _Noise as _Noise  # used by the tests
from .tables import centroid_dtype, pointing_dtype, track_subarray_dtype
from .times import file_stamp, mjd_to_iso
from .truth import (
    SimulatedArchive,
    SimulatedProgram,
    TruthTables,
    read_frame_truth,
    read_truth,
)
from .writer import (
    _card as _card,  # used by the tests
)
from .writer import (
    guider_file_name,
    make_guider_header,
    write_fg_file,
    write_guider_file,
)

__all__ = [
    "PIXEL_SCALE_ARCSEC",
    "FluxDrop",
    "CentroidJump",
    "PsfWidthChange",
    "PeriodicSignal",
    "VariableStar",
    "HgaMove",
    "FilterWheelMove",
    "Injection",
    "GuideStar",
    "CorrelatedNoise",
    "NOISE_PRESETS",
    "resolve_noise",
    "noise_series",
    "white_noise_sigmas",
    "SimulatedProgram",
    "SimulatedArchive",
    "TruthTables",
    "simulate_program",
    "simulate_archive",
    "write_fg_file",
    "write_guider_file",
    "make_guider_header",
    "make_guide_stars",
    "guider_file_name",
    "amplitude_from_mag",
    "flux_from_mag",
    "REFERENCE_PSF_AREA",
    "gaussian_frames",
    "pointing_dtype",
    "centroid_dtype",
    "track_subarray_dtype",
    "read_truth",
    "read_frame_truth",
    "edb_timeseries",
    "edb_csv",
    "mjd_to_iso",
    "file_stamp",
]
