-- Files of one program (or all) with Gaussian fits, of any fit version.
SELECT DISTINCT program, file_name
FROM fits
WHERE $program IS NULL OR program = $program
