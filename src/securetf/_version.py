"""The package version; the runtime's measurement covers it."""

__version__ = "0.1.0"
