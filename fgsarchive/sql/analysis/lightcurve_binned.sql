-- Binned light curve of one guide star ($gs_id) over all its visits and programs: $bin_s-second
-- bins on the absolute time axis (bin k spans [k, k+1) * $bin_s seconds since MJD 0), never
-- mixing visits. A frame's bin comes from its file's DATASTRT and cadence (the 'mid' time rule),
-- so each dataset is aggregated on its own and the per-bin results joined: mean summed flux
-- (frames), optimal-aperture flux and background (photometry) and fitted centroid / widths
-- (converged fits), each at the newest fit_version of its file.
WITH sel AS (
    SELECT file_name, program, observation, visit, data_start_mjd, frame_time_s
    FROM files
    WHERE status = 'ingested' AND product = 'fg' AND n_frames > 0 AND gs_id = $gs_id
),
fr AS (
    SELECT s.program, s.observation, s.visit,
           floor((s.data_start_mjd * 86400.0 + (t.frame + 0.5) * s.frame_time_s) / $bin_s) AS bin,
           avg(t.time_mjd) AS time_mjd,
           count(*) AS n_frames,
           avg(t.flux) AS flux,
           stddev_samp(t.flux) / sqrt(count(t.flux)) AS flux_err
    FROM frames AS t
    JOIN sel AS s ON s.file_name = t.file_name AND s.program = t.program
    GROUP BY ALL
),
ph_version AS (
    SELECT file_name, max(fit_version) AS fit_version
    FROM photometry WHERE file_name IN (SELECT file_name FROM sel) GROUP BY file_name
),
ph AS (
    SELECT s.program, s.observation, s.visit,
           floor((s.data_start_mjd * 86400.0 + (t.frame + 0.5) * s.frame_time_s) / $bin_s) AS bin,
           avg(t.flux_opt) AS flux_opt,
           stddev_samp(t.flux_opt) / sqrt(count(t.flux_opt)) AS flux_opt_err,
           avg(t.background) AS background
    FROM photometry AS t
    JOIN ph_version AS v ON v.file_name = t.file_name AND v.fit_version = t.fit_version
    JOIN sel AS s ON s.file_name = t.file_name AND s.program = t.program
    GROUP BY ALL
),
ft_version AS (
    SELECT file_name, max(fit_version) AS fit_version
    FROM fits WHERE file_name IN (SELECT file_name FROM sel) GROUP BY file_name
),
ft AS (
    SELECT s.program, s.observation, s.visit,
           floor((s.data_start_mjd * 86400.0 + (t.frame + 0.5) * s.frame_time_s) / $bin_s) AS bin,
           count(*) FILTER (WHERE t.status = 0) AS n_converged,
           avg(t.x_mean) FILTER (WHERE t.status = 0) AS x_mean,
           avg(t.y_mean) FILTER (WHERE t.status = 0) AS y_mean,
           avg(t.x_stddev) FILTER (WHERE t.status = 0) AS x_stddev,
           avg(t.y_stddev) FILTER (WHERE t.status = 0) AS y_stddev,
           avg(t.amplitude) FILTER (WHERE t.status = 0) AS amplitude
    FROM fits AS t
    JOIN ft_version AS v ON v.file_name = t.file_name AND v.fit_version = t.fit_version
    JOIN sel AS s ON s.file_name = t.file_name AND s.program = t.program
    GROUP BY ALL
)
SELECT fr.program, fr.observation, fr.visit, fr.bin::BIGINT AS bin, fr.time_mjd, fr.n_frames,
       fr.flux, fr.flux_err, ph.flux_opt, ph.flux_opt_err, ph.background,
       ft.n_converged, ft.x_mean, ft.y_mean, ft.x_stddev, ft.y_stddev, ft.amplitude
FROM fr
LEFT JOIN ph USING (program, observation, visit, bin)
LEFT JOIN ft USING (program, observation, visit, bin)
ORDER BY fr.time_mjd
