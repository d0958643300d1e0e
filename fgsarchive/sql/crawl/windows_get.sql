SELECT start_mjd, end_mjd, state, n_files FROM crawl_windows ORDER BY start_mjd, end_mjd
