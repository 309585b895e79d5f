"""Validation of the policy model: every rejection names the key to fix."""

from __future__ import annotations

import pytest

from securetf.errors import PolicyError
from securetf.policy import Policy, RandomSecret, SealedOutput, policy_hash
from tests.policy._support import digest, make_policy, policy_yaml, public


def _reject(text: str, *fragments: str) -> str:
    with pytest.raises(PolicyError) as caught:
        Policy.from_yaml(text.encode())
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    return message


def _with_service(body: str) -> str:
    return policy_yaml(extra_service="  other:\n" + body)


def test_minimal_policy_fills_defaults() -> None:
    policy = make_policy()
    app = policy.services["app"]
    assert app.instances == 1
    assert app.mounts[0].mode == "ro"
    assert app.network.peers == app.network.egress == ()
    assert policy.volumes["data"].rollback == "protected"
    token = policy.secrets["token"]
    assert isinstance(token, RandomSecret)
    assert token.encoding == "hex"


def test_secret_referenced_but_undefined() -> None:
    text = policy_yaml().replace("secrets.token", "secrets.tokn")
    _reject(text, "services.app.environment.TOKEN", "secret 'tokn' is not defined", "token")


def test_secret_referenced_in_a_file_but_undefined() -> None:
    text = _with_service(
        f"    measurement: '{digest('o')}'\n    command: [x]\n"
        "    files: {/etc/cert.pem: '{{ secrets.cert.cert }}'}\n"
    )
    _reject(text, 'services.other.files["/etc/cert.pem"]', "secret 'cert' is not defined")


def test_volume_without_key() -> None:
    _reject(
        policy_yaml().replace("data: {key: data-key}", "data: {rollback: none}"),
        "volumes.data.key",
        "missing",
    )


def test_volume_key_undefined_or_of_the_wrong_kind() -> None:
    _reject(
        policy_yaml().replace("{key: data-key}", "{key: nokey}"),
        "volumes.data.key",
        "'nokey' is not defined",
    )
    _reject(
        policy_yaml().replace("{key: data-key}", "{key: token}"),
        "volumes.data.key",
        "kind volume-key",
    )


def test_two_volumes_cannot_share_a_key() -> None:
    text = policy_yaml().replace(
        "data: {key: data-key}", "data: {key: data-key}\n  more: {key: data-key}"
    )
    _reject(text, "volumes.more.key", "own key")


def test_mount_of_undefined_volume_and_undefined_peer() -> None:
    text = policy_yaml().replace("{volume: data, path: /data}", "{volume: dat, path: /data}")
    _reject(text, "services.app.mounts[0].volume", "volume 'dat' is not defined")
    text = policy_yaml().replace(
        "command: [python, app.py]", "command: [python]\n    network: {peers: [db]}"
    )
    _reject(text, "services.app.network.peers", "service 'db' is not defined")


def test_code_volume_must_exist_and_not_share_a_mount_path() -> None:
    base = policy_yaml()
    _reject(
        base.replace(
            "command: [python, app.py]", "command: [x]\n    code: {volume: app, path: /app}"
        ),
        "services.app.code.volume",
    )
    _reject(
        base.replace(
            "command: [python, app.py]", "command: [x]\n    code: {volume: data, path: /data}"
        ),
        "share the path '/data'",
    )


def _with_output(output: str, mode: str = "ro") -> str:
    return (
        policy_yaml()
        .replace("command: [python, app.py]", f"command: [python, app.py]\n    output: {output}")
        .replace("{volume: data, path: /data}", f"{{volume: data, path: /data, mode: {mode}}}")
    )


