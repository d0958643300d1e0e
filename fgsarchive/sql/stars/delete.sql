DELETE FROM guide_star_catalog WHERE gs_id IN (SELECT gs_id FROM new_stars)
