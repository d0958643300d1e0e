-- The stored visit periodogram peaks (optionally one program), labelled.
SELECT * FROM periodogram_peaks
WHERE grouped_by = 'visit' AND ($program IS NULL OR program = $program)
ORDER BY program, observation, visit, gs_id, parameter, rank
