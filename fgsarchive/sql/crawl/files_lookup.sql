-- What the archive knows about some MAST files ($names): crawl state and ingest status.
SELECT
    n.file_name,
    m.state,
    m.attempts,
    m.local_path,
    f.status AS file_status,
    f.file_bytes
FROM (SELECT unnest($names::VARCHAR[]) AS file_name) AS n
LEFT JOIN mast_files AS m ON m.file_name = n.file_name
LEFT JOIN (
    SELECT file_name, any_value(status) AS status, any_value(file_bytes) AS file_bytes
    FROM files
    GROUP BY file_name
) AS f ON f.file_name = n.file_name
