"""cxrbench: compare chest X-ray classifiers under one identical, reproducible protocol."""

from cxrbench.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["hookimpl", "__version__"]
