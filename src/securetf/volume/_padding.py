"""Size padding, so storage sees a size class instead of the exact size.

PADMÉ (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication
with PURBs", PETS 2019): at most 12% overhead, and a padded length leaks O(log log L) bits.
"""

from __future__ import annotations

from securetf.volume._settings import MIN_PADDED_SIZE


def padme(length: int) -> int:
    """The PADMÉ padded length of ``length`` (>= 2)."""
    if length < 2:
        return length
    e = length.bit_length() - 1  # floor(log2(L))
    s = e.bit_length()  # floor(log2(E)) + 1
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def padded_size(size: int) -> int:
    """Bytes a file of ``size`` bytes occupies inside its chunks (data, then zeros)."""
    return padme(max(size, MIN_PADDED_SIZE))
