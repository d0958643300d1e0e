-- HGA moves from SA_ZHGAUPST (change-only text): a span starts at the first MOVING record and ends at
-- the next record that is not MOVING (FINISHED); NULL end while still MOVING at the end of the data.
-- Each span is attributed to the ingested file it overlaps (fine guide first), within $pad_days.
INSERT INTO events (kind, start_mjd, end_mjd, program, file_name, detail)
WITH s AS (
    SELECT time_mjd, upper(trim(value_text)) = 'MOVING' AS moving
    FROM telemetry
    WHERE mnemonic = 'SA_ZHGAUPST' AND value_text IS NOT NULL
),
c AS (
    SELECT *, (moving IS DISTINCT FROM lag(moving) OVER (ORDER BY time_mjd))::INTEGER AS change
    FROM s
),
g AS (
    SELECT *, sum(change) OVER (ORDER BY time_mjd ROWS UNBOUNDED PRECEDING) AS island FROM c
),
isl AS (
    SELECT island, bool_or(moving) AS moving, min(time_mjd) AS t0, max(time_mjd) AS t1, count(*) AS n
    FROM g GROUP BY island
),
spans AS (
    SELECT moving, t0, t1, n, lead(t0) OVER (ORDER BY t0) AS next_t0 FROM isl
),
ev AS (
    SELECT t0 AS start_mjd, next_t0 AS end_mjd, n FROM spans WHERE moving
)
SELECT
    'hga_move',
    ev.start_mjd,
    ev.end_mjd,
    arg_min(f.program, (f.product <> 'fg')::INTEGER * 1e6 + f.data_start_mjd),
    arg_min(f.file_name, (f.product <> 'fg')::INTEGER * 1e6 + f.data_start_mjd),
    json_object(
        'source', 'SA_ZHGAUPST',
        'duration_s', (ev.end_mjd - ev.start_mjd) * 86400.0,
        'n_moving_records', any_value(ev.n)
    )::VARCHAR
FROM ev
LEFT JOIN files AS f
    ON f.status = 'ingested'
    AND ev.start_mjd <= f.data_end_mjd + $pad_days
    AND coalesce(ev.end_mjd, ev.start_mjd) >= f.data_start_mjd - $pad_days
GROUP BY ev.start_mjd, ev.end_mjd
