-- A change of guide star (gs_id) between consecutive fine-guide files of a program (no network needed).
INSERT INTO events (kind, start_mjd, end_mjd, program, file_name, detail)
WITH fg AS (
    SELECT
        program, file_name, gs_id, data_start_mjd,
        lag(file_name) OVER w AS prev_file,
        lag(gs_id) OVER w AS prev_gs_id,
        lag(data_end_mjd) OVER w AS prev_end
    FROM files
    WHERE status = 'ingested' AND product = 'fg' AND data_start_mjd IS NOT NULL
    WINDOW w AS (PARTITION BY program ORDER BY data_start_mjd, file_name)
)
SELECT
    'guide_star_change',
    prev_end,
    data_start_mjd,
    program,
    file_name,
    json_object(
        'previous_file', prev_file,
        'from_gs_id', prev_gs_id,
        'to_gs_id', gs_id,
        'gap_s', (data_start_mjd - prev_end) * 86400.0
    )::VARCHAR
FROM fg
WHERE prev_file IS NOT NULL AND prev_gs_id IS DISTINCT FROM gs_id
