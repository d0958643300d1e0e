-- Ingested fine-guide files of a selection (program / observation / visit / guide star / file),
-- in time order: the segments a time series is built from.
SELECT file_name, program, observation, visit, gs_id, detector, guide_period, segment,
       data_start_mjd, data_end_mjd, n_frames, frame_time_s
FROM files
WHERE status = 'ingested' AND product = 'fg'
  AND ($program IS NULL OR program = $program)
  AND ($observation IS NULL OR observation = $observation)
  AND ($visit IS NULL OR visit = $visit)
  AND ($gs_id IS NULL OR gs_id = $gs_id)
  AND ($file_name IS NULL OR file_name = $file_name)
  AND ($start_mjd IS NULL OR data_end_mjd >= $start_mjd)
  AND ($end_mjd IS NULL OR data_start_mjd < $end_mjd)
ORDER BY data_start_mjd, file_name
