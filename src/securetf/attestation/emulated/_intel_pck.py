"""Intel's SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1), DER-encoded.

Why a hand-written encoder: ``cryptography`` builds certificates but not arbitrary ASN.1,
and the extension is only nested ``SEQUENCE { OID, value }`` pairs, which dcap-qvl walks by
OID. The layout follows Intel's "PCK Certificate and CRL Profile"::

    SGXExtensions ::= SEQUENCE {
      ppid (.1) OCTET STRING (16),
      tcb (.2) SEQUENCE { compNN (.2.1 .. .2.16) INTEGER, pcesvn (.2.17) INTEGER,
                          cpusvn (.2.18) OCTET STRING (16) },
      pceid (.3) OCTET STRING (2), fmspc (.4) OCTET STRING (6), sgxType (.5) ENUMERATED,
      platformInstanceID (.6) OCTET STRING (16),          -- Platform CA certificates only
      configuration (.7) SEQUENCE { dynamicPlatform (.7.1), cachedKeys (.7.2),
                                    smtEnabled (.7.3) BOOLEAN } }
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from securetf.errors import UsageError

__all__ = ["SGX_EXTENSION_OID", "PckTcb", "sgx_extension"]

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_SGX_TYPE_SCALABLE = 1


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _unsigned(tag: int, value: int) -> bytes:
    """A non-negative INTEGER or ENUMERATED (a leading zero keeps the sign bit clear)."""
    return _tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _seq(items: Sequence[bytes]) -> bytes:
    return _tlv(0x30, b"".join(items))


def _entry(oid: str, value: bytes) -> bytes:
    return _seq([_oid(oid), value])


@dataclass(frozen=True)
class PckTcb:
    """A platform's TCB as its PCK certificate states it: 16 component SVNs and the PCESVN.

    The CPUSVN in the certificate is the component SVNs as bytes (Intel's "TCBm").
    """

    components: tuple[int, ...]
    pce_svn: int

    def __post_init__(self) -> None:
        if len(self.components) != 16 or not all(0 <= c <= 255 for c in self.components):
            raise UsageError("a PCK TCB has 16 component SVNs, each 0..255")
        if not 0 <= self.pce_svn <= 0x7FFF:
            raise UsageError("a PCESVN is 0..32767")

    @property
    def cpu_svn(self) -> bytes:
        return bytes(self.components)


def sgx_extension(
    *, ppid: bytes, tcb: PckTcb, pce_id: bytes, fmspc: bytes, platform_instance_id: bytes
) -> bytes:
    """The extension's DER value for a PCK certificate issued by the PCK Platform CA."""
    if len(ppid) != 16 or len(pce_id) != 2 or len(fmspc) != 6 or len(platform_instance_id) != 16:
        raise UsageError("PPID and platform instance ID are 16 bytes, PCE-ID 2, FMSPC 6")
    base = SGX_EXTENSION_OID
    components = [
        _entry(f"{base}.2.{i + 1}", _unsigned(0x02, svn)) for i, svn in enumerate(tcb.components)
    ]
    tcb_seq = _seq(
        [
            *components,
            _entry(f"{base}.2.17", _unsigned(0x02, tcb.pce_svn)),
            _entry(f"{base}.2.18", _tlv(0x04, tcb.cpu_svn)),
        ]
    )
    false = _tlv(0x01, b"\x00")
    configuration = _seq(
        [_entry(f"{base}.7.{i}", false) for i in (1, 2, 3)]  # static, no cached keys, no SMT
    )
    return _seq(
        [
            _entry(f"{base}.1", _tlv(0x04, ppid)),
            _entry(f"{base}.2", tcb_seq),
            _entry(f"{base}.3", _tlv(0x04, pce_id)),
            _entry(f"{base}.4", _tlv(0x04, fmspc)),
            _entry(f"{base}.5", _unsigned(0x0A, _SGX_TYPE_SCALABLE)),
            _entry(f"{base}.6", _tlv(0x04, platform_instance_id)),
            _entry(f"{base}.7", configuration),
        ]
    )
