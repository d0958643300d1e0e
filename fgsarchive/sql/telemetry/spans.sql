-- Time spans the archive holds, one per guide period (segments merged), optionally for one program.
SELECT
    coalesce(guide_period, file_name) AS period,
    any_value(program) AS program,
    min(data_start_mjd) AS start_mjd,
    max(data_end_mjd) AS end_mjd
FROM files
WHERE status = 'ingested'
    AND data_start_mjd IS NOT NULL
    AND data_end_mjd IS NOT NULL
    AND ($program IS NULL OR program = $program)
GROUP BY ALL
ORDER BY start_mjd
