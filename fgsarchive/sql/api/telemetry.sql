-- Engineering telemetry samples (table telemetry) of one mnemonic or all, in a time window.
SELECT t.*
FROM telemetry AS t
WHERE ($mnemonic IS NULL OR t.mnemonic = $mnemonic)
  AND ($start_mjd IS NULL OR t.time_mjd >= $start_mjd)
  AND ($end_mjd IS NULL OR t.time_mjd <= $end_mjd)
ORDER BY t.mnemonic, t.time_mjd
