-- Drop the periodogram peaks about to be recomputed: one program (or all), one grouping, some parameters.
DELETE FROM periodogram_peaks
WHERE ($program IS NULL OR program = $program)
  AND grouped_by = $grouped_by
  AND list_contains($parameters, parameter)
