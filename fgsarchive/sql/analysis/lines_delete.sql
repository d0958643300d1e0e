-- Forget the instrumental lines before storing the ones learned now.
DELETE FROM instrumental_lines
