-- The analysis units whose results are stored, with their fingerprints (optionally one program).
SELECT program, observation, visit, gs_id, fingerprint, pending
FROM analysis_units
WHERE $program IS NULL OR program = $program
