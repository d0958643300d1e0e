-- Every periodogram peak of the archive, for learning instrumental lines across guide stars.
SELECT program, gs_id, parameter, grouped_by, frequency_hz, power, fap
FROM periodogram_peaks
WHERE gs_id IS NOT NULL