def test_sealed_output_goes_into_a_volume_the_service_mounts_read_write() -> None:
    policy = Policy.from_yaml(_with_output("{sealed: data/logs/app.log}", "rw").encode())
    output = policy.services["app"].output
    assert isinstance(output, SealedOutput)
    assert (output.volume, output.path) == ("data", "logs/app.log")
    _reject(
        _with_output("{sealed: data/logs/app.log}", "ro"),
        "services.app.output.sealed: volume 'data' is mounted read-only (services.app.mounts[0])",
        "mode: rw",
    )
    _reject(
        _with_output("{sealed: dta/app.log}", "rw"),
        "services.app.output.sealed: volume 'dta' is not defined",
        "(defined: data)",
    )
    # Defined, but mounted only by another service.
    text = _with_output("{sealed: more/app.log}", "rw").replace(
        "data: {key: data-key}", "data: {key: data-key}\n  more: {key: token2}"
    )
    text = text.replace("secrets:\n", "secrets:\n  token2: {kind: volume-key, source: generated}\n")
    _reject(
        text,
        "services.app.output.sealed: volume 'more' is not mounted by this service",
        "{volume: more, path: /..., mode: rw} to services.app.mounts",
    )


@pytest.mark.parametrize(
    ("output", "where", "fragment"),
    [
        ("sealed", "services.app.output:", "must be 'operator', 'none' or {sealed: VOLUME/PATH}"),
        ("'sealed: data/x'", "services.app.output:", "{sealed: VOLUME/PATH}"),
        ("Operator", "services.app.output:", "got 'Operator'"),
        ("null", "services.app.output:", "must be 'operator', 'none' or"),
        ("[data/x]", "services.app.output:", "must be 'operator', 'none' or"),
        ("5", "services.app.output:", "must be 'operator', 'none' or"),
        ("{sealed: data}", "services.app.output.sealed:", "must be VOLUME/PATH"),
        ("{sealed: data/}", "services.app.output.sealed:", "must be VOLUME/PATH"),
        ("{sealed: /data/x}", "services.app.output.sealed:", "must be VOLUME/PATH"),
        ("{sealed: data//x}", "services.app.output.sealed:", "must be VOLUME/PATH"),
        ("{sealed: data/a/../x}", "services.app.output.sealed:", "must be VOLUME/PATH"),
        ("{sealed: data/./x}", "services.app.output.sealed:", "must be VOLUME/PATH"),
        ("{sealed: Data/x}", "services.app.output.sealed:", "volume's name"),
        ('{sealed: "data/x\\0"}', "services.app.output.sealed:", "NUL"),
        (f"{{sealed: data/{'a' * 256}}}", "services.app.output.sealed:", "at most 255"),
        ("{sealed: 5}", "services.app.output.sealed:", "valid string"),
        ("{sealed: data/x, mode: rw}", "services.app.output.mode:", "unknown field"),
        ("{}", "services.app.output.sealed:", "required field is missing"),
    ],
)
def test_bad_output_forms(output: str, where: str, fragment: str) -> None:
    _reject(_with_output(output, "rw"), where, fragment)


def test_duplicate_mount_paths() -> None:
    text = policy_yaml().replace(
        "mounts: [{volume: data, path: /data}]",
        "mounts: [{volume: data, path: /d}, {volume: data, path: /d, mode: rw}]",
    )
    _reject(text, "services.app", "share the path '/d'")


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ secrets.token", "template syntax error"),
        ("{{ secret.token }}", "template syntax error"),
        ("{{ secrets.Token }}", "template syntax error"),
        ("{{ secrets.token.pem }}", "template syntax error"),
        ("{{ secrets.token.cert }}", "only applies to x509"),
        ("{{ secrets.data-key }}", "binary"),
    ],
)
def test_template_errors(template: str, fragment: str) -> None:
    _reject(
        policy_yaml().replace("{{ secrets.token }}", template),
        "services.app.environment.TOKEN",
        fragment,
    )


def test_duplicate_owner_names_and_keys() -> None:
    text = policy_yaml().replace("name: carol", "name: alice")
    _reject(text, "governance", "'alice' appears twice")
    text = policy_yaml().replace(public("carol"), public("bob"))
    _reject(text, "governance", "same public key")


def test_threshold_must_be_reachable_and_keys_valid() -> None:
    _reject(policy_yaml(threshold=4), "update_threshold is 4", "only 3 owners")
    _reject(policy_yaml(threshold=0), "governance.update_threshold")
    _reject(policy_yaml().replace(public("bob"), "ed25519:AAAA"), "governance.owners[1].public_key")


