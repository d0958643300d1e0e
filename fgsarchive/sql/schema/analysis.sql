-- Analyses (fgsarchive/analysis/run.py; docs/analyses.md "Archive tables"). Only the run log lives
-- here: the result tables (periodogram_peaks, instrumental_lines, anomalies, variability) are
-- created by analysis_create_<analysis>.sql when that analysis first writes, so a missing table still
-- means "not computed yet" (Archive raises NotComputedError naming the command).
CREATE TABLE IF NOT EXISTS analysis_runs (
    analysis VARCHAR NOT NULL,         -- periodogram, anomalies, variables
    program INTEGER,                   -- NULL: all programs
    options VARCHAR,                   -- JSON of the options used
    n_groups INTEGER,                  -- series / guide stars analysed
    n_rows INTEGER,                    -- rows written
    seconds DOUBLE,
    finished_at TIMESTAMP              -- UTC
);

-- Incremental analyses (fgsarchive/analysis/incremental.py; docs/analyses.md "Incremental
-- analysis"). A unit is one visit's frames of one guide star; a row here means its anomalies,
-- periodogram peaks (grouped_by = 'visit') and variability bins are stored for these inputs.
CREATE TABLE IF NOT EXISTS analysis_units (
    program INTEGER,
    observation INTEGER,
    visit INTEGER,
    gs_id VARCHAR,
    fingerprint VARCHAR NOT NULL,      -- sha256 of the unit's files (name, size, frames, ingested_at,
                                       -- fit/photometry part version and size), its run layout, the
                                       -- options and the method versions
    n_files INTEGER,
    n_frames BIGINT,                   -- frames of its files
    var_frames BIGINT,                 -- frames in its variability bins (after masking)
    flux_source VARCHAR,               -- flux the variability bins were made of (flux-sky, flux, flux_opt)
    pending BOOLEAN,                   -- stored, archive-wide products not yet updated from it
    seconds DOUBLE,                    -- compute time of the unit (worker)
    computed_at TIMESTAMP              -- UTC
);

-- Each unit's variability bins (10 s, relative flux): archive-wide variability scores are
-- recomputed from these and the current instrumental lines, never from the frames.
CREATE TABLE IF NOT EXISTS variability_bins (
    program INTEGER,
    observation INTEGER,
    visit INTEGER,
    gs_id VARCHAR,
    visit_key VARCHAR,                 -- program/observation/visit
    bin DOUBLE,                        -- bin number from the visit's first frame
    x DOUBLE,                          -- mean relative flux (0 = the visit's median)
    e DOUBLE,                          -- its expected error (photon noise), relative
    t_s DOUBLE,                        -- mean time, MJD x 86400 (s)
    n BIGINT                           -- frames in the bin
);

-- Fingerprints of what the archive-wide products were last computed from (key/value).
CREATE TABLE IF NOT EXISTS analysis_state (
    key VARCHAR NOT NULL,              -- archive_wide
    value VARCHAR
);
