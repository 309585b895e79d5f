"""The log key a client pins: endorsed by the attested audit key, named with its origin."""

from __future__ import annotations

import pytest

from securetf.crypto import SigningKey
from securetf.errors import AuthenticationError
from securetf.log import CosignatureSigner, Ed25519Signer
from securetf.protocol.logkey import check_vkey_endorsement, log_origin, vkey_endorsement


def test_an_endorsed_log_key_is_accepted() -> None:
    audit = SigningKey.generate()
    vkey = Ed25519Signer(log_origin(audit.verify_key()), SigningKey.generate()).verifier().vkey()
    verifier = check_vkey_endorsement(audit.verify_key(), vkey, vkey_endorsement(audit, vkey))
    assert verifier.vkey() == vkey
    assert verifier.name.startswith("securetf.cas/")
    assert len(verifier.name) == len("securetf.cas/") + 16


def test_another_audit_key_or_another_vkey_is_refused() -> None:
    audit, other = SigningKey.generate(), SigningKey.generate()
    vkey = Ed25519Signer(log_origin(audit.verify_key()), SigningKey.generate()).verifier().vkey()
    swapped = Ed25519Signer(log_origin(audit.verify_key()), SigningKey.generate())
    with pytest.raises(AuthenticationError, match="not endorsed"):
        check_vkey_endorsement(audit.verify_key(), vkey, vkey_endorsement(other, vkey))
    with pytest.raises(AuthenticationError, match="not endorsed"):
        check_vkey_endorsement(
            audit.verify_key(), swapped.verifier().vkey(), vkey_endorsement(audit, vkey)
        )


def test_a_vkey_with_another_origin_or_type_is_refused_even_if_endorsed() -> None:
    audit = SigningKey.generate()
    named = Ed25519Signer("securetf.cas/0000000000000000", SigningKey.generate())
    vkey = named.verifier().vkey()
    with pytest.raises(AuthenticationError, match="named"):
        check_vkey_endorsement(audit.verify_key(), vkey, vkey_endorsement(audit, vkey))
    witness = CosignatureSigner(
        log_origin(audit.verify_key()), SigningKey.generate(), clock=lambda: 0
    )
    wkey = witness.verifier().vkey()
    with pytest.raises(AuthenticationError, match="Ed25519 note key"):
        check_vkey_endorsement(audit.verify_key(), wkey, vkey_endorsement(audit, wkey))
    with pytest.raises(AuthenticationError, match="not a vkey"):
        check_vkey_endorsement(audit.verify_key(), "junk", vkey_endorsement(audit, "junk"))
