-- Every stored anomaly (to refresh its event cross-match when the events changed).
SELECT * FROM anomalies ORDER BY start_mjd
