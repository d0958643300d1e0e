-- Benchmark 5, fallback when the events table holds no HGA moves (scripts/bench_scale.py): moves are
-- the runs of POINTING rows whose HGA_motion is '0'/'MOVING' (0 = moving, 1 = finished), per file;
-- then, as in bench_hga_frames.sql, the frames within +-$pad_s seconds of each move.
WITH p AS (
    SELECT file_name, row, time_mjd, upper(trim(hga_motion)) IN ('0', 'MOVING') AS moving
    FROM pointing
    WHERE time_mjd IS NOT NULL
),
c AS (
    SELECT *, sum((moving IS DISTINCT FROM prev)::INTEGER)
                  OVER (PARTITION BY file_name ORDER BY time_mjd, row ROWS UNBOUNDED PRECEDING) AS island
    FROM (SELECT *, lag(moving) OVER (PARTITION BY file_name ORDER BY time_mjd, row) AS prev FROM p)
),
moves AS (
    SELECT row_number() OVER (ORDER BY min(time_mjd)) AS move_id,
           min(time_mjd) - $pad_s / 86400.0 AS lo,
           max(time_mjd) + $pad_s / 86400.0 AS hi
    FROM c
    WHERE moving
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