def test_version_and_predecessor_rules() -> None:
    _reject(policy_yaml(version=0), "version")
    _reject(policy_yaml(version=2), "predecessor", "version 2 must name the hash")
    _reject(policy_yaml(predecessor=digest("x")), "predecessor", "must be null for version 1")
    _reject(policy_yaml(version=2, predecessor="sha256:abc"), "predecessor")
    assert make_policy(version=2, predecessor=digest("x")).predecessor == digest("x")


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        # Unknown fields, anywhere, are refused with their path.
        ("tee: {allow: [sim]}", "tee: {allow: [sim], trust_me: true}", "tee.trust_me: unknown"),
        ("name: demo", "name: demo\ncomment: x", "comment: unknown field"),
        (
            "{volume: data, path: /data}",
            "{volume: data, path: /data, o: x}",
            "mounts[0].o: unknown",
        ),
        ("{kind: random, bytes: 16}", "{kind: random, bytes: 16, seed: 1}", "token.seed: unknown"),
        ("name: demo", "name: Demo_1", "name"),
        ("version: 1", "version: '1'", "version"),
        ("command: [python, app.py]", "command: [python, 5]", "command[1]"),
        ("command: [python, app.py]", "command: []", "command"),
        ("path: /data", "path: data", "path"),
        ("path: /data", "path: /data/../etc", "path"),
        ("tee: {allow: [sim]}", "tee: {allow: []}", "tee.allow"),
        ("tee: {allow: [sim]}", "tee: {allow: [sim, sim]}", "tee.allow"),
        ("tee: {allow: [sim]}", "tee: {allow: [sim], tolerate: [revoked]}", "tee.tolerate"),
        ("tee: {allow: [sim]}", "tee: {allow: [sim, test-roots]}", "tee"),
        ("tee: {allow: [sim]}", "tee: {allow: [test-roots]}", "tee"),
        ("bytes: 16", "bytes: 0", "secrets.token.bytes"),
        ("kind: random", "kind: password", "secrets.token"),
        ("TOKEN:", "1TOKEN:", "environment"),
    ],
)
def test_field_level_rejections(old: str, new: str, where: str) -> None:
    text = policy_yaml()
    assert old in text
    _reject(text.replace(old, new, 1), where)


@pytest.mark.parametrize(
    "egress", ["pypi.org:443", "10.0.0.0/8:9000", "192.0.2.7:53", "[2001:db8::/32]:443"]
)
def test_egress_accepted(egress: str) -> None:
    text = policy_yaml().replace(
        "command: [python, app.py]", f"command: [x]\n    network: {{egress: ['{egress}']}}"
    )
    assert Policy.from_yaml(text.encode()).services["app"].network.egress == (egress,)


@pytest.mark.parametrize(
    "egress",
    [
        "pypi.org",
        "pypi.org:0",
        "pypi.org:http",
        "10.0.0.1/8:80",
        "2001:db8::1:443",
        "[10.0.0.1]:80",
        "PyPI.org:443",
    ],
)
def test_egress_rejected(egress: str) -> None:
    text = policy_yaml().replace(
        "command: [python, app.py]", f"command: [x]\n    network: {{egress: ['{egress}']}}"
    )
    _reject(text, "services.app.network.egress")


def test_one_measurement_equals_a_list_of_one() -> None:
    one = make_policy()
    listed = Policy.from_yaml(
        policy_yaml()
        .replace(f'measurement: "{digest("app")}"', f'measurement: ["{digest("app")}"]')
        .encode()
    )
    assert one == listed
    assert policy_hash(one) == policy_hash(listed)


def test_every_problem_is_reported_at_once() -> None:
    text = (
        policy_yaml()
        .replace("secrets.token", "secrets.nope")
        .replace("{key: data-key}", "{key: nokey}")
    )
    message = _reject(text, "secret 'nope'", "secret 'nokey'")
    assert message.count("\n  - ") == 2


def test_policies_are_immutable() -> None:
    policy = make_policy()
    with pytest.raises(ValueError, match="frozen"):
        policy.name = "other"
