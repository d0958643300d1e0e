-- Benchmark 5, fallback when the events table holds no HGA moves (scripts/bench_scale.py): moves are
-- the runs of consecutive POINTING rows whose HGA_motion is '0'/'MOVING' (0 = moving, 1 = finished),
-- per file; then, as in bench_hga_frames.sql, the frames within +-$pad_s seconds of each move.
-- Only the moving rows are ranked (a window over every pointing row took 1.2 s at 20M frames).
WITH moving AS (
    SELECT file_name, row, time_mjd
    FROM pointing
    WHERE upper(trim(hga_motion)) IN ('0', 'MOVING') AND time_mjd IS NOT NULL
),
islands AS (  -- consecutive moving rows of a file share row - rank (gaps and islands)
    SELECT file_name, time_mjd, row - row_number() OVER (PARTITION BY file_name ORDER BY row) AS island
    FROM moving
),
moves AS (
    SELECT row_number() OVER (ORDER BY min(time_mjd)) AS move_id,
           min(time_mjd) - $pad_s / 86400.0 AS lo,
           max(time_mjd) + $pad_s / 86400.0 AS hi
    FROM islands
    GROUP BY file_name, island
),
hit AS (
    SELECT m.move_id, m.lo, m.hi, f.file_name, f.program
    FROM moves AS m
    JOIN files AS f
      ON f.status = 'ingested' AND f.product = 'fg'
     AND f.data_start_mjd <= m.hi AND f.data_end_mjd >= m.lo
)
SELECT h.move_id, min(h.lo) AS lo_mjd, max(h.hi) AS hi_mjd,
       count(*) AS n_frames, avg(fr.flux) AS mean_flux, stddev_samp(fr.flux) AS std_flux
FROM frames AS fr
JOIN hit AS h ON fr.file_name = h.file_name AND fr.time_mjd BETWEEN h.lo AND h.hi
WHERE fr.program IN (SELECT program FROM hit)
GROUP BY h.move_id
ORDER BY h.move_id
