-- The stored anomalies of some programs (Arrow table programs), to cross-match them again with
-- their changed events.
SELECT a.* FROM anomalies AS a SEMI JOIN programs AS p ON a.program = p.program
ORDER BY a.start_mjd
