-- Benchmark 4 (scripts/bench_scale.py): the $top most variable guide stars with their position,
-- magnitude and programs.
SELECT v.*, g.ra, g.dec, g.fgs_mag, g.programs, g.n_frames
FROM variability AS v
LEFT JOIN guide_stars AS g USING (gs_id)
ORDER BY v.rank NULLS LAST, v.score DESC NULLS LAST
LIMIT $top
