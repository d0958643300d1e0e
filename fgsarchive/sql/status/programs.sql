SELECT program, n_files, n_fg_files, n_visits, n_guide_stars, n_frames, first_mjd, last_mjd
FROM programs ORDER BY program
