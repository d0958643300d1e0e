-- Gaussian fit parameters of the selected files of one program, at each file's newest fit_version.
WITH v AS (
    SELECT file_name, max(fit_version) AS fit_version
    FROM fits
    WHERE program = $program AND list_contains($files, file_name)
    GROUP BY file_name
)
SELECT t.file_name, t.frame, t.amplitude, t.x_mean, t.y_mean, t.x_stddev, t.y_stddev, t.theta,
       t."offset", t.status
FROM fits AS t
JOIN v ON v.file_name = t.file_name AND v.fit_version = t.fit_version
WHERE t.program = $program
