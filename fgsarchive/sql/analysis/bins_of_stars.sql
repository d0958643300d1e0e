-- The stored variability bins of some guide stars (Arrow table stars: gs_id).
SELECT gs_id, visit_key, bin, x, e, t_s, n
FROM variability_bins
WHERE gs_id IN (SELECT gs_id FROM stars)
ORDER BY gs_id, visit_key, bin
