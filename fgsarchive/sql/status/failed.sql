SELECT file_name, error FROM files WHERE status = 'failed' ORDER BY file_name
