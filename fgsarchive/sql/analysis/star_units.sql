-- Per guide star, from its stored analysis units: visits, programs, frames in the variability
-- bins and the flux they were made of.
SELECT gs_id,
       count(*)::BIGINT AS n_visits,
       list(DISTINCT program ORDER BY program) AS programs,
       sum(var_frames)::BIGINT AS n_frames,
       max(flux_source) AS flux_source
FROM analysis_units
WHERE gs_id IS NOT NULL
GROUP BY gs_id
