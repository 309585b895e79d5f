"""The SEV-SNP certificate table: the certificates a host hands its guest with a report.

An SNP host may attach the chip's VCEK (and the ASK and ARK) to an extended guest request;
Linux returns them as configfs-tsm's ``auxblob`` (and from ``SNP_GET_EXT_REPORT``). With it,
a verifier needs no round trip to AMD's KDS. The layout (GHCB specification, "SNP Extended
Guest Request"; AMD's ``cert-table.c``)::

    entry[i]  = guid[16] || offset u32 || length u32     (24 bytes, little-endian)
    entry[n]  = 24 zero bytes                             (the terminator)
    data      = the certificates, at ``offset`` counted from the start of the table

GUIDs are in RFC 4122 byte order (as ``uuid_parse`` writes them). The kernel trims the blob
after the last certificate, the ioctl may pad it: bytes after the certificates are ignored.
Everything else that is out of place is an :class:`AttestationError`, because the host
that wrote the table is not trusted. The certificates themselves are only cut out here;
:func:`securetf.attestation.verify_snp` decides whether they are any good.
"""

from __future__ import annotations

import struct
import uuid

from securetf.errors import AttestationError

__all__ = [
    "ARK_GUID",
    "ASK_GUID",
    "ENTRY_SIZE",
    "MAX_TABLE_SIZE",
    "VCEK_GUID",
    "VLEK_GUID",
    "cert_table_entries",
    "vcek_from_cert_table",
]

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
ENTRY_SIZE = 24
#: Far above what a host attaches (Linux allows 16 KiB); more is refused unread.
MAX_TABLE_SIZE = 64 * 1024
_MAX_ENTRIES = 64
_TERMINATOR = bytes(ENTRY_SIZE)


def cert_table_entries(aux: bytes) -> dict[uuid.UUID, bytes]:
    """Every certificate of the table ``aux``, by GUID; ``{}`` for an empty blob."""
    if not aux:
        return {}
    if len(aux) > MAX_TABLE_SIZE:
        raise AttestationError(
            f"the SNP certificate table is {len(aux)} bytes, more than {MAX_TABLE_SIZE}"
        )
    # 1. The entries, up to the terminator.
    raw_entries: list[tuple[uuid.UUID, int, int]] = []
    at = 0
    while True:
        if at + ENTRY_SIZE > len(aux):
            raise AttestationError(
                "the SNP certificate table has no all-zero terminating entry "
                f"(truncated after {len(raw_entries)} entries?)"
            )
        entry = aux[at : at + ENTRY_SIZE]
        at += ENTRY_SIZE
        if entry == _TERMINATOR:
            break
        if len(raw_entries) == _MAX_ENTRIES:
            raise AttestationError(
                f"the SNP certificate table has more than {_MAX_ENTRIES} entries"
            )
        guid = uuid.UUID(bytes=entry[:16])
        if guid.int == 0:
            raise AttestationError("an SNP certificate table entry has a zero GUID but data")
        offset, length = struct.unpack_from("<II", entry, 16)
        raw_entries.append((guid, offset, length))
    # 2. Each certificate lies after the table and inside the blob; each GUID once.
    certs: dict[uuid.UUID, bytes] = {}
    for guid, offset, length in raw_entries:
        if guid in certs:
            raise AttestationError(f"the SNP certificate table names {guid} twice")
        if length == 0:
            raise AttestationError(f"the SNP certificate table's entry {guid} is empty")
        if offset < at:
            raise AttestationError(
                f"the SNP certificate table's entry {guid} points into the table itself "
                f"(offset {offset}, the table ends at {at})"
            )
        if offset + length > len(aux):
            raise AttestationError(
                f"the SNP certificate table's entry {guid} runs past the end of the data "
                f"(offset {offset} + length {length} > {len(aux)} bytes; truncated?)"
            )
        certs[guid] = aux[offset : offset + length]
    return certs


def vcek_from_cert_table(aux: bytes) -> bytes | None:
    """The VCEK in the certificate table ``aux``; None if the host attached none.

    None also for a table with a VLEK instead: securetf verifies VCEK-signed reports only,
    and :func:`verify_snp` says so when given the report.
    """
    return cert_table_entries(aux).get(VCEK_GUID)
