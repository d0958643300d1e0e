-- Fine-guide files with frames (optionally one program / guide star), in time order, with what the
-- analyses group on: visit, guide period (segments of one exposure), guide star, cadence.
SELECT file_name, program, observation, visit, guide_period, segment, gs_id,
       data_start_mjd, data_end_mjd, n_frames, frame_time_s
FROM files
WHERE status = 'ingested' AND product = 'fg' AND n_frames > 0
  AND ($program IS NULL OR program = $program)
  AND ($gs_id IS NULL OR gs_id = $gs_id)
ORDER BY data_start_mjd, file_name
