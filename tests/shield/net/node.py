"""One shielded instance without a CAS: what ``securetf run`` does for the network.

``python -m tests.shield.net.node CONFIG.json``, run by the tests inside a host namespace.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from securetf.client.liveness import LivenessChecker
from securetf.protocol.messages import NetworkGrant
from securetf.shield.net import Identity, NetShield, Timing, parse_peers, plan
from securetf.shield.net._plan import resolve_host
from securetf.shield.net._settings import DEFAULT_DATA_PATH
from tests.shield.net.pki import registry_lookup


def node_config(
    *,
    network: NetworkGrant,
    service: str,
    instance: int,
    identity: Identity,
    registry: Path,
    peers: list[str],
    command: list[str],
    policy: str = "pol",
    patience: float = 5.0,
    env: dict[str, str] | None = None,
    hosts: dict[str, list[str]] | None = None,
    data_path: str | None = None,
) -> dict[str, Any]:
    return {
        "network": network.model_dump(),
        "policy": policy,
        "service": service,
        "instance": instance,
        "identity": [str(identity.certificate), str(identity.key), str(identity.ca)],
        "registry": str(registry),  # the certificates taken as live (Pki.registry)
        "peers": peers,
        "command": command,
        "patience": patience,
        "env": env or {},
        "hosts": hosts,  # the name resolver's answers, in place of the machine's
        # The shield's default, unless a test or benchmark names one (or the environment
        # does: SECURETF_TEST_DATA_PATH=python runs the suite over the Python data path).
        "data_path": data_path or os.environ.get("SECURETF_TEST_DATA_PATH", DEFAULT_DATA_PATH),
    }


def main(path: str) -> int:
    logging.basicConfig(level=logging.INFO, format="node %(name)s: %(message)s")
    cfg = json.loads(Path(path).read_text())
    answers: dict[str, list[str]] = cfg.get("hosts") or {}
    the_plan = plan(
        NetworkGrant.model_validate(cfg["network"]),
        policy=cfg["policy"],
        service=cfg["service"],
        instance=cfg["instance"],
        peers=parse_peers(cfg["peers"]),
        resolve=(lambda name: answers.get(name, ())) if answers else resolve_host,
    )
    cert, key, ca = (Path(p) for p in cfg["identity"])
    timing = Timing(connect_patience=cfg["patience"], keepalive_idle=2, keepalive_interval=1)
    liveness = LivenessChecker(registry_lookup(Path(cfg["registry"])), policy=cfg["policy"])
    shield = NetShield(
        the_plan,
        Identity(cert, key, ca),
        liveness=liveness,
        timing=timing,
        data_path=cfg["data_path"],
    )
    with shield:
        env = {**os.environ, **cfg["env"], "TF_CONFIG": shield.tf_config()}
        with shield.program_namespace():
            proc = subprocess.Popen(cfg["command"], env=env)
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
