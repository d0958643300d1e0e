DELETE FROM files WHERE file_name IN (SELECT file_name FROM new_files)
