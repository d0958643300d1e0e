-- Anomaly intervals per guide star, with what variability masking needs: the parameters that
-- showed each one and whether it coincides with an observatory event.
SELECT gs_id, start_mjd, end_mjd, kind, parameters, len(coalesce(coincident_kinds, [])) > 0 AS with_event
FROM anomalies
WHERE gs_id IS NOT NULL
