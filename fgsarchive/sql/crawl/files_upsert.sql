-- Record MAST rows (new_rows); a known file keeps its state unless MAST now lists another size or checksum.
INSERT INTO mast_files (
    file_name, program, observation, visit, exp_type, product, gs_id, date_obs_mjd, date_end_mjd,
    file_size, checksum, is_restricted, state, attempts, error, local_path, row_json, first_seen,
    updated_at
)
SELECT
    file_name, program, observation, visit, exp_type, product, gs_id, date_obs_mjd, date_end_mjd,
    file_size, checksum, is_restricted, state, 0, error, NULL, row_json, updated_at, updated_at
FROM new_rows
ON CONFLICT (file_name) DO UPDATE SET
    program = excluded.program,
    observation = excluded.observation,
    visit = excluded.visit,
    exp_type = excluded.exp_type,
    product = excluded.product,
    gs_id = excluded.gs_id,
    date_obs_mjd = excluded.date_obs_mjd,
    date_end_mjd = excluded.date_end_mjd,
    is_restricted = excluded.is_restricted,
    row_json = excluded.row_json,
    state = CASE
        WHEN excluded.state = 'unsafe' THEN 'unsafe'
        WHEN mast_files.file_size IS DISTINCT FROM excluded.file_size
            OR mast_files.checksum IS DISTINCT FROM excluded.checksum THEN 'listed'
        ELSE mast_files.state
    END,
    attempts = CASE
        WHEN mast_files.file_size IS DISTINCT FROM excluded.file_size
            OR mast_files.checksum IS DISTINCT FROM excluded.checksum THEN 0
        ELSE mast_files.attempts
    END,
    error = CASE WHEN excluded.state = 'unsafe' THEN excluded.error ELSE mast_files.error END,
    file_size = excluded.file_size,
    checksum = excluded.checksum,
    updated_at = excluded.updated_at
