-- The visit_summary view (views_analysis.sql) for one program or all, in time order.
SELECT * FROM visit_summary
WHERE $program IS NULL OR program = $program
ORDER BY start_mjd, gs_id
