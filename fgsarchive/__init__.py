"""fgsarchive: a queryable archive of JWST Fine Guidance Sensor guide-star frames.

>>> from fgsarchive import Archive
>>> arc = Archive("fgsarchive.duckdb")
>>> from fgsarchive import to_timeseries   # to_timeseries(arc.timeseries(...)): astropy TimeSeries
"""

__version__ = "0.1.0"

__all__ = ["Archive", "to_timeseries", "to_lightkurve", "__version__"]


def __getattr__(name: str):
    if name in ("Archive", "to_timeseries", "to_lightkurve"):  # lazily: `--version` stays fast
        from . import archive

        return getattr(archive, name)
    raise AttributeError(name)
