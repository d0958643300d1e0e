-- A program with no stored analysis unit (never analysed incrementally, or invalidated by a
-- single-analysis command): its anomalies go before its units are stored, since no unit vouches
-- for them.
DELETE FROM anomalies WHERE $program IS NULL OR program = $program
