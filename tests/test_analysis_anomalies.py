"""detect_anomalies on seeded synthetic guide-star series (tests/helpers/analysis_synth.py).

Scoring targets (the issue's): flux drops of 1% lasting >= 5 s, centroid jumps >= 0.05 px and
PSF-width changes >= 5% recovered with recall >= 95% and <= 1 false alarm per 10 hours of data,
with small timing errors -- on series with realistic per-frame noise, red jitter, drifts,
periodic lines and cosmic-ray spikes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers.analysis_synth import CADENCE_S, inject, make_series, score

from fgsarchive.analysis.anomalies import (
    ANOMALY_SCHEMA,
    cross_match_events,
    detect_anomalies,
    local_threshold,
    parameter_family,
)

NOISE = {
    # worst case of the realistic range: 1e6 counts, 0.01 px, 1% widths per frame
    "noisy": {"counts": 1e6, "centroid_noise_px": 0.01, "width_noise": 0.01},
    # best case: 5e6 counts, 0.003 px, 0.3%
    "quiet": {"counts": 5e6, "centroid_noise_px": 0.003, "width_noise": 0.003},
}


@pytest.mark.parametrize(("noise", "seed"), [("noisy", 1), ("quiet", 2), ("noisy", 3)])
def test_scoring_targets(noise, seed):
    s = make_series(10, 100 + seed, **NOISE[noise])
    s = inject(s, seed, n_each=20, depth=0.01, durations_s=(5.0, 120.0))
    found = detect_anomalies(s.time_mjd, s.series)
    sc = score(found, s, tol_s=3.0)
    for kind in ("flux_drop", "centroid_jump", "psf_change"):
        assert sc["recall"][kind] >= 0.95, (kind, sc["recall"])
    assert sc["false_alarms_per_10h"] <= 1.0, sc["unmatched"]
    assert sc["timing_median_s"] <= 0.2
    assert sc["timing_max_s"] <= 2.0


@pytest.mark.parametrize("seed", [11, 12])
def test_quiet_series_has_at_most_one_false_alarm_per_10_hours(seed):
    s = make_series(10, seed)
    found = detect_anomalies(s.time_mjd, s.series)
    assert found.height <= 1, found


def test_amplitudes_and_timing_of_single_events():
    s = make_series(1.5, 21)
    t = s.time_s
    i = np.searchsorted
    a, b = i(t, 1000.0), i(t, 1005.0)  # 5-s, 1% drop
    s.series["flux"][a:b] *= 0.99
    j = i(t, 2500.0)
    s.series["x_mean"][j:] += 0.05  # centroid jump
    k = i(t, 4000.0)
    s.series["x_stddev"][k:] *= 1.05  # mirror-tilt-like width step
    found = detect_anomalies(s.time_mjd, s.series)
    assert found.height == 3, found
    drop, jump, psf = found.sort("start_mjd").iter_rows(named=True)
    assert drop["kind"] == "flux_drop"
    assert drop["amplitude"] == pytest.approx(-0.01, abs=0.001)
    assert drop["duration_s"] == pytest.approx(5.0, abs=0.3)
    assert (drop["start_index"], drop["end_index"]) == pytest.approx((a, b - 1), abs=3)
    assert jump["kind"] == "centroid_jump" and jump["parameters"] == ["x_mean"]
    assert jump["amplitude"] == pytest.approx(0.05, abs=0.005)
    assert jump["duration_s"] == 0.0
    assert (jump["start_mjd"] - s.time_mjd[0]) * 86400 == pytest.approx(2500.0, abs=0.3)
    assert psf["kind"] == "psf_change"
    assert psf["amplitude"] == pytest.approx(0.05, abs=0.005)
    assert (psf["start_mjd"] - s.time_mjd[0]) * 86400 == pytest.approx(4000.0, abs=0.3)


def test_kinds_and_merging_across_parameters():
    s = make_series(1, 7)
    sec = s.time_s

    def sl(a, b):
        return slice(int(np.searchsorted(sec, a)), int(np.searchsorted(sec, b)))

    s.series["x_mean"][sl(600, 620)] += 0.05  # 20-s centroid excursion
    th = s.series["theta"]
    th[sl(1200, 4000)] = np.mod(th[sl(1200, 4000)] + 0.3, np.pi)  # theta change
    s.series["background"][sl(1800, 4000)] += 40  # background jump (5 sigma per frame)
    s.series["flux"][sl(2400, 2402)] *= 1.02  # 2-s brightening
    s.series["flux"][sl(3000, 3006)] *= 0.99  # 6-s drop with a centroid excursion
    s.series["y_mean"][sl(3000, 3006)] += 0.03
    found = detect_anomalies(s.time_mjd, s.series).sort("start_mjd")
    assert found.schema == pl.Schema(ANOMALY_SCHEMA)
    assert found["kind"].to_list() == [
        "centroid_excursion",
        "theta_change",
        "background_jump",
        "flux_brightening",
        "flux_drop",
    ]
    start_s = (found["start_mjd"].to_numpy() - s.time_mjd[0]) * 86400
    np.testing.assert_allclose(start_s, [600, 1200, 1800, 2400, 3000], atol=0.5)
    merged = found.row(4, named=True)
    assert merged["parameters"] == ["flux", "y_mean"]
    assert merged["kinds"] == ["flux_drop", "centroid_excursion"]
    assert merged["n_detections"] == 2
    assert [d["parameter"] for d in merged["detections"]] == ["flux", "y_mean"]
    assert found["amplitude"].to_list()[:4] == pytest.approx([0.05, 0.3, 40, 0.02], rel=0.1)


def test_gaps_masks_and_offsets_between_segments():
    s = make_series(1, 8)
    t_mjd = s.time_mjd.copy()
    n = t_mjd.size
    t_mjd[n // 2 :] += 300 / 86400  # a 5-minute gap
    for v in s.series.values():
        v[n // 2 :] += 0.05 * np.abs(np.median(v))  # the level changes across the gap
        v[::97] = np.nan  # masked frames
    s.series["flux"][n // 2 + 1000 : n // 2 + 1100] *= 0.99  # a 6.4-s drop after the gap
    found = detect_anomalies(t_mjd, s.series)
    assert found.height == 1, found
    row = found.row(0, named=True)
    assert row["kind"] == "flux_drop"
    assert row["start_index"] == pytest.approx(n // 2 + 1000, abs=3)
    assert row["end_index"] == pytest.approx(n // 2 + 1099, abs=3)
    assert row["start_mjd"] == pytest.approx(t_mjd[n // 2 + 1000] - CADENCE_S / 2 / 86400, abs=3e-6)


def test_theta_wrapping_is_not_a_change():
    rng = np.random.default_rng(4)
    n = 60_000
    t = 60000 + np.arange(n) * CADENCE_S / 86400
    theta = np.mod(rng.normal(0.0, 0.05, n), np.pi)  # noise around 0 = pi: wraps constantly
    assert detect_anomalies(t, {"theta": theta}).height == 0


def test_detect_parameter_families():
    assert parameter_family("flux_opt") == "flux"
    assert parameter_family("y_mean") == "centroid"
    assert parameter_family("x_stddev") == "width"
    assert parameter_family("offset") == "background"
    assert parameter_family("amplitude") == "amplitude"
    assert local_threshold(5.0, 8, 3600 / 0.064) == pytest.approx(6.5, abs=0.05)
    assert local_threshold(5.0, 10**9, 3600 / 0.064) == pytest.approx(5.0)


def test_unknown_parameter_gets_generic_kinds():
    s = make_series(0.5, 9)
    amp = s.series["flux"] / 3.0
    amp[10000:] *= 1.03
    found = detect_anomalies(s.time_mjd, {"amplitude": amp})
    assert found["kind"].to_list() == ["amplitude_step"]


def test_validation_and_empty_results():
    t = 60000 + np.arange(100) * CADENCE_S / 86400
    with pytest.raises(ValueError, match="series 'flux' has shape"):
        detect_anomalies(t, {"flux": np.ones(99)})
    with pytest.raises(ValueError, match="series is empty"):
        detect_anomalies(t, {})
    with pytest.raises(ValueError, match="sorted"):
        detect_anomalies(t[::-1], {"flux": np.ones(100)})
    out = detect_anomalies(t[:10], {"flux": np.ones(10)})
    assert out.height == 0 and out.schema == pl.Schema(ANOMALY_SCHEMA)
    flat = detect_anomalies(t, {"flux": np.ones(100)})  # zero noise: nothing to report
    assert flat.height == 0


def test_cross_match_events():
    anomalies = pl.DataFrame(
        {
            "event_id": [0, 1, 2],
            "kind": ["flux_drop", "centroid_jump", "psf_change"],
            "start_mjd": [60000.0, 60000.1, 60000.2],
            "end_mjd": [60000.0 + 10 / 86400, 60000.1, 60000.2],
        }
    )
    events = pl.DataFrame(
        {
            "kind": ["hga_move", "fw_move", "hga_move"],
            "start_mjd": [60000.0 - 60 / 86400, 60000.1 + 20 / 86400, 60000.5],
            "end_mjd": [60000.0 - 20 / 86400, 60000.1 + 25 / 86400, 60000.6],
            "detail": ["MOVING", "CLEAR->F277W", "MOVING"],
        }
    )
    out = cross_match_events(anomalies, events, window_s=30)
    assert out.columns == [*anomalies.columns, "coincident_events", "coincident_kinds"]
    assert out["coincident_kinds"].to_list() == [["hga_move"], ["fw_move"], []]
    ev = out["coincident_events"][1].to_list()[0]
    assert ev["detail"] == "CLEAR->F277W" and ev["offset_s"] == pytest.approx(20, abs=1e-3)
    narrow = cross_match_events(anomalies, events, window_s=10)
    assert narrow["coincident_kinds"].to_list() == [[], [], []]
    with pytest.raises(ValueError, match="events lacks column 'kind'"):
        cross_match_events(anomalies, events.drop("kind"))


def test_flux_decorrelated_from_pointing_keeps_drop():
    """flux_opt following a slow pointing drift (fixed aperture) is red noise that hid 1 % drops;
    the per-file quadratic fit in the centroid removes it and keeps the drop (not explained by
    the pointing at its moment, even when the pointing wanders then)."""
    from fgsarchive.analysis.detrend import decorrelate_pointing

    rng = np.random.default_rng(3)
    n = 12_000
    t = np.arange(n) * CADENCE_S
    # slow drift of +-0.06 px over minutes, plus per-frame centroid noise
    x = 0.06 * np.sin(2 * np.pi * t / 170.0) + 0.01 * rng.standard_normal(n)
    y = 0.05 * np.cos(2 * np.pi * t / 230.0) + 0.01 * rng.standard_normal(n)
    flux = 1e5 * (1 - 0.08 * x - 0.06 * y - 1.5 * x**2 - 1.5 * y**2)
    drop = (t >= 300) & (t < 340)
    flux[drop] *= 0.99
    flux += 1e5 * 0.005 * rng.standard_normal(n)
    rows = pl.DataFrame({"file_name": ["a"] * n, "x_mean": 3.5 + x, "y_mean": 3.5 + y})
    out = decorrelate_pointing(rows, flux)
    quiet = ~((t >= 280) & (t < 360))
    m = n // 250 * 250
    clean = quiet[:m].reshape(-1, 250).all(axis=1)

    def bins(v):  # 16-s means away from the drop
        return v[:m].reshape(-1, 250)[clean].mean(axis=1)

    assert np.std(bins(out)) < 0.5 * np.std(bins(flux))
    depth = 1 - out[drop].mean() / out[quiet].mean()
    assert depth == pytest.approx(0.01, abs=0.001)
    an = detect_anomalies(t / 86400.0, {"flux_opt": out}, cadence_s=CADENCE_S)
    drops = an.filter(pl.col("kind") == "flux_drop")
    assert drops.height == 1
    assert drops["start_mjd"][0] * 86400.0 == pytest.approx(300.0, abs=1.0)
    # a file too short to fit is left as it is
    short = rows.head(100)
    np.testing.assert_array_equal(decorrelate_pointing(short, flux[:100]), flux[:100])


def test_flux_steps_down_then_up_pair_into_a_drop():
    from fgsarchive.analysis.anomalies import _pair_flux_steps

    down = ("step", 100, 100, -10.0, 1000.0, 8.0)
    up = ("step", 600, 600, 9.0, 990.0, 6.5)
    (drop,) = _pair_flux_steps([down, up], max_len=4000)
    assert drop == ("transient", 100, 600, -9.5, 1000.0, 6.5)
    # too far apart, wrong order, or sizes more than 2x apart: left as steps
    assert _pair_flux_steps([down, up], max_len=400) == [down, up]
    assert len(_pair_flux_steps([up, ("step", 700, 700, -10.0, 1000.0, 8.0)], 4000)) == 2
    assert len(_pair_flux_steps([down, ("step", 600, 600, 30.0, 990.0, 9.0)], 4000)) == 2


def test_faint_star_one_percent_five_second_drops_against_long_flanks():
    """A faint star's flux (1 % white noise per frame): 1 %, 5-s drops are 8 sigma against a
    perfectly known baseline, 6.2 sigma against flanks as long as the drop (below the ~6.2-sigma
    local threshold half the time) and 7.9 against flanks 4x longer, which the detector picks
    because they measure the lowest noise at that width. 36 drops in 6 h: >= 33 found (the
    expectation at 7.9 sigma is ~95 %), <= 1 false alarm per 2 h."""
    hits, false_alarms = 0, []
    for seed in (21, 22, 23):
        rng = np.random.default_rng(seed)
        n = int(2 * 3600 / CADENCE_S)
        t_mjd = 60000.0 + np.arange(n) * CADENCE_S / 86400
        flux = 1.0 + rng.normal(0.0, 0.01, n)
        starts = (np.linspace(300, 6900, 12) / CADENCE_S).astype(int)
        for s in starts:
            flux[s : s + int(round(5.0 / CADENCE_S))] -= 0.01
        found = detect_anomalies(t_mjd, {"flux": flux})
        start_s = (found["start_mjd"].to_numpy() - t_mjd[0]) * 86400
        matched = [np.abs(start_s - s * CADENCE_S) < 3.0 for s in starts]
        hits += sum(bool(m.any()) for m in matched)
        false_alarms.append(found.height - int(np.any(matched, axis=0).sum()))
        assert (found["kind"] == "flux_drop").all()
    assert hits >= 33, hits
    assert max(false_alarms) <= 1, false_alarms


def test_poorly_measured_wide_scale_follows_its_own_samples():
    """A wide scale with few degrees of freedom: white noise there is no longer held to the
    floor extrapolated flat from the narrow scales (3-4x its true scale at 16-s boxes), and red
    noise measured there above that floor is kept (it gave false centroid jumps)."""
    from fgsarchive.analysis.anomalies import pooled_scale

    fph = 3600 / CADENCE_S
    narrow = {("step", 8): (0.5, 1000.0), ("step", 31): (np.sqrt(2 / 31), 300.0)}
    key, white = ("step", 125), np.sqrt(2 / 125)
    floor = pooled_scale(narrow, key, 5.0, fph, white)  # nothing measured at 125
    assert floor == pytest.approx(np.sqrt(2 / 31), rel=0.1)  # flat: 2x the white scale
    quiet = pooled_scale({**narrow, key: (white, 45.0)}, key, 5.0, fph, white)
    assert white <= quiet < 0.75 * floor
    red = pooled_scale({**narrow, key: (0.8, 45.0)}, key, 5.0, fph, white)
    assert red >= 0.8
    # below 2 degrees of freedom the scale's own value says nothing: the floor
    assert pooled_scale({**narrow, key: (white, 3.0)}, key, 5.0, fph, white) == floor


def _reference_scale_noise_samples(v, box_n, step_n):
    """scale_noise_samples written out plainly (np.median everywhere, no shared preparation):
    the reference of the fast path."""
    from fgsarchive.analysis import anomalies as an
    from fgsarchive.analysis.detrend import MAX_STAT_SAMPLES, despike, diff_noise

    n = v.size
    sigma = diff_noise(v)
    stride = max(1, n // MAX_STAT_SAMPLES)
    sigma_f = max(sigma, 1e-12 * max(1.0, float(np.median(np.abs(v[::stride])))))
    vd = despike(v, threshold=an.SPIKE_SIGMA * sigma_f)
    cs = np.concatenate(([0.0], np.cumsum(vd - float(np.median(vd[::stride])))))
    out = {}
    for w in an._box_widths(box_n, n):
        for factor in an.FLANK_FACTORS:
            flank = an._flank_length(w, n, factor)
            if n - w - 2 * flank < (an.MIN_NOISE_BOXES * w if factor > 1 else 0):
                continue
            stride = max(1, w // 4, n // MAX_STAT_SAMPLES)
            i = np.arange(flank, n - w - flank + 1, stride)
            box = (cs[i + w] - cs[i]) / w
            left = box - (cs[i] - cs[i - flank]) / flank
            right = box - (cs[i + w + flank] - cs[i + w]) / flank
            nind = max(0.0, (n - w - 2 * flank + 1) / (w + 2 * flank))
            out[("box", w, factor)] = (
                (left - np.median(left)) / sigma_f,
                (right - np.median(right)) / sigma_f,
                nind,
            )
    for w in an._step_widths(step_n, n):
        j = np.arange(w, n - w + 1, max(1, w // 4, n // MAX_STAT_SAMPLES))
        d = (cs[j + w] - 2 * cs[j] + cs[j - w]) / w
        nind = max(0.0, (n - 2 * w + 1) / (2 * w))
        out[("step", w)] = ((d - np.median(d)) / sigma_f, nind)
    return out


@pytest.mark.parametrize("noise", ["white", "ar1", "walk"])
def test_shared_segment_preparation_equals_plain_reference(noise):
    """The noise samples from the shared preparation (_segment_scales, fast medians) equal a plain
    np.median implementation to the bit, and detect_anomalies finds the same with 1 or 3 threads."""
    from fgsarchive.analysis.anomalies import scale_noise_samples

    rng = np.random.default_rng({"white": 1, "ar1": 2, "walk": 3}[noise])
    n = 9001
    e = rng.normal(size=n)
    if noise == "ar1":
        x = np.empty(n)
        x[0] = e[0]
        for i in range(1, n):
            x[i] = 0.95 * x[i - 1] + e[i]
    elif noise == "walk":
        x = np.cumsum(e) * 0.05 + e
    else:
        x = e
    x = 1e4 + 30.0 * x
    x[4000:4100] -= 400.0  # a drop, so that something is detected
    box_n, step_n = [16, 31, 62, 125, 500, 2000], [8, 31, 125, 500]
    fast = scale_noise_samples(x, box_n=box_n, step_n=step_n)
    ref = _reference_scale_noise_samples(x, box_n, step_n)
    assert fast.keys() == ref.keys() and len(ref) > 5
    for key, expected in ref.items():
        got = fast[key][0]
        for a, b in zip(got[: len(expected)], expected, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=str(key))
    t = 60000.0 + np.arange(n) * CADENCE_S / 86400.0
    t[5000:] += 30.0 / 86400.0  # a gap: two segments pooled
    series = {"flux": x, "x_mean": 3.5 + 0.01 * rng.normal(size=n)}
    one = detect_anomalies(t, series, workers=1)
    assert one.height >= 1
    assert one.equals(detect_anomalies(t, series, workers=3))


def test_compiled_despike_and_diff_noise_equal_detrend_helpers():
    """The anomaly search's own _despike (median of five by min/max) and _diff_noise (in-place
    partitions) give detrend.despike / diff_noise's numbers exactly: short and long series,
    ties, spikes."""
    from fgsarchive.analysis.anomalies import _despike, _diff_noise
    from fgsarchive.analysis.detrend import despike, diff_noise

    rng = np.random.default_rng(11)
    for trial in range(400):
        n = int(rng.integers(1, 12)) if trial % 2 else int(rng.integers(12, 5000))
        x = rng.normal(size=n)
        if trial % 3 == 0:
            x = np.round(x)
        x[rng.random(n) < 0.05] += 50.0
        thr = rng.uniform(0.1, 5.0)
        out = np.empty_like(x)
        _despike(x, thr, out)
        np.testing.assert_array_equal(out, despike(x, threshold=thr), err_msg=str(trial))
        a, b = _diff_noise(x), diff_noise(x)
        assert a == b or (np.isnan(a) and np.isnan(b)), trial


def _box_peaks_reference(cs, w, flank, medl, sl, medr, sr, thr):
    """The box filter of ``_box_peaks`` start by start in plain Python (one branchy loop)."""
    n = cs.size - 1
    ref = 1.0 / w + 1.0 / flank
    pos, val, run = [], [], None  # run: (|stat|, start, stat) of the current run
    for i in range(w, n - 2 * w + 1):
        ll, lr = min(flank, i), min(flank, n - i - w)
        box = (cs[i + w] - cs[i]) / w
        nl = sl * np.sqrt((1.0 / w + 1.0 / ll) / ref)
        nr = sr * np.sqrt((1.0 / w + 1.0 / lr) / ref)
        zl = (box - (cs[i] - cs[i - ll]) / ll - medl) / nl
        zr = (box - (cs[i + w + lr] - cs[i + w]) / lr - medr) / nr
        st = (1.0 if zl > 0 else -1.0) * min(abs(zl), abs(zr)) if zl * zr > 0 else 0.0
        if abs(st) >= thr:
            if run is None or abs(st) > run[0]:
                run = (abs(st), i, st)
        elif run is not None:
            pos.append(run[1])
            val.append(run[2])
            run = None
    if run is not None:
        pos.append(run[1])
        val.append(run[2])
    return np.array(pos, dtype=np.int64), np.array(val)


def test_compiled_box_peaks_equal_plain_loop():
    """_box_peaks (blocks of starts, the full-flank blocks without branches) finds the same
    starts and statistics, bit for bit, as the plain loop: flanks cut at either end or both,
    runs across block boundaries, series shorter than a block."""
    from fgsarchive.analysis.anomalies import BOX_CHUNK, _box_peaks

    rng = np.random.default_rng(5)
    n_runs = 0
    for trial in range(200):
        w = int(rng.integers(2, 200))
        flank = int(rng.choice([w, 2 * w, 4 * w, 50 * w]))
        # every other series ends its full-flank starts (up to n - w - flank) within a start
        # of a block boundary (blocks from w on)
        n = int(rng.integers(3 * w, 3 * w + 4 * BOX_CHUNK))
        if trial % 2:
            n = w + flank + int(rng.integers(1, 4)) * BOX_CHUNK + w + int(rng.integers(-2, 3))
        x = rng.normal(size=n)
        if trial % 2:
            x += np.where(np.arange(n) % 700 < 300, 0.0, 1.5)  # long runs above the threshold
        cs = np.concatenate(([0.0], np.cumsum(x)))
        args = (cs, w, flank, 0.01, rng.uniform(0.2, 1.0), -0.02, rng.uniform(0.2, 1.0), 1.0)
        got, want = _box_peaks(*args), _box_peaks_reference(*args)
        np.testing.assert_array_equal(got[0], want[0], err_msg=str(trial))
        np.testing.assert_array_equal(got[1], want[1], err_msg=str(trial))
        n_runs += want[0].size
    assert n_runs > 100


def test_compiled_filter_samples_and_medians_equal_numpy():
    """The compiled box/step differences equal numpy's arithmetic on strided views of the
    cumulative sum, and _median_and_std (compiled quickselect up to SMALL_SELECT_SIZE values)
    equals np.median and 1.4826 MAD of the finite values, bit for bit: ties, NaNs, even and odd
    counts, both sides of the size limit."""
    from fgsarchive.analysis.anomalies import (
        SMALL_SELECT_SIZE,
        _box_differences,
        _median_and_std,
        _step_differences,
    )
    from fgsarchive.analysis.detrend import MAD_TO_SIGMA

    rng = np.random.default_rng(8)
    for trial in range(300):
        n = int(rng.integers(20, 3000))
        cs = np.concatenate(([0.0], np.cumsum(rng.normal(size=n))))
        w = int(rng.integers(1, n // 4))
        flank = int(rng.choice([w, 2 * w]))
        stride = int(rng.integers(1, 6))
        a, b = flank, max(flank, n - w - flank + 1)
        box = (cs[a + w : b + w : stride] - cs[a:b:stride]) / w
        left, right = _box_differences(cs, w, flank, a, b, stride)
        np.testing.assert_array_equal(
            left, box - (cs[a:b:stride] - cs[a - flank : b - flank : stride]) / flank
        )
        np.testing.assert_array_equal(
            right,
            box - (cs[a + w + flank : b + w + flank : stride] - cs[a + w : b + w : stride]) / flank,
        )
        a, b = w, max(w, n - w + 1)
        d = (cs[a + w : b + w : stride] - 2 * cs[a:b:stride] + cs[a - w : b - w : stride]) / w
        np.testing.assert_array_equal(_step_differences(cs, w, a, b, stride), d)

        m = int(rng.integers(1, 2 * SMALL_SELECT_SIZE))
        x = rng.normal(size=m) if trial % 3 else np.round(rng.normal(size=m) * 2)  # ties
        if trial % 5 == 0:
            x[rng.random(m) < 0.2] = np.nan
        finite = x[np.isfinite(x)]
        got = _median_and_std(x.copy())
        if finite.size == 0:
            assert np.isnan(got).all()
            continue
        med = np.median(finite)
        assert got == (med, MAD_TO_SIGMA * np.median(np.abs(finite - med))), (trial, m)


def test_compiled_strongest_left_out_equals_numpy_rule():
    """_without_strongest (one compiled pass over the concatenated samples) leaves out the same
    samples as the numpy rule item by item: ties of the peak between and within items, one and
    two values per sample, reaches wider than an item."""
    from fgsarchive.analysis.anomalies import _without_strongest, _without_strongest_plain

    rng = np.random.default_rng(9)
    for trial in range(300):
        n_values = 1 + trial % 2
        items = []
        for _ in range(int(rng.integers(1, 6))):
            m = int(rng.integers(1, 60))
            arrays = [rng.normal(size=m) for _ in range(n_values)]
            if trial % 3 == 0:
                arrays = [np.round(a) for a in arrays]  # ties
            items.append((*arrays, float(rng.uniform(0, 5)), int(rng.integers(0, 20))))
        got, got_n = _without_strongest(items, n_values)
        want, want_n = _without_strongest_plain(items, n_values)
        assert got_n == want_n
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=str(trial))


def test_centred_std_equals_median_and_std():
    """_centred_std (one selection when one pass tells the median of y) equals
    median_and_std(y)[1] bit for bit: samples less their segments' medians (odd and even
    counts, one to four segments, ties), medians not zero, NaNs, both sides of the size limit."""
    from fgsarchive.analysis.anomalies import SMALL_SELECT_SIZE, _centred_std
    from fgsarchive.analysis.detrend import median_and_std

    rng = np.random.default_rng(10)
    for trial in range(400):
        parts = []
        for _ in range(int(rng.integers(1, 5))):
            x = rng.normal(size=int(rng.integers(1, 3 * SMALL_SELECT_SIZE // 2)))
            if trial % 3 == 0:
                x = np.round(x * 2)  # ties, zeros
            parts.append((x - np.median(x)) / 0.7)
        y = np.concatenate(parts)
        if trial % 7 == 0:
            y = y + 0.1  # median not zero
        if trial % 5 == 1:
            y = np.where(y == 0, -0.0, y)
        if trial % 11 == 0:
            y[0] = np.nan
        want = median_and_std(y.copy())[1]
        got = _centred_std(y)
        assert got == want or (np.isnan(got) and np.isnan(want)), trial


def test_pooled_scale_memo_gives_the_same_detections():
    """detect_parameter with a scale_memo shared by the segments of a parameter finds what it
    finds without one, and the memo holds each pooled scale per (scale, white noise) asked."""
    from fgsarchive.analysis.anomalies import (
        _segment_scales,
        detect_parameter,
        pool_scale_noise,
        pooled_scale,
        scale_noise_samples,
    )

    rng = np.random.default_rng(12)
    box_n, step_n = [16, 31, 62, 125, 500], [8, 31, 125]
    segments = [
        1e4 + 30.0 * np.cumsum(rng.normal(size=m)) * 0.05 + 30.0 * rng.normal(size=m)
        for m in (3001, 4000, 2500)
    ]
    segments[1][1000:1100] -= 400.0
    prepared = [_segment_scales(v, box_n, step_n) for v in segments]
    pooled = pool_scale_noise(
        [
            scale_noise_samples(v, box_n=box_n, step_n=step_n, prepared=p)
            for v, p in zip(segments, prepared, strict=True)
        ]
    )
    memo: dict = {}
    found = 0
    for v, p in zip(segments, prepared, strict=True):
        kw = {"box_n": box_n, "step_n": step_n, "pooled": pooled, "prepared": p}
        plain = detect_parameter(v, **kw)
        memoised = detect_parameter(v, scale_memo=memo, **kw)
        for a, b in zip(plain.__dict__.values(), memoised.__dict__.values(), strict=True):
            np.testing.assert_array_equal(a, b)
        found += plain.t_start.size + plain.s_index.size
    assert found >= 1
    assert len(memo) >= len(box_n)
    for (key, white, min_sigma, per_hour), scale in memo.items():
        assert scale == pooled_scale(pooled, key, min_sigma, per_hour, white)


def test_compiled_offset_cumsum_equals_numpy():
    """_offset_cumsum equals numpy's cumulative sum of the values less the offset, after a 0,
    bit for bit (long series, where the rounding of a different order of sums would show)."""
    from fgsarchive.analysis.anomalies import _offset_cumsum

    rng = np.random.default_rng(13)
    for n in (0, 1, 7, 1000, 200_000):
        x = 1e4 + 30.0 * rng.normal(size=n)
        off = float(np.median(x)) if n else 0.0
        np.testing.assert_array_equal(
            _offset_cumsum(x, off), np.concatenate(([0.0], np.cumsum(x - off)))
        )
