"""Seeded noise series for judging statistics: white, AR(1), random walk, power law, mixtures,
on short guide periods with gaps (64-ms cadence, several segments per guide period).

Used by ``scripts/bench_noise_stats.py`` and the statistics tests to measure false-alarm rates
and recall of the periodogram and anomaly detectors on noise they were *not* built on. Every
kind is normalised to white noise of unit standard deviation per frame plus its red part, so a
signal's amplitude is in units of the per-frame white noise. Pure numpy/scipy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

__all__ = [
    "CADENCE_S",
    "NoiseKind",
    "NOISE_KINDS",
    "TUNED_KINDS",
    "HELD_OUT_KINDS",
    "white",
    "ar1",
    "random_walk",
    "power_law",
    "make_noise",
    "guide_period_times",
    "visit_times",
    "noisy_visit",
    "GappedSeries",
    "gapped_series",
]

CADENCE_S = 0.064
"""Frame spacing of the fine guider's 8x8 track mode (s)."""


@dataclass(frozen=True)
class NoiseKind:
    """White noise of unit sigma plus red components.

    ``ar1``: (fraction of the total variance, correlation time s) per AR(1) component;
    ``walk_step``: per-frame step of a random walk (units of the white sigma; 0 = none);
    ``power_law``: (fraction of the total variance over the series, alpha) per 1/f^alpha part.
    """

    name: str
    ar1: tuple[tuple[float, float], ...] = ()
    walk_step: float = 0.0
    power_law: tuple[tuple[float, float], ...] = ()


NOISE_KINDS: dict[str, NoiseKind] = {
    k.name: k
    for k in (
        NoiseKind("white"),
        NoiseKind("ar1-1%-2s", ar1=((0.01, 2.0),)),
        NoiseKind("ar1-1%-20s", ar1=((0.01, 20.0),)),
        NoiseKind("ar1-10%-1s", ar1=((0.10, 1.0),)),
        NoiseKind("ar1-10%-20s", ar1=((0.10, 20.0),)),
        NoiseKind("ar1-10%-60s", ar1=((0.10, 60.0),)),
        NoiseKind("random-walk", walk_step=0.02),
        NoiseKind("power-law-1", power_law=((0.10, 1.0),)),
        NoiseKind("power-law-1.5", power_law=((0.10, 1.5),)),
        NoiseKind(
            "mixture",
            ar1=((0.05, 40.0), (0.02, 3.0)),
            walk_step=0.01,
            power_law=((0.05, 1.2),),
        ),
    )
}
"""The noise kinds of the statistics bench and tests (per-frame white sigma = 1)."""

TUNED_KINDS = ("white", "ar1-1%-20s", "ar1-10%-20s", "random-walk", "power-law-1")
"""Kinds looked at while the detectors' constants were chosen."""
HELD_OUT_KINDS = ("ar1-1%-2s", "ar1-10%-1s", "ar1-10%-60s", "power-law-1.5", "mixture")
"""Kinds only measured after the design was frozen (the figures on them are out-of-sample)."""


def white(n: int, rng: np.random.Generator, sigma: float = 1.0) -> np.ndarray:
    """Gaussian white noise."""
    return rng.normal(0.0, sigma, n)


def ar1(
    n: int, rng: np.random.Generator, *, sigma: float, tau_s: float, cadence_s: float = CADENCE_S
) -> np.ndarray:
    """Stationary AR(1) noise of standard deviation ``sigma`` and correlation time ``tau_s``."""
    phi = float(np.exp(-cadence_s / tau_s))
    e = rng.normal(0.0, sigma * np.sqrt(1.0 - phi * phi), n)
    e[0] = rng.normal(0.0, sigma)  # start in the stationary state
    return lfilter([1.0], [1.0, -phi], e)


def random_walk(n: int, rng: np.random.Generator, *, step: float) -> np.ndarray:
    """Cumulative sum of Gaussian steps of standard deviation ``step``."""
    return np.cumsum(rng.normal(0.0, step, n))


def power_law(n: int, rng: np.random.Generator, *, sigma: float, alpha: float) -> np.ndarray:
    """1/f^alpha noise (Gaussian, random phases) of sample standard deviation ``sigma``.

    Made by FFT on twice the length (so the series does not wrap around) and cut to ``n``.
    """
    m = 2 * n
    f = np.fft.rfftfreq(m)
    amp = np.zeros_like(f)
    amp[1:] = f[1:] ** (-alpha / 2.0)
    spec = amp * (rng.normal(size=f.size) + 1j * rng.normal(size=f.size))
    x = np.fft.irfft(spec, m)[:n]
    s = x.std()
    return x * (sigma / s) if s > 0 else x


