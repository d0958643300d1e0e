-- Fine-guide files with frames in the archive (optionally one program), oldest first.
SELECT file_name, program, n_frames, dq, noise_a, noise_b, noise_source
FROM files
WHERE status = 'ingested' AND product = 'fg' AND n_frames > 0
  AND ($program IS NULL OR program = $program)
ORDER BY data_start_mjd, file_name
