-- Observatory events overlapping [$start_mjd, $end_mjd] for cross-matching anomalies. Bookkeeping
-- kinds (file boundaries, guide-star changes) are left out: they are not things the observatory did.
SELECT kind, start_mjd, coalesce(end_mjd, start_mjd) AS end_mjd, file_name, detail
FROM events
WHERE start_mjd <= $end_mjd
  AND coalesce(end_mjd, start_mjd) >= $start_mjd
  AND kind NOT IN ('file_boundary', 'guide_star_change')
  AND ($program IS NULL OR program IS NULL OR program = $program)
ORDER BY start_mjd, kind
