-- Archive core schema (version in schema_info). The contract between stages: every stage reads
-- these tables; per-frame data (frames, pointing, centroids) live in Parquet parts exposed as views
-- (see views_parts.sql and README "Archive schema").
CREATE TABLE IF NOT EXISTS schema_info (
    key VARCHAR,
    value VARCHAR
);

CREATE TABLE IF NOT EXISTS files (
    file_name VARCHAR NOT NULL,        -- e.g. jw01534002002_gs-fg_2022338021919_cal.fits
    program INTEGER,
    observation INTEGER,
    visit INTEGER,
    product VARCHAR,                   -- fg, track, acq1, acq2, id
    exp_type VARCHAR,                  -- EXP_TYPE keyword
    detector VARCHAR,                  -- GUIDER1 / GUIDER2
    segment INTEGER,                   -- 1-based segment of a split guide period, NULL if unsegmented
    n_segments INTEGER,                -- EXSEGTOT
    int_start INTEGER,                 -- INTSTART (1-based first integration of the segment)
    guide_period VARCHAR,              -- jw<11 digits>_gs-<mode>_<stamp>: groups segments
    gs_id VARCHAR,                     -- GDSTARID
    gs_order INTEGER,
    gs_ra DOUBLE,                      -- deg
    gs_dec DOUBLE,                     -- deg
    gs_ra_err DOUBLE,
    gs_dec_err DOUBLE,
    gs_mag DOUBLE,                     -- FGS magnitude
    gs_mag_err DOUBLE,
    gs_pm_ra DOUBLE,
    gs_pm_dec DOUBLE,
    gs_epoch VARCHAR,
    gsc_version VARCHAR,
    data_start_mjd DOUBLE,             -- DATASTRT, MJD UTC
    data_end_mjd DOUBLE,               -- DATAEND, MJD UTC
    nints INTEGER,                     -- NINTS keyword as written
    n_frames BIGINT,                   -- integrations in the SCI cube (frames archived for fg)
    frame_time_s DOUBLE,               -- (DATAEND - DATASTRT) * 86400 / n_frames
    time_rule VARCHAR,                 -- 'mid': time_mjd = DATASTRT + (i + 0.5) * frame_time
    dq UINTEGER[],                     -- the file's 8x8 DQ, row-major (fg only)
    noise_a DOUBLE,                    -- pixel noise model var = noise_a + noise_b * max(signal, 0):
    noise_b DOUBLE,                    --   read-noise [(DN/s)^2] and Poisson [DN/s] terms (fg only)
    noise_source VARCHAR,              -- err (ERR extension), frames (from the frames), none
    n_pointing INTEGER,
    n_centroids INTEGER,
    file_bytes BIGINT,
    source_path VARCHAR,
    header VARCHAR,                    -- primary header as JSON
    status VARCHAR NOT NULL,           -- ingested, failed
    error VARCHAR,                     -- reason when failed
    ingested_at TIMESTAMP
);

-- Guide Star Catalog cross-match, one row per gs_id (filled by `fgsarchive stars`).
CREATE TABLE IF NOT EXISTS guide_star_catalog (
    gs_id VARCHAR NOT NULL,
    status VARCHAR,                    -- found, not_found, error
    catalog VARCHAR,                   -- pinned catalog version, e.g. GSC243
    gaia_dr3_id VARCHAR,
    gaia_dr2_id VARCHAR,
    cat_ra DOUBLE,
    cat_dec DOUBLE,
    cat_epoch DOUBLE,
    pm_ra DOUBLE,                      -- mas/yr
    pm_dec DOUBLE,
    gaia_g_mag DOUBLE,
    j_mag DOUBLE,
    h_mag DOUBLE,
    ks_mag DOUBLE,
    variable_flag VARCHAR,
    checked_at TIMESTAMP
);
