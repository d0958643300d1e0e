-- Result table of `fgsarchive variables`, created on its first write (see schema_analysis.sql).
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
