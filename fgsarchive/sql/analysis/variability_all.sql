-- The stored variability rows, best first.
SELECT * FROM variability ORDER BY rank
