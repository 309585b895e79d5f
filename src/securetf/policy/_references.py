"""Cross-reference checks: every name a policy uses must be defined, and of the right kind.

Each problem is reported with the path of the offending key and what to do about it; all
problems are reported at once, so one round of edits fixes a file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from securetf.policy._secrets import Secret, VolumeKeySecret, X509Secret, is_binary
from securetf.policy._services import SealedOutput, Service
from securetf.policy._templates import X509_PARTS, Reference, template_references
from securetf.policy._types import dotted


def _undefined(where: str, what: str, name: str, defined: Mapping[str, object]) -> str:
    listed = ", ".join(sorted(defined)) or "none"
    return (
        f"{where}: {what} {name!r} is not defined; define it under '{what}s' or fix the name "
        f"(defined: {listed})"
    )


def _check_reference(
    where: str, reference: Reference, secrets: Mapping[str, Secret], *, text: bool
) -> Iterator[str]:
    secret = secrets.get(reference.secret)
    if secret is None:
        yield _undefined(where, "secret", reference.secret, secrets)
    elif isinstance(secret, X509Secret) and reference.part is None:
        yield (
            f"{where}: secret {reference.secret!r} is a certificate; write "
            + " or ".join(f"'secrets.{reference.secret}.{p}'" for p in X509_PARTS)
        )
    elif not isinstance(secret, X509Secret) and reference.part is not None:
        yield (
            f"{where}: '.{reference.part}' only applies to x509 secrets; {reference.secret!r} "
            f"is of kind {secret.kind}, write 'secrets.{reference.secret}'"
        )
    elif text and is_binary(secret):
        yield (
            f"{where}: secret {reference.secret!r} is binary and cannot go into an environment "
            "variable; place it in a file, or give a random secret encoding: hex or base64"
        )


def _check_output(name: str, service: Service, volumes: Mapping[str, object]) -> Iterator[str]:
    """A sealed output goes into a volume the service mounts read-write: the runtime
    appends to it there, and commits it with the volume."""
    if not isinstance(service.output, SealedOutput):
        return
    where = dotted("services", name, "output", "sealed")
    volume = service.output.volume
    if volume not in volumes:
        yield _undefined(where, "volume", volume, volumes)
        return
    mounts = [(i, m) for i, m in enumerate(service.mounts) if m.volume == volume]
    if not mounts:
        yield (
            f"{where}: volume {volume!r} is not mounted by this service; add "
            f"{{volume: {volume}, path: /..., mode: rw}} to services.{name}.mounts, or name "
            "a volume it mounts read-write"
        )
    for index, mount in mounts:
        if mount.mode != "rw":
            yield (
                f"{where}: volume {volume!r} is mounted read-only "
                f"({dotted('services', name, 'mounts', index)}); the output is appended to "
                "it, so mount it with mode: rw, or name a volume the service mounts read-write"
            )


def _check_service(
    name: str,
    service: Service,
    secrets: Mapping[str, Secret],
    volumes: Mapping[str, object],
    services: Mapping[str, Service],
) -> Iterator[str]:
    templates = [(("environment", k), v, True) for k, v in service.environment.items()]
    templates += [(("files", k), v, False) for k, v in service.files.items()]
    for (field, key), template, text in templates:
        where = dotted("services", name, field, key)
        for reference in template_references(template):
            yield from _check_reference(where, reference, secrets, text=text)
    used: list[tuple[tuple[str | int, ...], str]] = [
        (("mounts", i, "volume"), m.volume) for i, m in enumerate(service.mounts)
    ]
    if service.code is not None:
        used.append((("code", "volume"), service.code.volume))
    for path, volume in used:
        if volume not in volumes:
            yield _undefined(dotted("services", name, *path), "volume", volume, volumes)
    yield from _check_output(name, service, volumes)
    for peer in service.network.peers:
        if peer not in services:
            where = dotted("services", name, "network", "peers")
            yield _undefined(where, "service", peer, services)


def reference_problems(
    secrets: Mapping[str, Secret],
    volume_keys: Mapping[str, str],
    services: Mapping[str, Service],
) -> list[str]:
    """Every dangling or ill-typed reference; ``volume_keys`` maps a volume to its key."""
    problems: list[str] = []
    key_owner: dict[str, str] = {}
    for volume, key in volume_keys.items():
        secret = secrets.get(key)
        where = dotted("volumes", volume, "key")
        if secret is None:
            problems.append(_undefined(where, "secret", key, secrets))
        elif not isinstance(secret, VolumeKeySecret):
            problems.append(
                f"{where}: secret {key!r} is of kind {secret.kind}; a volume's key must be a "
                "secret of kind volume-key"
            )
        elif key in key_owner:
            problems.append(
                f"{where}: secret {key!r} is already the key of volume {key_owner[key]!r}; "
                "give each volume its own key"
            )
        else:
            key_owner[key] = volume
    for name, service in services.items():
        problems.extend(_check_service(name, service, secrets, volume_keys, services))
    return problems
