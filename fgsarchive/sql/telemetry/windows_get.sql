-- EDB windows already fetched for one mnemonic.
SELECT start_mjd, end_mjd FROM telemetry_windows WHERE mnemonic = $mnemonic ORDER BY start_mjd
