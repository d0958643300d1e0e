SELECT product, status, count(*) AS n_files, coalesce(sum(n_frames), 0)::BIGINT AS n_frames
FROM files GROUP BY ALL ORDER BY product, status
