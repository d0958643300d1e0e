"""fgsarchive: a queryable archive of JWST Fine Guidance Sensor guide-star frames."""

__version__ = "0.1.0"

__all__ = ["__version__"]
