-- Crawl progress per program and state (TEMP view, created on every connection).
CREATE OR REPLACE TEMP VIEW crawl_progress AS
SELECT
    program,
    state,
    count(*) AS n_files,
    coalesce(sum(file_size), 0)::BIGINT AS n_bytes,
    max(updated_at) AS updated_at
FROM mast_files
GROUP BY program, state
ORDER BY program, state;
