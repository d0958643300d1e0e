-- One row per visit of a program: its fine-guide files, frames, guide stars and time span.
SELECT program, observation, visit,
       count(*) AS n_files, sum(n_frames)::BIGINT AS n_frames,
       list(DISTINCT gs_id ORDER BY gs_id) AS gs_ids,
       min(data_start_mjd) AS start_mjd, max(data_end_mjd) AS end_mjd,
       (max(data_end_mjd) - min(data_start_mjd)) * 86400.0 AS duration_s
FROM files
WHERE status = 'ingested' AND product = 'fg'
  AND ($program IS NULL OR program = $program)
GROUP BY ALL
ORDER BY start_mjd
