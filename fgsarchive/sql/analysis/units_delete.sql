-- Forget analysis units (Arrow table unit_keys: program, observation, visit, gs_id).
DELETE FROM analysis_units AS u
USING unit_keys AS k
WHERE u.program IS NOT DISTINCT FROM k.program AND u.observation IS NOT DISTINCT FROM k.observation
  AND u.visit IS NOT DISTINCT FROM k.visit AND u.gs_id IS NOT DISTINCT FROM k.gs_id
