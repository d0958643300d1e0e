-- Every periodogram peak of the archive, for learning instrumental lines across guide stars, with
-- the number of cycles its group's baseline holds (peaks of fewer than a few cycles are red noise).
SELECT program, gs_id, parameter, grouped_by, frequency_hz, power, fap,
       frequency_hz * (end_mjd - start_mjd) * 86400.0 AS n_cycles
FROM periodogram_peaks
WHERE gs_id IS NOT NULL
