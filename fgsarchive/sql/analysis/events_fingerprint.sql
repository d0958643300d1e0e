-- What the anomalies' event cross-match depends on: the events it may use (kinds the cross-match
-- keeps), counted and hashed.
SELECT count(*)::VARCHAR || ':' || coalesce(sum(hash(kind, start_mjd, end_mjd, program, file_name, detail)), 0)::VARCHAR
FROM events
WHERE kind NOT IN ('file_boundary', 'guide_star_change')
