-- The stored anomalies (optionally one program), in time order.
SELECT * FROM anomalies WHERE $program IS NULL OR program = $program ORDER BY start_mjd
