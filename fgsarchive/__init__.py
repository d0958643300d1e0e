"""fgsarchive: a queryable archive of JWST Fine Guidance Sensor guide-star frames.

>>> from fgsarchive import Archive
>>> arc = Archive("fgsarchive.duckdb")
"""

__version__ = "0.1.0"

__all__ = ["Archive", "__version__"]


def __getattr__(name: str):
    if name == "Archive":  # imported lazily: `fgsarchive --version` stays fast
        from .archive import Archive

        return Archive
    raise AttributeError(name)
