-- A record stored as a bracket that a later reply had inside its window is an ordinary record.
UPDATE telemetry SET is_bracket = false
FROM (SELECT DISTINCT mnemonic, time_mjd FROM new_rows WHERE NOT is_bracket) AS n
WHERE telemetry.is_bracket AND telemetry.mnemonic = n.mnemonic AND telemetry.time_mjd = n.time_mjd
