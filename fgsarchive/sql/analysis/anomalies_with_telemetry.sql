-- The anomalies_with_telemetry view (views_analysis.sql) for one program or all, in time order.
SELECT * FROM anomalies_with_telemetry
WHERE $program IS NULL OR program = $program
ORDER BY start_mjd, event_start_mjd NULLS LAST
