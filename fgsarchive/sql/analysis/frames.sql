-- Frame times and summed fluxes of the selected files, read from their own Parquet parts
-- ($paths: PartStore.parts_of each file), so the cost does not grow with the archive.
SELECT file_name, frame, time_mjd, flux
FROM read_parquet($paths, union_by_name = true)
