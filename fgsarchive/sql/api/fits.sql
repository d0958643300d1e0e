-- Per-frame results of one fitter dataset (table placeholder: fits, quickfits or photometry, a fixed
-- whitelist filled by archive.py) for the selected files of one program, with each file's visit
-- and guide star; all fit versions unless $fit_version is given.
SELECT sel.observation, sel.visit, sel.gs_id, t.*
FROM {table} AS t
JOIN (SELECT unnest($files) AS file_name, unnest($observations) AS observation,
             unnest($visits) AS visit, unnest($gs_ids) AS gs_id) AS sel
  ON sel.file_name = t.file_name
WHERE t.program = $program
  AND ($fit_version IS NULL OR t.fit_version = $fit_version)
ORDER BY t.file_name, t.frame, t.fit_version
LIMIT coalesce($limit, 9223372036854775807)
