-- Raw MAST rows recorded for a crawl window (date_obs_mjd in [start, end]) and product selection.
SELECT file_name, row_json
FROM mast_files
WHERE date_obs_mjd BETWEEN $start_mjd AND $end_mjd
    AND list_contains($exp_types, exp_type)
    AND state <> 'unsafe'
ORDER BY date_obs_mjd, file_name
