"""Secret templates in environment values and files: ``{{ secrets.NAME }}``.

The grammar is deliberately tiny, so that what a policy's author sees is what the runtime
does::

    reference := "{{" space* "secrets." NAME ("." PART)? space* "}}"
    PART      := "cert" | "key" | "ca"          (x509 secrets only)

Every ``{{`` starts a reference; anything else after it is a syntax error. A lone ``}}`` is
plain text (JSON files are full of them). There is no escape for a literal ``{{``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from securetf.errors import PolicyError

X509_PARTS: tuple[str, ...] = ("cert", "key", "ca")
"""What an ``x509`` secret offers a template: its certificate, its private key, the CA's
certificate (all PEM)."""

_OPEN = "{{"
_REFERENCE = re.compile(
    r"\{\{[ \t]*secrets\.(?P<secret>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
    r"(?:\.(?P<part>cert|key|ca))?[ \t]*\}\}"
)

Part = Literal["cert", "key", "ca"]


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``{{ secrets.NAME[.PART] }}`` in a template."""

    secret: str
    part: Part | None = None

    @property
    def name(self) -> str:
        """The key of this reference in :func:`render`'s ``values``: ``secrets.NAME[.PART]``."""
        return f"secrets.{self.secret}" + (f".{self.part}" if self.part else "")


Segment = str | Reference


def parse_template(template: str) -> tuple[Segment, ...]:
    """Split ``template`` into literal text and references; raise on a malformed ``{{``."""
    segments: list[Segment] = []
    position = 0
    while (start := template.find(_OPEN, position)) >= 0:
        match = _REFERENCE.match(template, start)
        if match is None:
            snippet = template[start : start + 40]
            raise PolicyError(
                f"template syntax error at character {start}: {snippet!r} is not a reference "
                "like '{{ secrets.NAME }}' or '{{ secrets.NAME.cert }}' (.key, .ca); "
                "names are lower-case letters, digits and hyphens"
            )
        if start > position:
            segments.append(template[position:start])
        part = cast("Part | None", match.group("part"))
        segments.append(Reference(match.group("secret"), part))
        position = match.end()
    if position < len(template):
        segments.append(template[position:])
    return tuple(segments)


def template_references(template: str) -> tuple[Reference, ...]:
    """The references in ``template``, in order of appearance."""
    return tuple(s for s in parse_template(template) if isinstance(s, Reference))


def _value(reference: Reference, values: Mapping[str, bytes | str]) -> bytes | str:
    try:
        return values[reference.name]
    except KeyError:
        raise PolicyError(
            f"the template uses '{reference.name}', but no value was given for it"
        ) from None


def render(template: str, values: Mapping[str, bytes | str]) -> str:
    """Fill in ``template``. Every reference needs a value (keyed by :attr:`Reference.name`);
    a bytes value must be UTF-8 text (binary secrets go through :func:`render_bytes`)."""
    out: list[str] = []
    for segment in parse_template(template):
        if isinstance(segment, str):
            out.append(segment)
            continue
        value = _value(segment, values)
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise PolicyError(
                    f"'{segment.name}' is binary and cannot go into text; give the secret "
                    "encoding: hex or base64, or place it in a file"
                ) from None
        out.append(value)
    return "".join(out)


def render_bytes(template: str, values: Mapping[str, bytes | str]) -> bytes:
    """Fill in ``template`` as bytes, for files: binary values are inserted unchanged."""
    out: list[bytes] = []
    for segment in parse_template(template):
        value = segment if isinstance(segment, str) else _value(segment, values)
        out.append(_utf8(value) if isinstance(value, str) else value)
    return b"".join(out)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise PolicyError("the template holds text that is not valid Unicode") from None
