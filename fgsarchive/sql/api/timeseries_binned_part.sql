-- One fitter dataset's part of api_timeseries_binned.sql (a CTE): its columns averaged per
-- guide star and bin, at the newest fit_version of each file. The alias, table, version and
-- averaged-column placeholders are filled by archive.py from a fixed whitelist.
{alias} AS (
    SELECT sel.gs_id,
           floor(((sel.start_mjd - $t0_mjd) * 86400.0 + (t.frame + 0.5) * sel.frame_s) / $bin_s) AS bin{averages}
    FROM {table} AS t
    JOIN sel ON sel.file_name = t.file_name AND t.fit_version = sel.{version}
    WHERE t.program = $program
      AND ($start_mjd IS NULL OR sel.start_mjd + (t.frame + 0.5) * sel.frame_s / 86400.0 >= $start_mjd)
      AND ($end_mjd IS NULL OR sel.start_mjd + (t.frame + 0.5) * sel.frame_s / 86400.0 < $end_mjd)
    GROUP BY ALL
)
