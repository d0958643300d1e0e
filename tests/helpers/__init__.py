"""Shared test helpers: synthetic analysis series (analysis_synth) and the small people-facing
archive (people_archive)."""
