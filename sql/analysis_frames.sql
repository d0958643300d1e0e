-- Frame times and summed fluxes of the selected files of one program (hive partition pruned).
SELECT file_name, frame, time_mjd, flux
FROM frames
WHERE program = $program AND list_contains($files, file_name)
