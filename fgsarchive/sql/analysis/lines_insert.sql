-- Store instrumental lines (Arrow table new_lines, columns by name).
INSERT INTO instrumental_lines BY NAME SELECT * FROM new_lines
