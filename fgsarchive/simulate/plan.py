"""Planning: program -> observations -> visits -> guide periods -> segments (times only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .injections import GuideStar
from .times import _SECONDS_PER_DAY, _safe_end_start


@dataclass
class _Segment:
    number: int  # 1-based, 0 = unsegmented
    i0: int
    i1: int
    data_start: float
    data_end: float
    file_name: str = ""


@dataclass
class _GuidePeriod:
    index: int
    n_frames: int
    start: float
    end: float
    segments: list[_Segment] = field(default_factory=list)


@dataclass
class _VisitPlan:
    observation: int
    visit: int
    star: GuideStar
    gp_frames: list[int]
    gs_order: int = 1
    start: float = 0.0
    end: float = 0.0
    id_span: tuple[float, float] = (0.0, 0.0)
    acq1_span: tuple[float, float] = (0.0, 0.0)
    acq2_span: tuple[float, float] = (0.0, 0.0)
    track_span: tuple[float, float] = (0.0, 0.0)
    gps: list[_GuidePeriod] = field(default_factory=list)

    @property
    def fg_start(self) -> float:
        return self.gps[0].start


_ACQ_CADENCE_S = 0.3355
_TRACK_NINTS = 100


def _plan_times(
    visits: list[_VisitPlan],
    *,
    start_mjd: float,
    cadence_s: float,
    segment_frames: int | None,
    guide_gap_s: float,
    visit_gap_s: float,
    rng: np.random.Generator,
) -> float:
    """Lay visits out in time; fills spans, guide periods and segments. Returns end MJD."""
    day = _SECONDS_PER_DAY
    t = start_mjd
    for v in visits:
        t += rng.uniform(0.0, 1.0) / day
        v.start = t
        v.id_span = (t + 10.0 / day, t + 14.5 / day)
        a1 = t + (40.0 + rng.uniform(0, 1)) / day
        v.acq1_span = (a1, a1 + 6 * _ACQ_CADENCE_S / day)
        a2 = t + (52.0 + rng.uniform(0, 1)) / day
        v.acq2_span = (a2, a2 + 5 * _ACQ_CADENCE_S / day)
        tr = _safe_end_start(t + (60.0 + rng.uniform(0, 1)) / day, _TRACK_NINTS * cadence_s)
        v.track_span = (tr, tr + _TRACK_NINTS * cadence_s / day)
        for span in ("acq1_span", "acq2_span"):
            s0, s1 = getattr(v, span)
            dur = s1 - s0
            s0 = _safe_end_start(s0, dur * day)
            setattr(v, span, (s0, s0 + dur))
        gstart = v.track_span[1] + (1.0 + rng.uniform(0, 1)) / day
        v.gps = []
        for k, n in enumerate(v.gp_frames):
            if k:
                gstart += guide_gap_s * rng.uniform(0.5, 1.5) / day
            gstart = _safe_end_start(gstart, n * cadence_s)
            gend = gstart + n * cadence_s / day
            gp = _GuidePeriod(index=k, n_frames=n, start=gstart, end=gend)
            if segment_frames is not None and n > segment_frames:
                bounds = list(range(0, n, segment_frames)) + [n]
                for s, (i0, i1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                    gp.segments.append(
                        _Segment(
                            number=s + 1,
                            i0=i0,
                            i1=i1,
                            data_start=gstart + i0 * cadence_s / day,
                            data_end=gstart + i1 * cadence_s / day,
                        )
                    )
            else:
                gp.segments.append(_Segment(0, 0, n, gstart, gend))
            v.gps.append(gp)
            gstart = gend
        v.end = gstart + 5.0 / day
        t = v.end + visit_gap_s * rng.uniform(0.5, 1.5) / day
    return t
