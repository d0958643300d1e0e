-- HGA motion seen in the files' own POINTING tables: runs of rows whose HGA_motion is '0' or
-- 'MOVING' (0 = moving, 1 = finished, 2 = offline), per file, from the first to the last such row.
INSERT INTO events (kind, start_mjd, end_mjd, program, file_name, detail)
WITH p AS (
    SELECT program, file_name, row, time_mjd,
        upper(trim(hga_motion)) IN ('0', 'MOVING') AS moving
    FROM pointing
    WHERE time_mjd IS NOT NULL
),
c AS (
    SELECT *,
        (moving IS DISTINCT FROM lag(moving) OVER (PARTITION BY file_name ORDER BY time_mjd, row))::INTEGER
            AS change
    FROM p
),
g AS (
    SELECT *,
        sum(change) OVER (PARTITION BY file_name ORDER BY time_mjd, row ROWS UNBOUNDED PRECEDING) AS island
    FROM c
)
SELECT
    'hga_motion_pointing',
    min(time_mjd),
    max(time_mjd),
    any_value(program),
    file_name,
    json_object('source', 'POINTING.HGA_motion', 'n_rows', count(*))::VARCHAR
FROM g
WHERE moving
GROUP BY file_name, island
