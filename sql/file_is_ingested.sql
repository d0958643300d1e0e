SELECT count(*) > 0 FROM files WHERE file_name = $file_name AND status = 'ingested'
