"""One lock and one error mapping around every FUSE operation.

The volume library is single-threaded, so every operation (and the mount's commit, from
another thread) runs under one lock. Errors become errno values: an integrity failure is
EIO, always and without detail, so the program gets an I/O error and never a tampered byte.
"""

from __future__ import annotations

import errno
import functools
import logging
import threading
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from securetf.errors import IntegrityError, NotFoundError, UsageError
from securetf.shield.fs._fuse import FuseOSError

log = logging.getLogger("securetf.shield.fs")

P = ParamSpec("P")
R = TypeVar("R")


class Locked(Protocol):
    guard: threading.Lock


S = TypeVar("S", bound=Locked)


def fuse_error(code: int) -> OSError:
    return FuseOSError(code)


def operation(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run ``fn`` under the volume lock and turn every failure into an errno for FUSE."""

    @functools.wraps(fn)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with self.guard:
                return fn(self, *args, **kwargs)
        except FuseOSError:
            raise
        except IntegrityError:
            log.error("integrity check failed in %s: answering EIO", fn.__name__)
            raise fuse_error(errno.EIO) from None
        except NotFoundError:
            raise fuse_error(errno.ENOENT) from None
        except UsageError as exc:
            log.info("%s refused: %s", fn.__name__, exc)
            raise fuse_error(errno.EINVAL) from None
        except OSError as exc:
            raise fuse_error(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("unexpected failure in %s: answering EIO", fn.__name__)
            raise fuse_error(errno.EIO) from None

    return wrapper
