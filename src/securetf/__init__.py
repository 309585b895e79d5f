"""securetf: confidential machine learning on untrusted infrastructure."""

from securetf._version import __version__

__all__ = ["__version__"]
