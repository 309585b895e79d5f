"""A bounded, derandomized schemathesis run against a real CAS over TLS.

Whatever a client sends within docs/cas-openapi.json (positive cases) or just outside it
(negative cases), the CAS answers with a status the document declares for the operation, a
body its schema describes, and never a 5xx.

Random bodies rarely get past the first check (a field that is not base64), so about half
the cases are steered: the path names the policy in force and its secrets, and the body is
a genuine request (an owner's or a stranger's signed request, real evidence over a fresh
nonce, a tag move signed by a provisioned instance) with at most one field replaced by
garbage. Those reach the evidence, signature and state checks.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from securetf.cas.settings import CasSettings
from securetf.crypto import SigningKey
from securetf.policy import Action, Policy, policy_hash, sign_request
from securetf.protocol import tag_update_message

from .inprocess import running_cas
from .support import DATASET, DATASET_KEY, Owners, Runtime, b64, policy_yaml, signed

SPEC = Path(__file__).resolve().parents[2] / "docs" / "cas-openapi.json"
SCHEMA = schemathesis.openapi.from_dict(json.loads(SPEC.read_text()))
OPERATIONS = [
    result.ok() if isinstance(result, Ok) else pytest.fail(f"{SPEC}: {result.err()}")
    for result in SCHEMA.get_all_operations()
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Examples per operation and mode: about 300 requests in all, in well under a minute.
EXAMPLES = {GenerationMode.POSITIVE: 16, GenerationMode.NEGATIVE: 8}
POLICY = "cancer"
SECRETS = ["model-key", "dataset-key", "api-token", "no-such-secret"]
GARBAGE = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=40),
    st.binary(max_size=80).map(b64),
    st.lists(st.text(max_size=8), max_size=3),
)
Draw = Callable[[st.SearchStrategy[Any]], Any]
#: A case of an OpenAPI operation.
Case = schemathesis.Case[Any]


@dataclass
class World:
    """The CAS under test, and the state a genuine request needs."""

    url: str
    session: requests.Session
    owners: Owners
    runtime: Runtime
    policy_hash: str
    serial: int = 0  # of the instance provisioned last
    tag: str | None = None  # the volume "model"'s current tag
    version: int = 0  # its version

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.session.post(f"{self.url}{path}", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def genuine_provision(self) -> dict[str, Any]:
        nonce = base64.b64decode(self.post("/v1/nonce", {})["nonce"])
        return json.loads(self.runtime.request(nonce).model_dump_json())  # type: ignore[no-any-return]

    def genuine(
        self, path: str, draw: Draw, params: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """A request that passes every check when sent as it is (if the signer drawn is an
        owner), or None if ``path`` takes no body."""
        if path == "/v1/provision":
            return self.genuine_provision()
        if path == "/v1/tags":
            move = {
                "policy": POLICY,
                "volume": "model",
                "serial": self.serial,
                "expected": self.tag,
                "tag": draw(st.binary(min_size=4, max_size=4)).hex(),
                "version": self.version + 1,
            }
            signature = self.runtime.tls.sign(tag_update_message(**move))
            return {**move, "signature": b64(signature)}
        owners = self.owners
        signer = draw(st.sampled_from([owners.alice, owners.bob, SigningKey.generate()]))
        update = policy_yaml(owners, version=2, predecessor=self.policy_hash)
        now = time.time()
        if path == "/v1/policies":
            by = signed(signer, update, now)
            return {"policy_yaml": b64(update), "signatures": [b64(by.to_json())]}
        if path.endswith("/approve"):
            return {"signature": b64(signed(signer, update, now, action="approve").to_json())}
        params = params or {}
        operations: dict[str, tuple[Action, str, dict[str, str | int]]] = {
            "/v1/policies/{name}/secrets/{secret}": ("export", str(params.get("secret", "")), {}),
            "/v1/policies/{name}/audit": ("audit", "", {}),
            "/v1/policies/{name}/show": ("show", "", {}),
            "/v1/policies/{name}/history": ("history", "", {}),
            "/v1/policies/{name}/volumes/{volume}/tag": (
                "register",
                str(params.get("volume", "")),
                {"tag": "sha256:" + draw(st.binary(min_size=32, max_size=32)).hex(), "version": 1},
            ),
        }
        if path in operations:
            action, target, detail = operations[path]
            read = sign_request(
                signer,
                action=action,
                policy=POLICY,
                version=1,
                policy_hash=self.policy_hash,
                issued_at=int(now),
                target=target,
                detail=detail,
            )
            return json.loads(read.to_json())  # type: ignore[no-any-return]
        return None

    def observe(self, case: Case, response: schemathesis.Response) -> None:
        """Follow the state a successful request changed."""
        status = response.status_code
        if case.operation.path == "/v1/provision" and status == 200:
            self.serial = int(response.json()["serial"])
        if case.operation.path == "/v1/tags" and status == 204:
            move = cast(dict[str, Any], case.body)
            self.tag, self.version = str(move["tag"]), int(move["version"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with running_cas(tmp, CasSettings()) as target, requests.Session() as session:
        # The CAS's own certificate (its attestation is tested elsewhere); not the
        # environment's CA bundle, which requests would otherwise prefer.
        session.trust_env = False
        session.verify = str(tmp / "cas" / "identity" / "tls.crt")
        owners = Owners()
        yaml = policy_yaml(owners)
        runtime = Runtime(home=tmp / "home")
        world = World(target.url, session, owners, runtime, policy_hash(Policy.from_yaml(yaml)))
        world.post(
            "/v1/policies",
            {
                "policy_yaml": b64(yaml),
                "signatures": [
                    b64(signed(owners.alice, yaml, time.time(), secrets=DATASET).to_json())
                ],
                "secrets": {"dataset-key": b64(DATASET_KEY)},
            },
        )
        world.serial = int(world.post("/v1/provision", world.genuine_provision())["serial"])
        yield world


def _steer(case: Case, world: World, draw: Draw) -> None:
    """Point a generated case at the policy in force: a genuine body, at most one field of
    it garbage."""
    params = case.path_parameters
    if params and "name" in params:
        params["name"] = POLICY
    if params and "secret" in params:
        params["secret"] = draw(st.sampled_from(SECRETS))
    if params and "volume" in params:
        params["volume"] = draw(st.sampled_from(["model", "dataset", "nope"]))
    if params and "service" in params:
        params["service"] = draw(st.sampled_from(["train", "serve", "nope"]))
    body = world.genuine(case.operation.path, draw, params)
    if body is None:
        return
    field = draw(st.sampled_from([None, *sorted(body)]))
    if field is not None:
        body[field] = draw(GARBAGE)
    case.body = body


def _has_negative_space(operation: Any) -> bool:
    """A body or a query can break its schema; a path's plain string cannot."""
    query = [p for p in operation.definition.raw.get("parameters", []) if p["in"] == "query"]
    return bool(query or operation.body)


CASES = [
    pytest.param(operation, mode, id=f"{operation.label} {mode.value}")
    for operation in OPERATIONS
    for mode in EXAMPLES
    if mode is GenerationMode.POSITIVE or _has_negative_space(operation)
]


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_every_answer_is_declared_and_none_is_a_5xx(
    world: World, operation: Any, mode: GenerationMode
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case, data: st.DataObject) -> None:
        if data.draw(st.booleans(), label="steered"):
            _steer(case, world, data.draw)
        response = case.call(base_url=world.url, session=world.session, verify=world.session.verify)
        case.validate_response(response, checks=CHECKS)
        world.observe(case, response)

    run()
