-- Number of observatory events (bookkeeping kinds excluded) of one program, or of all.
SELECT count(*)
FROM events
WHERE kind NOT IN ('file_boundary', 'guide_star_change')
  AND ($program IS NULL OR program IS NULL OR program = $program)
