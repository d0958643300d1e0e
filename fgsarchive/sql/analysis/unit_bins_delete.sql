-- Drop the variability bins of some analysis units (Arrow table unit_keys).
DELETE FROM variability_bins AS b
USING unit_keys AS k
WHERE b.program IS NOT DISTINCT FROM k.program AND b.observation IS NOT DISTINCT FROM k.observation
  AND b.visit IS NOT DISTINCT FROM k.visit AND b.gs_id IS NOT DISTINCT FROM k.gs_id
