-- Order-independent checksum of the catalog cross-match (everything but the look-up time).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(gs_id, status, catalog, gaia_dr3_id, gaia_dr2_id, cat_ra, cat_dec,
                             pm_ra, pm_dec, gaia_g_mag, j_mag, h_mag, ks_mag, variable_flag)), 0) AS checksum
FROM guide_star_catalog
