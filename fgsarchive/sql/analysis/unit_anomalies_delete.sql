-- Drop the anomalies of some analysis units (Arrow table unit_keys) before storing new ones.
DELETE FROM anomalies AS a
USING unit_keys AS k
WHERE a.program IS NOT DISTINCT FROM k.program AND a.observation IS NOT DISTINCT FROM k.observation
  AND a.visit IS NOT DISTINCT FROM k.visit AND a.gs_id IS NOT DISTINCT FROM k.gs_id
