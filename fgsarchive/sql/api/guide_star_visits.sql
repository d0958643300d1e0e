-- One row per guide star and visit: the header (GS_RA/GS_DEC) position used in that visit, and
-- the Guide Star Catalog position when cross-matched (`fgsarchive stars`).
SELECT f.program, f.observation, f.visit, f.gs_id, any_value(f.detector) AS detector,
       avg(f.gs_ra) AS gs_ra, avg(f.gs_dec) AS gs_dec, any_value(f.gs_mag) AS gs_mag,
       min(f.data_start_mjd) AS start_mjd, max(f.data_end_mjd) AS end_mjd,
       sum(f.n_frames)::BIGINT AS n_frames, count(*) AS n_files,
       any_value(c.cat_ra) AS cat_ra, any_value(c.cat_dec) AS cat_dec
FROM files AS f
LEFT JOIN guide_star_catalog AS c ON c.gs_id = f.gs_id
WHERE f.status = 'ingested' AND f.product = 'fg' AND f.gs_id IS NOT NULL
  AND ($program IS NULL OR f.program = $program)
GROUP BY ALL
ORDER BY start_mjd
