"""Every RFC 6962 proof vector of transparency-dev/merkle gives exactly its wantErr.

The vectors live in ../shared/testvectors/tlog/rfc6962 (PROVENANCE.md there names the
commit); the counts below make a silently empty or shrunken directory fail.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from securetf.errors import IntegrityError
from securetf.log import verify_consistency, verify_inclusion
from tests.shared import shared_file

INCLUSION_CASES = 98
CONSISTENCY_CASES = 98


def _cases(kind: str) -> list[tuple[str, dict[str, Any]]]:
    root = shared_file("testvectors", "tlog", "rfc6962", kind)
    return [
        (str(path.relative_to(root)), json.loads(path.read_text()))
        for path in sorted(root.rglob("*.json"))
    ]


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b64(h) for h in value or []]


def _outcome(check: Any) -> bool:
    """True when the check raised (the vectors' wantErr)."""
    try:
        check()
    except IntegrityError:
        return True
    return False


def test_every_inclusion_vector_gives_its_expected_outcome() -> None:
    cases = _cases("inclusion")
    wrong = []
    for name, case in cases:
        got = _outcome(
            lambda c=case: verify_inclusion(
                _b64(c["leafHash"]),
                c["leafIdx"],
                c["treeSize"],
                _proof(c["proof"]),
                _b64(c["root"]),
            )
        )
        if got != case["wantErr"]:
            wrong.append(f"{name} ({case['desc']}): wantErr={case['wantErr']}")
    assert wrong == []
    assert len(cases) == INCLUSION_CASES
    assert sum(not c["wantErr"] for _, c in cases) >= 5  # the happy paths ran too


def test_every_consistency_vector_gives_its_expected_outcome() -> None:
    cases = _cases("consistency")
    wrong = []
    for name, case in cases:
        got = _outcome(
            lambda c=case: verify_consistency(
                c["size1"], c["size2"], _proof(c["proof"]), _b64(c["root1"]), _b64(c["root2"])
            )
        )
        if got != case["wantErr"]:
            wrong.append(f"{name} ({case['desc']}): wantErr={case['wantErr']}")
    assert wrong == []
    assert len(cases) == CONSISTENCY_CASES
    assert sum(not c["wantErr"] for _, c in cases) >= 5


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_the_vector_directories_hold_only_json(kind: str) -> None:
    root: Path = shared_file("testvectors", "tlog", "rfc6962", kind)
    others = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert others == []
