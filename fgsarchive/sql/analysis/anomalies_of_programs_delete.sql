-- Drop the anomalies of some programs (Arrow table programs) before their re-cross-matched rows
-- are stored.
DELETE FROM anomalies AS a USING programs AS p WHERE a.program = p.program
