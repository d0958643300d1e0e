-- Analysis views, created on every connection (TEMP). visit_summary needs the fits dataset and
-- anomalies_with_telemetry the anomalies table; a view whose inputs do not exist yet is skipped
-- (so visit_summary comes first: it does not need the anomalies).

-- One row per program / observation / visit / guide star: frames, time span, mean summed flux,
-- median fitted widths, centroid jitter and the fraction of converged fits (newest fit_version
-- of each file; jitter = RMS of x_mean / y_mean about each file's own mean, converged fits only).
CREATE OR REPLACE TEMP VIEW visit_summary AS
WITH sel AS (
    SELECT file_name, program, observation, visit, gs_id, n_frames, data_start_mjd, data_end_mjd
    FROM files
    WHERE status = 'ingested' AND product = 'fg' AND n_frames > 0
),
newest AS (
    SELECT file_name, max(fit_version) AS fit_version FROM fits GROUP BY file_name
),
per_file AS (
    SELECT t.file_name,
           count(*) AS n_fits,
           count(*) FILTER (WHERE t.status = 0) AS n_converged,
           median(t.x_stddev) FILTER (WHERE t.status = 0) AS x_stddev,
           median(t.y_stddev) FILTER (WHERE t.status = 0) AS y_stddev,
           var_pop(t.x_mean) FILTER (WHERE t.status = 0) AS var_x,
           var_pop(t.y_mean) FILTER (WHERE t.status = 0) AS var_y
    FROM fits AS t
    JOIN newest AS n ON n.file_name = t.file_name AND n.fit_version = t.fit_version
    GROUP BY t.file_name
),
flux AS (
    SELECT file_name, avg(flux) AS mean_flux, count(flux) AS n_flux
    FROM frames
    GROUP BY file_name
)
SELECT s.program, s.observation, s.visit, s.gs_id,
       count(*) AS n_files,
       sum(s.n_frames)::BIGINT AS n_frames,
       min(s.data_start_mjd) AS start_mjd,
       max(s.data_end_mjd) AS end_mjd,
       sum(s.data_end_mjd - s.data_start_mjd) * 86400.0 AS guided_s,
       sum(f.mean_flux * f.n_flux) / nullif(sum(f.n_flux), 0) AS mean_flux,
       median(p.x_stddev) AS median_x_stddev_px,
       median(p.y_stddev) AS median_y_stddev_px,
       sqrt(sum(p.var_x * p.n_converged) / nullif(sum(p.n_converged), 0)) AS jitter_x_rms_px,
       sqrt(sum(p.var_y * p.n_converged) / nullif(sum(p.n_converged), 0)) AS jitter_y_rms_px,
       sum(p.n_converged) / nullif(sum(p.n_fits), 0) AS fraction_converged,
       sum(p.n_fits)::BIGINT AS n_fitted
FROM sel AS s
LEFT JOIN per_file AS p USING (file_name)
LEFT JOIN flux AS f USING (file_name)
GROUP BY s.program, s.observation, s.visit, s.gs_id;

-- Every anomaly with each observatory event that overlaps it once widened by 30 s on both sides
-- (one row per pair; event columns NULL when none). Bookkeeping kinds (file_boundary,
-- guide_star_change) are left out, as in the anomalies' own coincident_events.
CREATE OR REPLACE TEMP VIEW anomalies_with_telemetry AS
SELECT a.*,
       e.kind AS event_kind,
       e.start_mjd AS event_start_mjd,
       e.end_mjd AS event_end_mjd,
       e.detail AS event_detail,
       (e.start_mjd - a.start_mjd) * 86400.0 AS event_offset_s
FROM anomalies AS a
LEFT JOIN events AS e
    ON e.kind NOT IN ('file_boundary', 'guide_star_change')
   AND (e.program IS NULL OR e.program = a.program)
   AND e.start_mjd <= a.end_mjd + 30.0 / 86400.0
   AND coalesce(e.end_mjd, e.start_mjd) >= a.start_mjd - 30.0 / 86400.0;
