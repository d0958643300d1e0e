-- Boundaries between consecutive fine-guide files (segments included) of a program, in time order:
-- from the end of one file to the start of the next (no network needed).
INSERT INTO events (kind, start_mjd, end_mjd, program, file_name, detail)
WITH fg AS (
    SELECT
        program, file_name, guide_period, gs_id, data_start_mjd, data_end_mjd,
        lag(file_name) OVER w AS prev_file,
        lag(guide_period) OVER w AS prev_period,
        lag(gs_id) OVER w AS prev_gs_id,
        lag(data_end_mjd) OVER w AS prev_end
    FROM files
    WHERE status = 'ingested' AND product = 'fg' AND data_start_mjd IS NOT NULL
    WINDOW w AS (PARTITION BY program ORDER BY data_start_mjd, file_name)
)
SELECT
    'file_boundary',
    prev_end,
    data_start_mjd,
    program,
    file_name,
    json_object(
        'previous_file', prev_file,
        'gap_s', (data_start_mjd - prev_end) * 86400.0,
        'same_guide_period', prev_period IS NOT DISTINCT FROM guide_period,
        'gs_id', gs_id
    )::VARCHAR
FROM fg
WHERE prev_file IS NOT NULL
