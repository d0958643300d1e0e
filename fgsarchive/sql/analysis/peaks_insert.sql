-- Append new periodogram peaks (Arrow table new_peaks, columns by name).
INSERT INTO periodogram_peaks BY NAME SELECT * FROM new_peaks
