-- Store variability bins of analysis units (Arrow table new_bins, columns by name).
INSERT INTO variability_bins BY NAME SELECT * FROM new_bins
