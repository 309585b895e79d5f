"""A provisioning answer brings its own log proofs (a checkpoint, both entries' inclusion
proofs, the consistency proof from the client's kept checkpoint), so the runtime proves it
in one round trip; and a bundle that does not prove what it claims is refused, never
taken as proof (#14 item 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from securetf.client import CasClient
from securetf.client.caslog import CasLogClient
from securetf.crypto import SigningKey
from securetf.log import Checkpoint, Ed25519Signer, LogRollbackError, ProofError, sign_note
from securetf.log._errors import NoteError
from securetf.protocol.messages import LogBundle, ProvisionResponse
from tests.cas.support import Runtime
from tests.client.real_cas import RealCas, real_cas

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCas]:
    yield from real_cas(tmp_path_factory.mktemp("cas"))


@pytest.fixture(scope="module")
def policy(cas: RealCas) -> str:
    return cas.new_policy()


def _provision(cas: RealCas, policy: str, client: CasClient) -> ProvisionResponse:
    runtime = Runtime(home=cas.proc.home)
    request = runtime.request(client.nonce().nonce, service="train")
    return client.provision(request.model_copy(update={"policy": policy}))


def _answered(
    client: CasClient, change: Callable[[LogBundle], LogBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every provisioning answer's bundle rewritten by ``change`` on its way in."""
    real = client._model

    def model(kind: type[Any], *args: Any) -> Any:
        answer = real(kind, *args)
        if isinstance(answer, ProvisionResponse) and answer.log_bundle is not None:
            answer = answer.model_copy(update={"log_bundle": change(answer.log_bundle)})
        return answer

    monkeypatch.setattr(client, "_model", model)


def _fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    real = CasLogClient.fetch

    def fetch(self: CasLogClient, path: str, limit: int) -> bytes:
        asked.append(path)
        return real(self, path, limit)

    monkeypatch.setattr(CasLogClient, "fetch", fetch)
    return asked


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def test_a_provisioning_is_proven_from_its_answer_alone(
    cas: RealCas, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cas.client() as client:
        _provision(cas, policy, client)  # a kept checkpoint to extend
        asked = _fetches(monkeypatch)
        answer = _provision(cas, policy, client)
    assert answer.log_bundle is not None
    assert answer.log_bundle.consistency_from is not None
    assert asked == []  # no request to the log: the answer carried every proof
    kept = next((cas.proc.home / "cas-pins").glob("*.checkpoint")).read_bytes()
    assert kept == answer.log_bundle.checkpoint.encode()  # ... and it is kept


def test_a_first_provisioning_with_nothing_kept_is_proven_from_its_answer(
    cas: RealCas, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for kept in (cas.proc.home / "cas-pins").glob("*.checkpoint"):
        kept.unlink()
    asked = _fetches(monkeypatch)
    with cas.client() as client:
        answer = _provision(cas, policy, client)
    assert answer.log_bundle is not None
    assert answer.log_bundle.consistency_from is None
    assert asked == []


def _entry_data(bundle: LogBundle) -> LogBundle:
    first, *rest = bundle.entries
    return bundle.model_copy(
        update={"entries": [first.model_copy(update={"data": _flip(first.data)}), *rest]}
    )


def _proof_hash(bundle: LogBundle) -> LogBundle:
    entries = [
        e.model_copy(update={"proof": [_flip(e.proof[0]), *e.proof[1:]]}) for e in bundle.entries
    ]
    return bundle.model_copy(update={"entries": entries})


def _consistency(bundle: LogBundle) -> LogBundle:
    assert bundle.consistency, "the test needs a kept checkpoint smaller than the answer's"
    return bundle.model_copy(
        update={"consistency": [_flip(bundle.consistency[0]), *bundle.consistency[1:]]}
    )


def _other_key(bundle: LogBundle) -> LogBundle:
    text = bundle.checkpoint.encode().split(b"\n\n")[0] + b"\n"
    origin = Checkpoint.parse(text).origin
    forged = sign_note(text, [Ed25519Signer(origin, SigningKey.generate())])
    return bundle.model_copy(update={"checkpoint": forged.decode()})


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (_entry_data, ProofError, "does not lead to the root"),  # an entry's bytes changed
        (_proof_hash, ProofError, "does not lead to the root"),  # a proof that leads elsewhere
        (_consistency, ProofError, "forked"),  # the tree does not extend the kept one
        (
            _other_key,
            NoteError,
            "not signed by any trusted key",
        ),  # a checkpoint the pinned log key did not sign
    ],
    ids=["entry", "inclusion", "consistency", "signer"],
)
def test_a_bundle_that_does_not_prove_its_answer_is_refused(
    cas: RealCas,
    policy: str,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[LogBundle], LogBundle],
    error: type[Exception],
    match: str,
) -> None:
    with cas.client() as client:
        _provision(cas, policy, client)  # kept: a checkpoint the answer must extend
        _provision(cas, policy, cas.client())  # another runtime: the log grows meanwhile
        kept_before = next((cas.proc.home / "cas-pins").glob("*.checkpoint")).read_bytes()
        _answered(client, change, monkeypatch)
        with pytest.raises(error, match=match):
            _provision(cas, policy, client)
    kept = next((cas.proc.home / "cas-pins").glob("*.checkpoint")).read_bytes()
    if change in (_consistency, _other_key):
        assert kept == kept_before  # a checkpoint that does not verify is never kept


