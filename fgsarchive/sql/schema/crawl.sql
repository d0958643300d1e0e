-- Crawler state, telemetry and derived events (fgsarchive/crawl.py, telemetry.py; docs/crawler.md).

-- One row per MAST product file name (deduplicated): the GuideStar row as MAST sent it (row_json)
-- plus what the crawler did with it. The MAST token is never stored here.
CREATE TABLE IF NOT EXISTS mast_files (
    file_name VARCHAR PRIMARY KEY,     -- MAST fileName (unsafe names: escaped, never used as a path)
    program INTEGER,
    observation INTEGER,
    visit INTEGER,
    exp_type VARCHAR,                  -- FGS_FINEGUIDE, FGS_TRACK, ...
    product VARCHAR,                   -- fg, track, acq1, acq2, id (from the file name)
    gs_id VARCHAR,                     -- gdstarid
    date_obs_mjd DOUBLE,               -- DATASTRT, MJD UTC
    date_end_mjd DOUBLE,               -- DATAEND, MJD UTC
    file_size BIGINT,                  -- bytes, as MAST lists it
    checksum VARCHAR,                  -- 'sha256:<hex>' when MAST gives one
    is_restricted BOOLEAN,             -- MAST isRestricted (exclusive access)
    state VARCHAR NOT NULL,            -- listed, downloaded, ingested, failed, unsafe, auth
    attempts INTEGER NOT NULL,         -- failed download/ingest attempts
    error VARCHAR,                     -- one line, when failed/unsafe/auth
    local_path VARCHAR,                -- where the cache holds the file
    row_json VARCHAR,                  -- the raw MAST row
    first_seen TIMESTAMP,              -- UTC
    updated_at TIMESTAMP               -- UTC
);

-- Date windows of `fgsarchive crawl` (continuous filter on date_obs_mjd).
CREATE TABLE IF NOT EXISTS crawl_windows (
    start_mjd DOUBLE NOT NULL,
    end_mjd DOUBLE NOT NULL,
    state VARCHAR NOT NULL,            -- listed (queried, files pending), done, open (reaches today)
    n_files INTEGER,
    updated_at TIMESTAMP,
    PRIMARY KEY (start_mjd, end_mjd)
);

-- EDB windows already fetched, per mnemonic (never fetched twice).
CREATE TABLE IF NOT EXISTS telemetry_windows (
    mnemonic VARCHAR NOT NULL,
    start_mjd DOUBLE NOT NULL,
    end_mjd DOUBLE NOT NULL,
    n_rows INTEGER,
    fetched_at TIMESTAMP
);

-- EDB records, one per (mnemonic, time_mjd).
CREATE TABLE IF NOT EXISTS telemetry (
    mnemonic VARCHAR NOT NULL,
    time_mjd DOUBLE NOT NULL,          -- MJD UTC
    value DOUBLE,                      -- numeric value, NULL for text mnemonics
    value_text VARCHAR,                -- the EDB euvalue as sent
    is_bracket BOOLEAN                 -- only seen as the record before/after a requested window
);

-- Events derived by fgsarchive.telemetry.derive_events (re-derived, never duplicated).
CREATE TABLE IF NOT EXISTS events (
    kind VARCHAR NOT NULL,             -- hga_move, filter_wheel_move, guide_star_change, file_boundary, hga_motion_pointing
    start_mjd DOUBLE,                  -- MJD UTC
    end_mjd DOUBLE,                    -- MJD UTC (NULL: still going when the data end)
    program INTEGER,
    file_name VARCHAR,                 -- the file the event falls in (or begins, for boundaries)
    detail VARCHAR                     -- JSON
);
