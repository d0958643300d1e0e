-- Binned time series of one program's selected fine-guide files: the mean of every column per bin
-- of $bin_s seconds counted from $t0_mjd, never mixing guide stars. Each dataset (frames, then
-- any fitter dataset) is aggregated on its own and the small per-bin results are joined, so no
-- per-frame join is made: a frame's bin comes from its file's DATASTRT and cadence and its frame
-- number (the 'mid' time rule, docs/CONVENTIONS.md). Template: archive.py fills the selection,
-- CTE, column and join placeholders from a fixed whitelist; every value is a bound parameter.
WITH sel AS (
    SELECT unnest($files) AS file_name, unnest($gs_ids) AS gs_id,
           unnest($starts) AS start_mjd, unnest($frame_s) AS frame_s{selection}
),
fr AS (
    SELECT sel.gs_id,
           floor(((sel.start_mjd - $t0_mjd) * 86400.0 + (t.frame + 0.5) * sel.frame_s) / $bin_s) AS bin,
           avg(t.time_mjd) AS time_mjd,
           count(*) AS n_frames,
           avg(t.flux) AS flux,
           stddev_samp(t.flux) / sqrt(count(t.flux)) AS flux_err
    FROM frames AS t
    JOIN sel ON sel.file_name = t.file_name
    WHERE t.program = $program
      AND ($start_mjd IS NULL OR t.time_mjd >= $start_mjd)
      AND ($end_mjd IS NULL OR t.time_mjd < $end_mjd)
    GROUP BY ALL
){ctes}
SELECT fr.time_mjd, fr.gs_id, fr.n_frames, fr.flux, fr.flux_err{columns}
FROM fr
{joins}
ORDER BY fr.time_mjd
