"""X.509 helpers: parsing, strict PEM chains, issuer checks, malformed input."""

from __future__ import annotations

import pytest

from securetf.crypto import Certificate
from securetf.errors import AuthenticationError, UsageError
from tests.attestation.vectors import vector_bytes


def amd(name: str) -> bytes:
    """A Milan certificate of the real SNP vectors: ``ark``, ``ask`` or ``vcek``."""
    return vector_bytes(f"snp/{name}-milan.{'der' if name == 'vcek' else 'pem'}")


def test_amd_chain_and_fields() -> None:
    ark, ask, vcek = (Certificate.load(amd(name)) for name in ("ark", "ask", "vcek"))
    ark.verify_signed_by(ark)
    ask.verify_signed_by(ark)
    vcek.verify_signed_by(ask)
    assert (vcek.issuer_cn, vcek.subject_cn) == ("SEV-Milan", "SEV-VCEK")
    assert vcek.signature_scheme() == "rsa-pss-sha384/48"
    assert vcek.public_key_kind() == "ec-secp384r1"
    assert ark.public_key_kind() == "rsa-4096"
    assert vcek.extension_value("1.3.6.1.4.1.3704.1.2") == b"\x16\x08Milan-B0"
    assert vcek.extension_value("1.2.3") is None
    assert vcek.valid_at(vcek.not_before)
    assert not vcek.valid_at(vcek.not_after + 1)


def test_wrong_issuer_raises() -> None:
    ark, vcek = Certificate.load(amd("ark")), Certificate.load(amd("vcek"))
    with pytest.raises(AuthenticationError, match="names issuer"):
        vcek.verify_signed_by(ark)


def test_strict_pem_chain() -> None:
    ark, ask = amd("ark"), amd("ask")
    assert len(Certificate.load_pem_chain(ask + ark + b"\0")) == 2
    with pytest.raises(UsageError, match="canonically"):
        Certificate.load_pem_chain(ask.replace(b"-----\nMII", b"-----\n\nMII"))
    with pytest.raises(UsageError, match="not a PEM certificate"):
        Certificate.load_pem_chain(ask + b"junk")
    with pytest.raises(UsageError, match="no certificate"):
        Certificate.load_pem_chain(b"")


@pytest.mark.parametrize("data", [b"", b"\x30\x03\x02\x01\x00"])
def test_malformed_certificates_are_usage_errors(data: bytes) -> None:
    with pytest.raises(UsageError):
        Certificate.load(data)


@pytest.mark.parametrize(("name", "cut"), [("ark", slice(None, -100)), ("vcek", slice(None, 200))])
def test_truncated_certificates_are_usage_errors(name: str, cut: slice) -> None:
    with pytest.raises(UsageError):
        Certificate.load(amd(name)[cut])
