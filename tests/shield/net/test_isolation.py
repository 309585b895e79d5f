"""The program reaches nothing but its peers, and the shield leaves nothing behind."""

from __future__ import annotations

import contextlib
import socket
import threading

from .conftest import PORT, TUNNEL, StartNode, app, verdict, workers
from .lab import Lab, namespaces


def test_program_reaches_no_address_outside_the_policy(lab: Lab, start_node: StartNode) -> None:
    # A plain server on host b, and the runtimes' own tunnel ports: none of them is a peer
    # address, so the program must reach none of them.
    accepted: list[bytes] = []
    server = lab.socket("b")
    server.bind((lab.addresses["b"], 9000))
    server.listen()
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                accepted.append(conn.recv(100))
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    targets = [
        f"{lab.addresses['b']}:9000",  # another host
        f"{lab.addresses['b']}:{TUNNEL}",  # a runtime's tunnel port, in plaintext
        f"{lab.addresses['a']}:{TUNNEL}",  # its own runtime's tunnel port, from inside
        "127.128.0.9:5000",  # an instance that does not exist
        f"127.128.0.2:{PORT + 1}",  # a real peer, on a port it does not listen on
    ]
    node = start_node("a", 0, app("probe", *targets))
    try:
        result = verdict(node, timeout=60)
    finally:
        done.set()
        thread.join(20)
        server.close()
    assert not accepted
    for target in targets:
        assert result[target].startswith("refused") or result[target] == "closed", (target, result)
    # The host addresses are not even routable from the program's namespace.
    assert "unreachable" in result[f"{lab.addresses['b']}:9000"]


def test_tf_config_names_virtual_addresses(lab: Lab, start_node: StartNode) -> None:
    node = start_node("b", 1, ["sh", "-c", 'printf "%s\\n" "$TF_CONFIG"'])
    config = verdict(node, timeout=30)
    assert config == {
        "cluster": {"worker": [f"127.128.0.1:{PORT}", f"127.128.0.2:{PORT}"]},
        "task": {"type": "worker", "index": 1},
    }
    assert node.returncode == 0


def test_program_sees_only_loopback(lab: Lab, start_node: StartNode) -> None:
    script = "import json, socket; print(json.dumps([n for _, n in socket.if_nameindex()]))"
    node = start_node("a", 0, ["python3", "-c", script])
    assert verdict(node, timeout=30) == ["lo"]  # type: ignore[comparison-overlap]


def test_nothing_left_behind(lab: Lab, start_node: StartNode) -> None:
    ours = {n for n in namespaces() if n.startswith(lab.prefix)}
    node = start_node("a", 0, ["true"])
    assert node.wait(timeout=30) == 0
    # The program's namespace is anonymous (no name to leak) and went with its last process.
    assert {n for n in namespaces() if n.startswith(lab.prefix)} == ours
    # Nothing listens on the tunnel port any more.
    with contextlib.closing(lab.socket("c")) as probe:
        assert probe.connect_ex((lab.addresses["a"], TUNNEL)) != 0


def _echo_once(
    lab: Lab, host: str, port: int, done: threading.Event, *, v6: bool = False
) -> threading.Thread:
    server = lab.socket(host, socket.AF_INET6 if v6 else socket.AF_INET)
    server.bind(((lab.addresses6 if v6 else lab.addresses)[host], port))
    server.listen()
    server.settimeout(0.2)

    def serve() -> None:
        with server:
            while not done.is_set():
                with contextlib.suppress(OSError):
                    conn, _ = server.accept()
                    with conn:
                        conn.sendall(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_egress_exception_is_reachable_and_nothing_else(lab: Lab, start_node: StartNode) -> None:
    c, b = lab.addresses["c"], lab.addresses["b"]
    network = workers().model_copy(update={"egress": [f"{c}:9100"]})
    done = threading.Event()
    threads = [_echo_once(lab, h, p, done) for h, p in (("c", 9100), ("c", 9101), ("b", 9100))]
    try:
        node = start_node(
            "a", 0, app("probe", f"{c}:9100", f"{c}:9101", f"{b}:9100"), network=network
        )
        result = verdict(node, timeout=60)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    assert result[f"{c}:9100"] == "data", result  # the policy's exception
    assert result[f"{c}:9101"].startswith("refused"), result  # same host, another port
    assert "unreachable" in result[f"{b}:9100"], result  # another host


def test_ipv6_and_host_name_exceptions(lab: Lab, start_node: StartNode) -> None:
    c6, b6, b = lab.addresses6["c"], lab.addresses6["b"], lab.addresses["b"]
    # data.example is what the resolver says at start: host b's IPv4 address.
    egress = [f"[{c6}]:9100", "data.example:9200", "gone.example:9200"]
    network = workers().model_copy(update={"egress": egress})
    done = threading.Event()
    servers = [(h, p, True) for h, p in (("c", 9100), ("c", 9101), ("b", 9100))]
    servers += [("b", 9200, False), ("b", 9201, False)]
    threads = [_echo_once(lab, h, p, done, v6=v6) for h, p, v6 in servers]
    targets = [f"{c6}:9100", f"{c6}:9101", f"{b6}:9100", f"{b}:9200", f"{b}:9201"]
    try:
        node = start_node(
            "a", 0, app("probe", *targets), network=network, hosts={"data.example": [b]}
        )
        result = verdict(node, timeout=60)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    assert result[f"{c6}:9100"] == "data", result  # the IPv6 exception
    assert result[f"{c6}:9101"].startswith("refused"), result  # same host, another port
    assert result[f"{b6}:9100"].startswith("refused"), result  # another IPv6 host
    assert result[f"{b}:9200"] == "data", result  # the address the name had at start
    assert result[f"{b}:9201"].startswith("refused"), result  # its other ports: no
