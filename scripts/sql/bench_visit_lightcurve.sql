-- Benchmark 2 (scripts/bench_scale.py): binned light curve of one visit, $bin_s-second bins from the
-- visit's first DATASTRT: mean flux (frames) and mean Gaussian centroid and width (fits), each
-- aggregated on its own and joined per bin. The program filter prunes hive partitions.
WITH sel AS (
    SELECT file_name, data_start_mjd, frame_time_s
    FROM files
    WHERE status = 'ingested' AND product = 'fg'
      AND program = $program AND observation = $observation AND visit = $visit
),
t0 AS (SELECT min(data_start_mjd) AS t0 FROM sel),
fr AS (
    SELECT floor((fr.time_mjd - t0.t0) * 86400.0 / $bin_s) AS bin,
           avg(fr.time_mjd) AS time_mjd,
           count(*) AS n_frames,
           avg(fr.flux) AS flux,
           stddev_samp(fr.flux) / sqrt(count(*)) AS flux_err
    FROM frames AS fr, t0
    WHERE fr.program = $program AND fr.file_name IN (SELECT file_name FROM sel)
    GROUP BY bin
),
ft AS (
    SELECT floor(((s.data_start_mjd - t0.t0) * 86400.0 + (g.frame + 0.5) * s.frame_time_s) / $bin_s) AS bin,
           avg(g.x_mean) AS x_mean,
           avg(g.y_mean) AS y_mean,
           avg(g.x_stddev) AS x_stddev,
           avg(g.amplitude) AS amplitude
    FROM fits AS g
    JOIN sel AS s USING (file_name), t0
    WHERE g.program = $program AND g.status = 0
    GROUP BY bin
)
SELECT fr.bin, fr.time_mjd, fr.n_frames, fr.flux, fr.flux_err,
       ft.x_mean, ft.y_mean, ft.x_stddev, ft.amplitude
FROM fr
LEFT JOIN ft USING (bin)
ORDER BY fr.bin