def test_a_kept_checkpoint_edited_between_two_answers_is_checked_again(
    cas: RealCas, policy: str
) -> None:
    """A client remembers the kept note it verified, by its bytes: a file changed under it
    (another key's note claiming a larger tree, which would hide a rollback) is verified
    again and refused, however many answers the same client proved before."""
    with cas.client() as client:
        _provision(cas, policy, client)
        _provision(cas, policy, client)
        path = next((cas.proc.home / "cas-pins").glob("*.checkpoint"))
        kept = path.read_bytes()
        origin = Checkpoint.parse(kept.split(b"\n\n")[0] + b"\n").origin
        forged = sign_note(
            Checkpoint(origin, 10**9, bytes(32)).text(),
            [Ed25519Signer(origin, SigningKey.generate())],
        )
        path.write_bytes(forged)
        try:
            with pytest.raises(NoteError, match="not signed by any trusted key"):
                _provision(cas, policy, client)
            assert path.read_bytes() == forged  # refused, and nothing kept over it
        finally:
            path.write_bytes(kept)  # the module's other tests share this home


def test_an_older_bundle_replayed_proves_nothing(
    cas: RealCas, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cas.client() as client:
        old = _provision(cas, policy, client).log_bundle
        assert old is not None
        _provision(cas, policy, client)  # the kept checkpoint moves past the old one
        kept = next((cas.proc.home / "cas-pins").glob("*.checkpoint")).read_bytes()
        _answered(client, lambda _: old, monkeypatch)
        asked = _fetches(monkeypatch)
        _provision(cas, policy, client)
    # The replayed bundle was not taken: the answer was proven against the log's current
    # checkpoint, fetched and shown to extend the kept one, which then moved on.
    assert "checkpoint" in asked
    assert next((cas.proc.home / "cas-pins").glob("*.checkpoint")).read_bytes() != kept


def test_a_later_checkpoint_kept_meanwhile_by_another_runtime_is_no_rollback(
    cas: RealCas, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runtimes of one home provision at once: the other keeps a later checkpoint
    between this answer's signing and its proof."""
    with cas.client() as client, cas.client() as other:
        _provision(cas, policy, client)

        def meanwhile(bundle: LogBundle) -> LogBundle:
            _provision(cas, policy, other)
            return bundle

        _answered(client, meanwhile, monkeypatch)
        _provision(cas, policy, client)  # no LogRollbackError


def test_a_rolled_back_log_is_caught_when_its_bundle_is_older_than_the_kept_one(
    cas: RealCas, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback of an older bundle still refuses a log whose current checkpoint is
    behind the kept one."""
    with cas.client() as client:
        old = _provision(cas, policy, client).log_bundle
        assert old is not None
        _provision(cas, policy, client)
        _answered(client, lambda _: old, monkeypatch)
        # The log as a restored database would show it: the old checkpoint is the current.
        monkeypatch.setattr(
            CasLogClient, "fetch", _serving_checkpoint(CasLogClient.fetch, old.checkpoint)
        )
        with pytest.raises(LogRollbackError, match="rolled back"):
            _provision(cas, policy, client)


def _serving_checkpoint(
    real: Callable[[CasLogClient, str, int], bytes], note: str
) -> Callable[[CasLogClient, str, int], bytes]:
    def fetch(self: CasLogClient, path: str, limit: int) -> bytes:
        return note.encode() if path == "checkpoint" else real(self, path, limit)

    return fetch


def test_the_proofs_are_sent_only_when_asked(cas: RealCas, policy: str) -> None:
    runtime = Runtime(home=cas.proc.home)
    with cas.client() as client:
        request = runtime.request(client.nonce().nonce, service="train")
        body = request.model_copy(update={"policy": policy}).model_dump(mode="json")
        plain = client._call("POST", "/v1/provision", body).json()
    assert plain["log_bundle"] is None
    assert plain["log_index"] is not None
