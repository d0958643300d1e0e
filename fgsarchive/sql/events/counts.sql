SELECT kind, count(*) AS n_events FROM events GROUP BY kind ORDER BY kind
