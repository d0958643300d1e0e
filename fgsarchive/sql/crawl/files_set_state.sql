-- Update the state of files (updates: file_name, state, error, local_path, attempt, updated_at).
UPDATE mast_files SET
    state = u.state,
    error = u.error,
    local_path = coalesce(u.local_path, mast_files.local_path),
    attempts = mast_files.attempts + u.attempt,
    updated_at = u.updated_at
FROM updates AS u
WHERE mast_files.file_name = u.file_name
