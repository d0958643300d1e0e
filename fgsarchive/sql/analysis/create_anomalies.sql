-- Result table of `fgsarchive anomalies`, created on its first write (see schema_analysis.sql).
CREATE TABLE IF NOT EXISTS anomalies (
    program INTEGER,
    observation INTEGER,
    visit INTEGER,
    file_name VARCHAR,                 -- file of the first frame of the anomaly
    gs_id VARCHAR,
    kind VARCHAR,                      -- of the most significant detection: flux_drop, centroid_jump, psf_change, ...
    start_mjd DOUBLE,                  -- MJD UTC (a step: start = end = the frame boundary)
    end_mjd DOUBLE,
    duration_s DOUBLE,
    start_s DOUBLE,                    -- seconds after the visit's first fine-guide DATASTRT
    parameters VARCHAR[],              -- every parameter that showed it, most significant first
    kinds VARCHAR[],
    amplitude DOUBLE,                  -- fraction of the baseline (flux, widths, amplitude), px (centroids), rad (theta)
    significance DOUBLE,               -- sigma at the filter scale (local)
    n_detections INTEGER,
    start_frame INTEGER,               -- frame (0-based) in file_name
    end_file_name VARCHAR,
    end_frame INTEGER,
    coincident_events STRUCT(kind VARCHAR, start_mjd DOUBLE, end_mjd DOUBLE, file_name VARCHAR, detail VARCHAR, offset_s DOUBLE)[],
    coincident_kinds VARCHAR[],
    min_sigma DOUBLE
);
