-- Per-frame time series of one program's selected fine-guide files, in time order.
-- Template: archive.py fills the selection, column and join placeholders from a fixed whitelist of fit /
-- photometry columns and datasets (identifiers cannot be bound); every value is a bound parameter.
-- Each fitter dataset is joined at the newest fit_version of each file; fit parameters of frames
-- whose fit failed (status >= 2: bad frame, no star, diverged) are NULL.
SELECT fr.time_mjd, fr.file_name, fr.frame, sel.gs_id, fr.flux{columns}
FROM frames AS fr
JOIN (SELECT unnest($files) AS file_name, unnest($gs_ids) AS gs_id{selection}) AS sel
  ON sel.file_name = fr.file_name
{joins}
WHERE fr.program = $program
  AND ($start_mjd IS NULL OR fr.time_mjd >= $start_mjd)
  AND ($end_mjd IS NULL OR fr.time_mjd < $end_mjd)
ORDER BY fr.time_mjd, fr.frame
