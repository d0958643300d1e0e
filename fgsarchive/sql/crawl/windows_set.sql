INSERT INTO crawl_windows (start_mjd, end_mjd, state, n_files, updated_at)
VALUES ($start_mjd, $end_mjd, $state, $n_files, $updated_at)
ON CONFLICT (start_mjd, end_mjd) DO UPDATE SET
    state = excluded.state,
    n_files = excluded.n_files,
    updated_at = excluded.updated_at
