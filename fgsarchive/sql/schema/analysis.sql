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
