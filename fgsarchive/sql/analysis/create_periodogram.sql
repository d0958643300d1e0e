-- Result tables of `fgsarchive periodogram`, created on its first write (see schema_analysis.sql).
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
    instrumental BOOLEAN,              -- on a line shared by several guide stars (instrumental_lines), or pointing
    line_id INTEGER,                   -- that line, else NULL
    pointing BOOLEAN                   -- a flux peak on a line of its group's x_mean/y_mean spectrum
);
-- archives whose table predates the pointing column
ALTER TABLE periodogram_peaks ADD COLUMN IF NOT EXISTS pointing BOOLEAN;

CREATE TABLE IF NOT EXISTS instrumental_lines (
    line_id INTEGER,
    frequency_hz DOUBLE,               -- median of the member peaks
    period_s DOUBLE,
    n_stars INTEGER,                   -- distinct guide stars with a peak within rel_tol
    n_peaks INTEGER,
    frequency_min_hz DOUBLE,
    frequency_max_hz DOUBLE,
    median_power DOUBLE,
    contrast_sigma DOUBLE,             -- peaks in the line's window above the local density of peaks (sigma)
    gs_ids VARCHAR[],
    min_stars INTEGER,                 -- the threshold used
    rel_tol DOUBLE
);
