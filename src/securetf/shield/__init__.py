"""The shields: what the runtime puts between an unmodified program and untrusted storage.

The file system shield (:mod:`securetf.shield.fs`) shows sealed volumes as plain files; the
network shield (:mod:`securetf.shield.net`) carries a program's connections to its peers
inside mutual TLS.
"""

from securetf.shield.fs import FuseUnavailableError, Mount, check_fuse, mount

__all__ = ["FuseUnavailableError", "Mount", "check_fuse", "mount"]
