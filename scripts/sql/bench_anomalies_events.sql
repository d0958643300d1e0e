-- Benchmark 3 (scripts/bench_scale.py): every anomaly with the observatory events (HGA moves,
-- filter-wheel moves, guide-star changes, ...) that overlap it within $pad_s seconds.
SELECT a.*,
       e.kind AS event_kind,
       e.start_mjd AS event_start_mjd,
       e.end_mjd AS event_end_mjd
FROM anomalies AS a
LEFT JOIN events AS e
    ON e.start_mjd <= a.end_mjd + $pad_s / 86400.0
   AND coalesce(e.end_mjd, e.start_mjd) >= a.start_mjd - $pad_s / 86400.0
ORDER BY a.start_mjd, e.start_mjd
