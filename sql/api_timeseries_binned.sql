-- Binned time series of one program's selected fine-guide files: mean per bin of bin_s seconds
-- counted from t0_mjd, never mixing guide stars. Template: archive.py fills the selection, column,
-- join placeholders (as in api_timeseries.sql) and the aggregates (the mean of each column's finite values).
WITH per_frame AS (
    SELECT fr.time_mjd, sel.gs_id, fr.flux{columns}
    FROM frames AS fr
    JOIN (SELECT unnest($files) AS file_name, unnest($gs_ids) AS gs_id{selection}) AS sel
      ON sel.file_name = fr.file_name
    {joins}
    WHERE fr.program = $program
      AND ($start_mjd IS NULL OR fr.time_mjd >= $start_mjd)
      AND ($end_mjd IS NULL OR fr.time_mjd < $end_mjd)
)
SELECT avg(time_mjd) AS time_mjd,
       gs_id,
       count(*) AS n_frames,
       avg(flux) FILTER (WHERE isfinite(flux)) AS flux,
       stddev_samp(flux) FILTER (WHERE isfinite(flux))
           / sqrt(count(*) FILTER (WHERE isfinite(flux))) AS flux_err{aggregates}
FROM per_frame
GROUP BY gs_id, floor((time_mjd - $t0_mjd) * 86400.0 / $bin_s)
ORDER BY time_mjd
