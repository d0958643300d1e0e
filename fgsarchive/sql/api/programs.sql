SELECT * FROM programs ORDER BY program
