"""Anonymous, read-only HTTP routes of the transparency log (``/v1/log/...``).

``/v1/log/checkpoint`` and ``/v1/log/tile/...`` are exactly the C2SP tlog-tiles layout
under the prefix ``/v1/log/``, so :class:`securetf.log.TileClient` (or a static mirror
that copies them) works against ``https://CAS/v1/log/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from securetf.cas.translog import MAX_ENTRIES, CasLog
from securetf.errors import NotFoundError, UsageError
from securetf.log import parse_tile_path
from securetf.log._limits import TILE_WIDTH
from securetf.protocol.messages import CosignatureKept, LogEntries, LogProof, WitnessCosignature

__all__ = ["log_router"]

_INDEX = Annotated[int, Query(ge=0, lt=2**63)]
_SIZE = Annotated[int, Query(ge=1, lt=2**63)]
# A full tile never changes; partial tiles neither, but a client asks for them only until
# the full one exists. The checkpoint changes with every decision.
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_FRESH = {"Cache-Control": "no-cache"}


def log_router(
    log: Callable[[], CasLog], errors: Callable[..., dict[int | str, dict[str, Any]]]
) -> APIRouter:
    """The routes over the log that ``log()`` gives."""
    router = APIRouter(prefix="/v1/log", tags=["transparency log"])

    @router.get("/checkpoint", response_class=PlainTextResponse, responses=errors())
    def checkpoint() -> Response:
        """The signed checkpoint (C2SP tlog-checkpoint note) of the log as it is now."""
        return Response(log().checkpoint(), media_type="text/plain; charset=utf-8", headers=_FRESH)

    @router.get("/witness/checkpoint", response_class=PlainTextResponse, responses=errors(404))
    def witness_checkpoint() -> Response:
        """The checkpoint the CAS's witnesses are asked to cosign (signed by the log only;
        404 when the CAS requires no witnesses)."""
        note = log().witness_checkpoint()
        return Response(note, media_type="text/plain; charset=utf-8", headers=_FRESH)

    @router.post("/witness/cosignature", responses=errors(400, 404))
    def cosignature(body: WitnessCosignature) -> CosignatureKept:
        """A witness's cosignature/v1 line for the checkpoint of ``size``: kept if it
        verifies with one of the CAS's witness keys (400 otherwise)."""
        return CosignatureKept(kept=log().add_cosignature(body.size, body.signature.encode()))

    @router.get("/entries", responses=errors(400, 404))
    def entries(
        start: _INDEX, count: Annotated[int, Query(ge=1, le=MAX_ENTRIES)] = MAX_ENTRIES
    ) -> LogEntries:
        """Entries ``start``.. (at most ``count``, at most 256, fewer at the end)."""
        return LogEntries(start=start, entries=log().entries(start, count))

    @router.get("/proof/inclusion", responses=errors(400, 404))
    def inclusion(index: _INDEX, size: _SIZE) -> LogProof:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size``."""
        hashes = log().inclusion_proof(index, size)
        return LogProof(kind="inclusion", first=index, second=size, hashes=hashes)

    @router.get("/proof/consistency", responses=errors(400, 404))
    def consistency(
        first: Annotated[int, Query(alias="from", ge=1, lt=2**63)],
        second: Annotated[int, Query(alias="to", ge=1, lt=2**63)],
    ) -> LogProof:
        """RFC 9162 consistency proof of the tree of ``from`` with the tree of ``to``."""
        hashes = log().consistency_proof(first, second)
        return LogProof(kind="consistency", first=first, second=second, hashes=hashes)

    @router.get(
        "/tile/{path:path}",
        response_class=Response,
        responses={**errors(400, 404), 200: {"content": {"application/octet-stream": {}}}},
    )
    def tile(path: str) -> Response:
        """A C2SP tlog-tiles tile (``tile/<L>/<N>[.p/<W>]``) or entry bundle
        (``tile/entries/<N>[.p/<W>]``); 404 until the tree has all of it."""
        try:
            level, index, width = parse_tile_path("tile/" + path)
        except UsageError:
            raise NotFoundError(f"no tile at tile/{path[:200]}") from None
        data = log().tile(level, index, width)
        headers = _IMMUTABLE if width == TILE_WIDTH else _FRESH
        return Response(data, media_type="application/octet-stream", headers=headers)

    return router
