-- Photometry of the selected files at each file's newest fit_version, read from their own Parquet
-- parts ($paths: PartStore.parts_of each file, every version).
SELECT file_name, frame, background, flux_r2, flux_opt, n_opt_pixels
FROM read_parquet($paths, union_by_name = true)
QUALIFY fit_version = max(fit_version) OVER (PARTITION BY file_name)
