-- What each program's event cross-match depends on: the events its anomalies may coincide with
-- (its own, and archive-wide ones within $window_days of its guide-star files), in the kinds the
-- cross-match keeps, counted and hashed. A program whose fingerprint changed gets its stored
-- anomalies cross-matched again; the others are left alone.
WITH spans AS (
    SELECT program, min(data_start_mjd) - $window_days AS lo, max(data_end_mjd) + $window_days AS hi
    FROM files
    WHERE product = 'fg' AND data_start_mjd IS NOT NULL
    GROUP BY program
), kept AS (
    SELECT program, kind, start_mjd, end_mjd, file_name, detail,
           coalesce(end_mjd, start_mjd) AS last_mjd
    FROM events
    WHERE kind NOT IN ('file_boundary', 'guide_star_change')
), own AS (
    SELECT program, count(*) AS n, sum(hash(kind, start_mjd, end_mjd, program, file_name, detail)) AS h
    FROM kept
    WHERE program IS NOT NULL
    GROUP BY program
), shared AS (
    SELECT s.program, count(*) AS n, sum(hash(e.kind, e.start_mjd, e.end_mjd, e.file_name, e.detail)) AS h
    FROM spans s
    JOIN kept e ON e.program IS NULL AND e.start_mjd <= s.hi AND e.last_mjd >= s.lo
    GROUP BY s.program
)
SELECT s.program,
       coalesce(own.n, 0)::VARCHAR || ':' || coalesce(own.h, 0)::VARCHAR || '|'
       || coalesce(shared.n, 0)::VARCHAR || ':' || coalesce(shared.h, 0)::VARCHAR AS fingerprint
FROM spans s
LEFT JOIN own USING (program)
LEFT JOIN shared USING (program)
ORDER BY s.program
