-- Benchmark 1 (scripts/bench_scale.py): per-guide-star summary over every archived frame. Frames are
-- aggregated per file first (one pass over frames.flux), then joined to the small files table.
WITH per_file AS (
    SELECT file_name,
           count(*) AS n,
           sum(flux) AS s1,
           sum(flux * flux) AS s2,
           min(time_mjd) AS t0,
           max(time_mjd) AS t1
    FROM frames
    GROUP BY file_name
)
SELECT f.gs_id,
       count(DISTINCT f.program) AS n_programs,
       count(*) AS n_files,
       sum(p.n)::BIGINT AS n_frames,
       sum(p.s1) / sum(p.n) AS mean_flux,
       sqrt(greatest(sum(p.s2) / sum(p.n) - pow(sum(p.s1) / sum(p.n), 2), 0)) AS std_flux,
       min(p.t0) AS first_mjd,
       max(p.t1) AS last_mjd
FROM per_file AS p
JOIN files AS f USING (file_name)
WHERE f.status = 'ingested'
GROUP BY f.gs_id
ORDER BY n_frames DESC
