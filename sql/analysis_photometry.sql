-- Photometry of the selected files of one program, at each file's newest fit_version.
WITH v AS (
    SELECT file_name, max(fit_version) AS fit_version
    FROM photometry
    WHERE program = $program AND list_contains($files, file_name)
    GROUP BY file_name
)
SELECT t.file_name, t.frame, t.background, t.flux_r2, t.flux_opt, t.n_opt_pixels
FROM photometry AS t
JOIN v ON v.file_name = t.file_name AND v.fit_version = t.fit_version
WHERE t.program = $program
