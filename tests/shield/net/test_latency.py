"""Small writes cross the shield at once: no socket of a tunnel holds them back (Nagle).

gRPC sends a message as several small writes and waits for the answer. With Nagle's
algorithm on a socket of the runtime, the second write waited for the ACK of the first,
which the receiver delays by up to 40 ms: TensorFlow's collective steps took 5 times as
long through the shield as without it.
"""

from __future__ import annotations

from .conftest import PORT, StartNode, app, verdict
from .lab import Lab

ROUNDS = 40


def test_small_writes_are_not_held_back(lab: Lab, start_node: StartNode) -> None:
    server = start_node("b", 1, app("chat", PORT, ROUNDS))
    client = start_node("a", 0, app("chat", "worker", 1, ROUNDS))
    result = verdict(client)
    assert server.wait(timeout=30) == 0
    assert result["result"] == "ok", result
    # Two 2 ms pauses a round, and a few hops; a delayed ACK alone is 40 ms.
    assert result["median"] < 0.02, result
