-- First incremental analyse of a program (or all): anomalies stored without unit fingerprints
-- (single-analysis commands, older versions) go, since no unit vouches for them.
DELETE FROM anomalies WHERE $program IS NULL OR program = $program
