"""Physical simulator of JWST FGS guide-star products (a package; see runner.py)."""

from .runner import *  # noqa: F403
from .runner import __all__  # noqa: F401
