-- Log one analysis run.
INSERT INTO analysis_runs (analysis, program, options, n_groups, n_rows, seconds, finished_at)
VALUES ($analysis, $program, $options, $n_groups, $n_rows, $seconds, now() AT TIME ZONE 'UTC')
