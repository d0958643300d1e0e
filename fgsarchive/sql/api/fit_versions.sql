-- Newest fit_version per file of one fitter dataset (table placeholder: fits, quickfits or photometry, a
-- fixed whitelist filled by archive.py) in one program: a time series joins only that version.
SELECT file_name, max(fit_version) AS fit_version
FROM {table}
WHERE program = $program AND list_contains($files, file_name)
GROUP BY file_name
