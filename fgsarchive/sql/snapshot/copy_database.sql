-- Copy every table, view and sequence of the writer database into the attached snapshot.
COPY FROM DATABASE {source} TO {target}
