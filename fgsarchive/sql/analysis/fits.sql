-- Gaussian fit parameters of the selected files at each file's newest fit_version, read from their
-- own Parquet parts ($paths: PartStore.parts_of each file, every version).
SELECT file_name, frame, amplitude, x_mean, y_mean, x_stddev, y_stddev, theta, "offset", status
FROM read_parquet($paths, union_by_name = true)
QUALIFY fit_version = max(fit_version) OVER (PARTITION BY file_name)
