from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetf.errors import PolicyError
from securetf.policy import Reference, parse_template, render, render_bytes, template_references

VALUES: dict[str, bytes | str] = {
    "secrets.api-token": "c0ffee",
    "secrets.cert.cert": b"-----BEGIN CERTIFICATE-----\n",
    "secrets.raw": b"\xff\x00\x01",
}


def test_references_are_found_in_order() -> None:
    refs = template_references(
        "a {{ secrets.api-token }} b {{secrets.cert.key}}{{ secrets.cert.ca }}"
    )
    assert refs == (Reference("api-token"), Reference("cert", "key"), Reference("cert", "ca"))
    assert [r.name for r in refs] == ["secrets.api-token", "secrets.cert.key", "secrets.cert.ca"]


def test_render_fills_in_text_and_utf8_bytes() -> None:
    assert render("T={{ secrets.api-token }};", VALUES) == "T=c0ffee;"
    assert render("{{ secrets.cert.cert }}", VALUES) == "-----BEGIN CERTIFICATE-----\n"
    assert render('{"a": {"b": 1}}', {}) == '{"a": {"b": 1}}'  # a lone }} is text


def test_render_is_strict_about_unknown_names() -> None:
    with pytest.raises(PolicyError, match="no value was given for it"):
        render("{{ secrets.other }}", VALUES)


def test_binary_values_only_render_as_bytes() -> None:
    with pytest.raises(PolicyError, match="binary"):
        render("{{ secrets.raw }}", VALUES)
    assert render_bytes("k={{ secrets.raw }}", VALUES) == b"k=\xff\x00\x01"


@pytest.mark.parametrize(
    "template",
    [
        "{{",
        "{{ }}",
        "{{ secrets }}",
        "{{ secrets. }}",
        "{{ secrets.a.b }}",
        "{{ env.HOME }}",
        "{{secrets.-a}}",
        "x {{ secrets.a }",
    ],
)
def test_syntax_errors(template: str) -> None:
    with pytest.raises(PolicyError, match="template syntax error"):
        parse_template(template)


@given(st.text(alphabet=st.characters(blacklist_characters="{", blacklist_categories=["Cs"])))
def test_text_without_braces_renders_unchanged(text: str) -> None:
    assert render(text, {}) == text
    assert render_bytes(text, {}) == text.encode("utf-8")


def test_unencodable_text_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="not valid Unicode"):
        render_bytes("\ud800", {})


@given(st.text(max_size=60))
def test_parser_only_raises_policy_error_and_round_trips(text: str) -> None:
    try:
        segments = parse_template(text)
    except PolicyError:
        return
    rebuilt = "".join(s if isinstance(s, str) else "{{ " + s.name + " }}" for s in segments)
    assert parse_template(rebuilt) == segments
