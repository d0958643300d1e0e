-- Observatory events a program's anomalies may coincide with (its own and archive-wide ones),
-- in the kinds the cross-match keeps; analysis/events restricted to a time window is the same.
SELECT kind, start_mjd, coalesce(end_mjd, start_mjd) AS end_mjd, file_name, detail
FROM events
WHERE kind NOT IN ('file_boundary', 'guide_star_change')
  AND (program IS NULL OR program = $program)
ORDER BY start_mjd, kind