def make_noise(
    kind: NoiseKind | str, n: int, rng: np.random.Generator, *, cadence_s: float = CADENCE_S
) -> np.ndarray:
    """``n`` consecutive frames of noise of ``kind`` (white sigma 1; red parts as their fractions
    of the total variance: a fraction q adds variance q / (1 - sum q))."""
    k = NOISE_KINDS[kind] if isinstance(kind, str) else kind
    fracs = [q for q, _ in k.ar1] + [q for q, _ in k.power_law]
    total = 1.0 / max(1e-9, 1.0 - sum(fracs))  # total variance when the white part is 1
    x = white(n, rng)
    for q, tau in k.ar1:
        x += ar1(n, rng, sigma=np.sqrt(q * total), tau_s=tau, cadence_s=cadence_s)
    for q, alpha in k.power_law:
        x += power_law(n, rng, sigma=np.sqrt(q * total), alpha=alpha)
    if k.walk_step:
        x += random_walk(n, rng, step=k.walk_step)
    return x


def guide_period_times(
    rng: np.random.Generator,
    n_frames: int,
    *,
    n_segments: int | None = None,
    gap_s: tuple[float, float] = (2.0, 40.0),
    cadence_s: float = CADENCE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame times (s) of a guide period of ``n_frames`` frames in ``n_segments`` segments
    (default 2-6) separated by gaps of ``gap_s`` seconds (uniform), and the mask of those
    frames on the continuous cadence grid that spans it (the noise runs on through the gaps)."""
    if n_segments is None:
        n_segments = int(rng.integers(2, 7))
    n_segments = max(1, min(n_segments, n_frames // 64))
    cuts = np.sort(rng.choice(np.arange(64, n_frames - 63), n_segments - 1, replace=False))
    lengths = np.diff(np.concatenate(([0], cuts, [n_frames])))
    gaps = np.round(rng.uniform(*gap_s, n_segments - 1) / cadence_s).astype(int)
    total = int(lengths.sum() + gaps.sum())
    keep = np.zeros(total, dtype=bool)
    pos = 0
    for i, length in enumerate(lengths):
        keep[pos : pos + length] = True
        pos += length + (gaps[i] if i < gaps.size else 0)
    return np.flatnonzero(keep) * cadence_s, keep


def visit_times(
    rng: np.random.Generator, *, pause_s: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """Frame times (s) of a visit of 2-4 guide periods of 2k-15k frames (each in 2-6 segments,
    ``guide_period_times``) ``pause_s`` apart, and their mask on the continuous cadence grid."""
    parts, keeps, start = [], [], 0.0
    for _ in range(int(rng.integers(2, 5))):
        t, keep = guide_period_times(rng, int(rng.integers(2000, 15001)))
        parts.append(t + start)
        keeps.append(keep)
        start += keep.size * CADENCE_S + pause_s
        keeps.append(np.zeros(int(pause_s / CADENCE_S), dtype=bool))
    return np.concatenate(parts), np.concatenate(keeps)


def noisy_visit(
    kind: NoiseKind | str,
    rng: np.random.Generator,
    levels: dict[str, tuple[float, float, bool]],
    *,
    pause_s: float = 60.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(time_s, {name: values}) of one visit (``visit_times``) with the kind's noise in every
    series; ``levels``: name -> (level, per-frame noise, noise relative to the level). One
    ``detect_anomalies`` call, as the archive makes per guide star and visit."""
    t, keep = visit_times(rng, pause_s=pause_s)
    series = {}
    for name, (level, noise, relative) in levels.items():
        x = noise * make_noise(kind, keep.size, rng)[keep]
        series[name] = level * (1 + x) if relative else level + x
    return t, series


@dataclass(frozen=True)
class GappedSeries:
    """One guide period: frame times (s), noise values, and its segment count."""

    time_s: np.ndarray
    values: np.ndarray
    n_segments: int


def gapped_series(
    kind: NoiseKind | str,
    rng: np.random.Generator,
    *,
    n_frames: int | None = None,
    frames_range: tuple[int, int] = (2000, 15000),
    n_segments: int | None = None,
    segment_offsets: float = 0.0,
    cadence_s: float = CADENCE_S,
) -> GappedSeries:
    """A guide period of noise ``kind`` with gaps: ``n_frames`` (default uniform in
    ``frames_range``) frames in several segments; the red noise runs on through the gaps.
    ``segment_offsets``: standard deviation of a constant added per segment (file-to-file level
    changes, in white sigmas)."""
    if n_frames is None:
        n_frames = int(rng.integers(frames_range[0], frames_range[1] + 1))
    t, keep = guide_period_times(rng, n_frames, n_segments=n_segments, cadence_s=cadence_s)
    y = make_noise(kind, keep.size, rng, cadence_s=cadence_s)[keep]
    seg_id = np.concatenate(([0], np.cumsum(np.diff(t) > 10 * cadence_s)))
    if segment_offsets:
        y = y + rng.normal(0.0, segment_offsets, seg_id[-1] + 1)[seg_id]
    return GappedSeries(t, y, int(seg_id[-1] + 1))
