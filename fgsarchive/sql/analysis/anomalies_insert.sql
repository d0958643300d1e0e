-- Append anomalies (Arrow table new_anomalies, columns by name).
INSERT INTO anomalies BY NAME SELECT * FROM new_anomalies
