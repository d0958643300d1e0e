SELECT mnemonic, count(*) AS n_rows, min(time_mjd) AS first_mjd, max(time_mjd) AS last_mjd
FROM telemetry GROUP BY mnemonic ORDER BY mnemonic
