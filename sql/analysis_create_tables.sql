-- Result tables of the analyses, created on their first write (see schema_analysis.sql).
CREATE TABLE IF NOT EXISTS periodogram_peaks (
    program INTEGER,
    observation INTEGER,               -- NULL for grouped_by = 'guide_star' across visits
    visit INTEGER,
    file_name VARCHAR,                 -- first file of the group
    gs_id VARCHAR,
    grouped_by VARCHAR,                -- file (one guide period, segments joined), visit, guide_star
    n_files INTEGER,                   -- files in the group
    start_mjd DOUBLE,                  -- first and last frame mid-time of the group (MJD UTC)
    end_mjd DOUBLE,
    n_points INTEGER,                  -- unmasked samples of this parameter
    parameter VARCHAR,                 -- amplitude, x_mean, y_mean, x_stddev, y_stddev, theta, offset, flux, flux_opt
    rank INTEGER,                      -- 1 = strongest peak of this series
    frequency_hz DOUBLE,               -- refined between grid points (parabola through the top 3)
    period_s DOUBLE,
    power DOUBLE,                      -- standard normalisation, 0..1
    fap DOUBLE,                        -- Baluev false-alarm probability over the searched grid
    instrumental BOOLEAN,              -- on a line shared by several guide stars (instrumental_lines)
    line_id INTEGER                    -- that line, else NULL
);

CREATE TABLE IF NOT EXISTS instrumental_lines (
    line_id INTEGER,
    frequency_hz DOUBLE,               -- median of the member peaks
    period_s DOUBLE,
    n_stars INTEGER,                   -- distinct guide stars with a peak within rel_tol
    n_peaks INTEGER,
    frequency_min_hz DOUBLE,
    frequency_max_hz DOUBLE,
    median_power DOUBLE,
    gs_ids VARCHAR[],
    min_stars INTEGER,                 -- the threshold used
    rel_tol DOUBLE
);

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

CREATE TABLE IF NOT EXISTS variability (
    gs_id VARCHAR,
    n_frames BIGINT,
    n_visits BIGINT,
    n_bins BIGINT,
    rms_ppm DOUBLE,                    -- robust RMS of the 10-s binned relative flux
    expected_rms_ppm DOUBLE,           -- photon + background noise expected per bin
    excess DOUBLE,                     -- robust RMS of (binned flux / expected error); 1 = noise-limited
    excess_ppm DOUBLE,
    eta DOUBLE,                        -- von Neumann ratio (2 = white noise)
    skew DOUBLE,
    best_period_s DOUBLE,
    best_fap DOUBLE,
    z_excess DOUBLE,
    z_eta DOUBLE,
    z_skew DOUBLE,
    z_period DOUBLE,
    score DOUBLE,
    rank BIGINT,                       -- 1 = most variable
    flux_source VARCHAR,               -- flux_opt (photometry) or flux (frames)
    programs INTEGER[]
);
