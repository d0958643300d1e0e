INSERT INTO guide_star_catalog BY NAME SELECT * FROM new_stars
