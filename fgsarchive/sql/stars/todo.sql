-- Guide stars in the archive not yet looked up in the catalog (errors are retried), with the
-- header position of their latest file (deg).
SELECT
    f.gs_id,
    arg_max(f.gs_ra, f.data_start_mjd) AS ra,
    arg_max(f.gs_dec, f.data_start_mjd) AS dec
FROM files AS f
WHERE f.status = 'ingested'
    AND f.gs_id IS NOT NULL
    AND ($refresh OR NOT EXISTS (
        SELECT 1 FROM guide_star_catalog AS c
        WHERE c.gs_id = f.gs_id AND c.status IN ('found', 'not_found')
    ))
GROUP BY f.gs_id
ORDER BY f.gs_id
