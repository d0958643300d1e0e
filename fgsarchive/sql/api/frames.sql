SELECT fr.program, fr.file_name, f.observation, f.visit, f.gs_id, fr.frame, fr.time_mjd, fr.flux, fr.pixels
FROM frames AS fr
JOIN files AS f USING (file_name)
WHERE ($program IS NULL OR fr.program = $program)
  AND ($observation IS NULL OR f.observation = $observation)
  AND ($visit IS NULL OR f.visit = $visit)
  AND ($gs_id IS NULL OR f.gs_id = $gs_id)
  AND ($file_name IS NULL OR fr.file_name = $file_name)
  AND ($start_mjd IS NULL OR fr.time_mjd >= $start_mjd)
  AND ($end_mjd IS NULL OR fr.time_mjd < $end_mjd)
ORDER BY fr.time_mjd
LIMIT coalesce($limit, 9223372036854775807)
