-- Benchmark 4 (scripts/bench_scale.py): the $top most variable guide stars with their position,
-- magnitude and catalogue cross-match.
SELECT v.*, g.ra, g.dec, g.fgs_mag, g.first_mjd, g.last_mjd, g.variable_flag
FROM variability AS v
LEFT JOIN guide_stars AS g USING (gs_id)
ORDER BY v.rank NULLS LAST, v.score DESC NULLS LAST
LIMIT $top
