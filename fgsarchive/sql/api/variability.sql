-- Variability ranks of guide stars (table variability, filled by the analyses), best first,
-- with each star's position and magnitude from the guide_stars view. The table has its own
-- `programs` column (the programs its ranks came from), so g.programs is only used to filter.
SELECT v.*, g.ra, g.dec, g.fgs_mag, g.variable_flag
FROM variability AS v
LEFT JOIN guide_stars AS g USING (gs_id)
WHERE ($gs_id IS NULL OR v.gs_id = $gs_id)
  AND ($program IS NULL OR list_contains(g.programs, $program))
ORDER BY v.rank NULLS LAST, v.score DESC NULLS LAST
LIMIT coalesce($top, 9223372036854775807)
