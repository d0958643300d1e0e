SELECT * EXCLUDE (header, dq)
FROM files
WHERE ($program IS NULL OR program = $program)
  AND ($observation IS NULL OR observation = $observation)
  AND ($visit IS NULL OR visit = $visit)
  AND ($product IS NULL OR product = $product)
  AND ($status IS NULL OR status = $status)
ORDER BY data_start_mjd, file_name
