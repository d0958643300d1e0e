-- Benchmark 5 (scripts/bench_scale.py): frames within +-$pad_s seconds of every HGA move (events of
-- kind hga_move or hga_motion_pointing): per move, the frames found and their flux statistics.
-- Moves are matched to the fine-guide files they overlap first, so frames are read per file.
WITH moves AS (
    SELECT row_number() OVER (ORDER BY start_mjd) AS move_id,
           start_mjd - $pad_s / 86400.0 AS lo,
           coalesce(end_mjd, start_mjd) + $pad_s / 86400.0 AS hi
    FROM events
    WHERE kind IN ('hga_move', 'hga_motion_pointing')
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
