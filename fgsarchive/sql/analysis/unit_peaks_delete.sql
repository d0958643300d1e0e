-- Drop the visit periodogram peaks of some analysis units (Arrow table unit_keys).
DELETE FROM periodogram_peaks AS p
USING unit_keys AS k
WHERE p.grouped_by = 'visit'
  AND p.program IS NOT DISTINCT FROM k.program AND p.observation IS NOT DISTINCT FROM k.observation
  AND p.visit IS NOT DISTINCT FROM k.visit AND p.gs_id IS NOT DISTINCT FROM k.gs_id
