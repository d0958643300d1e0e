-- Record analysis units whose results were just stored (Arrow table new_units, columns by name).
INSERT INTO analysis_units BY NAME
SELECT *, pending: true, computed_at: CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP) FROM new_units
