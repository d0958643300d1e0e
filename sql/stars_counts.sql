SELECT status, count(*) AS n FROM guide_star_catalog GROUP BY status ORDER BY status
