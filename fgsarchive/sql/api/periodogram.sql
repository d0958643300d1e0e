-- Periodogram peaks (table periodogram_peaks, filled by the analyses) of a selection, most
-- significant first (lowest false-alarm probability, then highest power).
SELECT p.*
FROM periodogram_peaks AS p
WHERE ($program IS NULL OR p.program = $program)
  AND ($files IS NULL OR list_contains($files, p.file_name))
  AND ($gs_id IS NULL OR p.gs_id = $gs_id)
  AND ($parameter IS NULL OR p.parameter = $parameter)
  AND ($max_fap IS NULL OR p.fap <= $max_fap)
ORDER BY p.fap NULLS LAST, p.power DESC NULLS LAST, p.program, p.file_name, p.gs_id, p.parameter, p.rank
