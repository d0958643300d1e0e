-- Record fetched EDB windows (new_windows: mnemonic, start_mjd, end_mjd, n_rows, fetched_at).
INSERT INTO telemetry_windows BY NAME SELECT * FROM new_windows
