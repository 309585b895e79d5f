"""A model's own error, as the client may see it: its reason, without the server's paths.

TensorFlow Serving answers an op's failure with the op's message (INVALID_ARGUMENT for
``InvalidArgumentError``): "Unknown image file format...", "assertion failed: [...]". In
Python, TensorFlow wraps that reason in "Graph execution error:" and, when it has them, the
stack of the Python code that defined the op, whose file names are the server's. So the
client gets "the model refused the input: ", the reason and the failing node; the
wrapping, the stack and every absolute path are dropped.
"""

from __future__ import annotations

import logging
import re

from securetf.errors import Error, UsageError

log = logging.getLogger(__name__)

__all__ = ["model_error", "public_reason"]

#: Longest reason passed on, in characters.
MAX_REASON_CHARS = 1000

_NODE = re.compile(r"\[\[\{\{node [^}\]]{1,300}\}\}\]\]")
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]")
#: An absolute path: a '/' that does not follow a word character, then path characters.
_PATH = re.compile(r"(?<![\w.~])/[\w.@+~-]+(?:/[\w.@+~-]*)*")
_WRAPPERS = ("Graph execution error:", "<stack traces unavailable>")


def public_reason(message: str) -> str:
    """The reason in a model error's message, without TensorFlow's wrapping or any path."""
    reason: list[str] = []
    nodes: list[str] = []
    in_stack = False
    for raw in message.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        nodes += _NODE.findall(line)
        if not stripped or stripped in _WRAPPERS or _NODE.fullmatch(_OP_SUFFIX.sub("", stripped)):
            continue
        if stripped.startswith("Detected at node") or stripped.startswith("Traceback"):
            in_stack = True  # "defined at (most recent call last):" and its indented frames
            continue
        if in_stack and line[:1].isspace():
            continue
        in_stack = False
        reason.append(_OP_SUFFIX.sub("", stripped))
    text = " ".join(reason) or "no reason given"
    if nodes:
        text += " " + " ".join(dict.fromkeys(nodes))
    text = _PATH.sub("<path>", text)
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 3] + "..."
    return text


def model_error(exc: Exception) -> Error:
    """``exc``, raised by a model's call, as the error its caller gets."""
    if isinstance(exc, Error):
        return exc
    name = type(exc).__name__
    # TensorFlow's InvalidArgumentError (and Keras's and LiteRT's ValueError/TypeError): the
    # inputs passed our checks but not the model's; like TF Serving, it is the caller's.
    if name in {"InvalidArgumentError", "ValueError", "TypeError"}:
        return UsageError(f"the model refused the input: {public_reason(str(exc))}")
    log.exception("model call failed")
    if hasattr(exc, "error_code"):  # another TensorFlow OpError: its reason, as TF Serving
        return Error(f"the model failed: {public_reason(str(exc))}")
    return Error(f"the model failed: {name}")
