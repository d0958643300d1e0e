-- Drop the anomalies of one program (or all) before storing the new search.
DELETE FROM anomalies WHERE $program IS NULL OR program = $program
