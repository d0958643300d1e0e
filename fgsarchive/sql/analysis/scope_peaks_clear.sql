-- First incremental analyse of a program (or all): visit peaks without unit fingerprints go.
DELETE FROM periodogram_peaks
WHERE grouped_by = 'visit' AND ($program IS NULL OR program = $program)
