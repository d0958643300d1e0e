-- Anomalies (table anomalies, filled by the analyses) of a selection, in time order.
SELECT a.*
FROM anomalies AS a
WHERE ($program IS NULL OR a.program = $program)
  AND ($files IS NULL OR list_contains($files, a.file_name))
  AND ($gs_id IS NULL OR a.gs_id = $gs_id)
  AND ($kind IS NULL OR a.kind = $kind)
  AND ($min_significance IS NULL OR a.significance >= $min_significance)
ORDER BY a.start_mjd
