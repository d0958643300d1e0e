-- NIRISS filter-wheel moves from INIS_FWMTRCURR: runs of records with current > $threshold_a [A].
-- A run breaks at a gap longer than $max_gap_days; its ends are placed half way to the neighbouring
-- records below the threshold (the record itself when there is none).
INSERT INTO events (kind, start_mjd, end_mjd, program, file_name, detail)
WITH s AS (
    SELECT time_mjd, value, value > $threshold_a AS high
    FROM telemetry
    WHERE mnemonic = 'INIS_FWMTRCURR' AND value IS NOT NULL
),
c AS (
    SELECT *,
        lag(time_mjd) OVER (ORDER BY time_mjd) AS prev_t,
        (high IS DISTINCT FROM lag(high) OVER (ORDER BY time_mjd)
            OR time_mjd - lag(time_mjd) OVER (ORDER BY time_mjd) > $max_gap_days)::INTEGER AS change
    FROM s
),
g AS (
    SELECT *, sum(change) OVER (ORDER BY time_mjd ROWS UNBOUNDED PRECEDING) AS island FROM c
),
isl AS (
    SELECT island, bool_or(high) AS high, min(time_mjd) AS t0, max(time_mjd) AS t1,
        max(value) AS peak, count(*) AS n
    FROM g GROUP BY island
),
spans AS (
    SELECT *,
        lag(t1) OVER (ORDER BY t0) AS prev_t1,
        lead(t0) OVER (ORDER BY t0) AS next_t0
    FROM isl
),
ev AS (
    SELECT
        CASE WHEN prev_t1 IS NOT NULL AND t0 - prev_t1 <= $max_gap_days
            THEN (prev_t1 + t0) / 2 ELSE t0 END AS start_mjd,
        CASE WHEN next_t0 IS NOT NULL AND next_t0 - t1 <= $max_gap_days
            THEN (t1 + next_t0) / 2 ELSE t1 END AS end_mjd,
        peak, n
    FROM spans
    WHERE high
)
SELECT
    'filter_wheel_move',
    ev.start_mjd,
    ev.end_mjd,
    arg_min(f.program, (f.product <> 'fg')::INTEGER * 1e6 + f.data_start_mjd),
    arg_min(f.file_name, (f.product <> 'fg')::INTEGER * 1e6 + f.data_start_mjd),
    json_object(
        'source', 'INIS_FWMTRCURR',
        'threshold_a', $threshold_a,
        'peak_current_a', any_value(ev.peak),
        'n_records', any_value(ev.n),
        'duration_s', (ev.end_mjd - ev.start_mjd) * 86400.0
    )::VARCHAR
FROM ev
LEFT JOIN files AS f
    ON f.status = 'ingested'
    AND ev.start_mjd <= f.data_end_mjd + $pad_days
    AND ev.end_mjd >= f.data_start_mjd - $pad_days
GROUP BY ev.start_mjd, ev.end_mjd
