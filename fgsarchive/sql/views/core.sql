-- Views over the core tables, created on every connection (TEMP, so read-only connections can too).
CREATE OR REPLACE TEMP VIEW programs AS
SELECT
    program,
    count(*) AS n_files,
    count(*) FILTER (WHERE product = 'fg') AS n_fg_files,
    coalesce(sum(n_frames) FILTER (WHERE product = 'fg'), 0)::BIGINT AS n_frames,
    min(data_start_mjd) AS first_mjd,
    max(data_end_mjd) AS last_mjd,
    count(DISTINCT gs_id) AS n_guide_stars,
    count(DISTINCT (observation, visit)) AS n_visits
FROM files
WHERE status = 'ingested'
GROUP BY program;

CREATE OR REPLACE TEMP VIEW guide_stars AS
SELECT
    f.gs_id,
    arg_max(f.gs_ra, f.data_start_mjd) AS ra,
    arg_max(f.gs_dec, f.data_start_mjd) AS dec,
    arg_max(f.gs_ra_err, f.data_start_mjd) AS ra_err,
    arg_max(f.gs_dec_err, f.data_start_mjd) AS dec_err,
    arg_max(f.gs_mag, f.data_start_mjd) AS fgs_mag,
    arg_max(f.gs_mag_err, f.data_start_mjd) AS fgs_mag_err,
    arg_max(f.gs_pm_ra, f.data_start_mjd) AS pm_ra,
    arg_max(f.gs_pm_dec, f.data_start_mjd) AS pm_dec,
    arg_max(f.gs_epoch, f.data_start_mjd) AS epoch,
    list(DISTINCT f.program ORDER BY f.program) AS programs,
    list(DISTINCT f.detector ORDER BY f.detector) AS detectors,
    count(*) AS n_files,
    coalesce(sum(f.n_frames) FILTER (WHERE f.product = 'fg'), 0)::BIGINT AS n_frames,
    min(f.data_start_mjd) AS first_mjd,
    max(f.data_end_mjd) AS last_mjd,
    any_value(c.status) AS catalog_status,
    any_value(c.catalog) AS catalog,
    any_value(c.gaia_dr3_id) AS gaia_dr3_id,
    any_value(c.gaia_dr2_id) AS gaia_dr2_id,
    any_value(c.cat_ra) AS cat_ra,
    any_value(c.cat_dec) AS cat_dec,
    any_value(c.cat_epoch) AS cat_epoch,
    any_value(c.pm_ra) AS cat_pm_ra,
    any_value(c.pm_dec) AS cat_pm_dec,
    any_value(c.gaia_g_mag) AS gaia_g_mag,
    any_value(c.j_mag) AS j_mag,
    any_value(c.h_mag) AS h_mag,
    any_value(c.ks_mag) AS ks_mag,
    any_value(c.variable_flag) AS variable_flag
FROM files AS f
LEFT JOIN guide_star_catalog AS c ON c.gs_id = f.gs_id
WHERE f.status = 'ingested' AND f.gs_id IS NOT NULL
GROUP BY f.gs_id;
