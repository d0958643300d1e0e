SELECT file_name, status, file_bytes, n_frames FROM files
