"""Alias of :mod:`fgsarchive.analysis.runner` (the analyses runner), kept because other code imports
``fgsarchive.analysis.run.run_all_analyses`` (the crawl pipeline, tests/conftest.py, scripts)."""

from .runner import AnalysisResults, run_all_analyses

__all__ = ["AnalysisResults", "run_all_analyses"]
