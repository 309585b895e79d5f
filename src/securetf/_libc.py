"""The C library through ctypes, loaded without starting a process.

``ctypes.util.find_library("c")`` runs ``ldconfig -p`` on every call: a process each time
(about 5 ms, tens on a busy machine), three times in every ``securetf run``. glibc's
soname is fixed; the dynamic linker finds it as it found it for Python itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's soname on every architecture securetf runs on.
LIBC_SONAME = "libc.so.6"
#: libfuse 3's soname (Debian's libfuse3-3), for mfusepy.
LIBFUSE3_SONAME = "libfuse3.so.3"


def load_libc() -> ctypes.CDLL:
    """A handle of the caller's own (the prototypes it sets are its own), errno kept."""
    try:
        return ctypes.CDLL(LIBC_SONAME, use_errno=True)
    except OSError:  # another C library (musl): ask the system where it is
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
