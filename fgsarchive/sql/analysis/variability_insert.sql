-- Store variability statistics (Arrow table new_variability, columns by name).
INSERT INTO variability BY NAME SELECT * FROM new_variability
