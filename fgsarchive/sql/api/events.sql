-- Observatory events (table events, filled from telemetry) that overlap [start_mjd, end_mjd]
-- or belong to the selected files, in time order.
SELECT e.*
FROM events AS e
WHERE ($kind IS NULL OR e.kind = $kind)
  AND (
        ($start_mjd IS NULL OR coalesce(e.end_mjd, e.start_mjd) >= $start_mjd)
    AND ($end_mjd IS NULL OR e.start_mjd <= $end_mjd)
    AND ($program IS NULL OR e.program IS NULL OR e.program = $program)
    OR ($files IS NOT NULL AND list_contains($files, e.file_name))
  )
ORDER BY e.start_mjd, e.kind
