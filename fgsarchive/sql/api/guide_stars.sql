-- Guide stars (guide_stars view) used by a program, or all.
SELECT *
FROM guide_stars
WHERE $program IS NULL OR list_contains(programs, $program)
ORDER BY first_mjd
