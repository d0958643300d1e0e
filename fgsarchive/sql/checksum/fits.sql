-- Order-independent checksum of the Gaussian fits (rounded to 1e-9 so float noise cannot differ).
SELECT count(*) AS n_rows,
       coalesce(bit_xor(hash(file_name, frame, fit_version, status, n_iter,
                             round(amplitude, 3), round(x_mean, 9), round(y_mean, 9),
                             round(x_stddev, 9), round(y_stddev, 9), round(theta, 9), round("offset", 3))), 0) AS checksum
FROM fits
