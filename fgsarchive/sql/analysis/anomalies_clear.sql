-- Drop every anomaly (their cross-match is rewritten whole).
DELETE FROM anomalies
