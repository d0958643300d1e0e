-- Fine-guide files with frames (optionally one program) with what the analyses group on and what
-- changes when a file is re-ingested (file_bytes, ingested_at): the inputs of analysis units.
SELECT file_name, program, observation, visit, guide_period, segment, gs_id,
       data_start_mjd, data_end_mjd, n_frames, frame_time_s,
       file_bytes, CAST(ingested_at AS VARCHAR) AS ingested_at
FROM files
WHERE status = 'ingested' AND product = 'fg' AND n_frames > 0
  AND ($program IS NULL OR program = $program)
ORDER BY data_start_mjd, file_name
