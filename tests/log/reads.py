"""Counting what a log tree reads from its store, for tests that a kept tile or edge
spares the read."""

from __future__ import annotations

import pytest

from securetf.log._tree import StoreTiles


def count_tile_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Every (level, index, width) of a tile the trees read from their stores from now on."""
    reads: list[tuple[int, int, int]] = []
    real = StoreTiles.tile_hashes

    def tile_hashes(self: StoreTiles, level: int, index: int, width: int) -> list[bytes]:
        reads.append((level, index, width))
        return list(real(self, level, index, width))

    monkeypatch.setattr(StoreTiles, "tile_hashes", tile_hashes)
    return reads
