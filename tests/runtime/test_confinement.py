"""The program cannot undo its confinement, and reaches the host only as the policy says.

It runs as an unprivileged user without any capability, in a network namespace of its
own: it cannot enter the host's namespace, change its rules, trace the runtime, or reach
the host's loopback; its ``public`` ports, and only those, are offered on the host.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

from tests.ports import free_port

from .support import Job, fast_job_args, markers

NewJob = Callable[..., Job]

PROBE = r"""
import ctypes, json, os, socket, subprocess, sys
out = {}
status = open("/proc/self/status").read()
out["cap_eff"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
out["cap_bnd"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapBnd")][0]
libc = ctypes.CDLL(None, use_errno=True)
try:
    fd = os.open("/proc/1/ns/net", os.O_RDONLY)
    out["setns"] = libc.setns(fd, 0x40000000) == 0
except OSError:
    out["setns"] = False
out["unshare"] = libc.unshare(0x40000000) == 0
nft = subprocess.run(["nft", "flush", "ruleset"], capture_output=True)
out["nft_flush"] = nft.returncode == 0
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    out["host_loopback"] = True
except OSError:
    out["host_loopback"] = False
low = socket.socket()
try:
    low.bind(("127.0.0.1", 80))
    out["bind_80"] = True
except OSError:
    out["bind_80"] = False
print("@marker probe " + json.dumps(out), flush=True)
"""

SERVER = r"""
import os, socket, sys
public, private = int(sys.argv[1]), int(sys.argv[2])
hidden = socket.create_server(("0.0.0.0", private))
srv = socket.create_server(("127.0.0.1", public))
print("@marker listening 1", flush=True)
conn, _ = srv.accept()
conn.sendall(b"echo:" + conn.recv(100))
conn.close()
"""


def test_the_program_cannot_undo_its_confinement(new_job: NewJob) -> None:
    args = fast_job_args()
    job = new_job(
        **{**args, "app_files": {"probe.py": PROBE}, "services": {"probe": []}}, apply=False
    )
    port = int(job.dep.cas.url.rsplit(":", 1)[1])
    job.services = {"probe": ["python", "probe.py", str(port)]}
    job.apply()
    # Positive control: from the host, the CAS answers at that address.
    socket.create_connection(("127.0.0.1", port), timeout=3).close()
    proc = job.run("probe")
    assert proc.returncode == 0, proc.stderr
    found = markers(proc.stdout)["probe"]
    assert found == {
        "cap_eff": "0000000000000000",
        "cap_bnd": "0000000000000000",
        "setns": False,
        "unshare": False,
        "nft_flush": False,
        "host_loopback": False,
        "bind_80": True,  # low ports stay usable inside its own namespace
    }


def test_public_ports_and_only_they_reach_the_program(new_job: NewJob) -> None:
    public, private = free_port(), free_port()
    args = fast_job_args()
    command = ["python", "server.py", str(public), str(private)]
    job = new_job(
        **{**args, "app_files": {"server.py": SERVER}, "services": {"serve": command}},
        network=f"{{public: [{public}]}}",
    )
    run = subprocess.Popen(
        [*job.run_args("serve"), "--public-address", "127.0.0.1"],
        env=job.run_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while "listening" not in markers(run.stdout.readline()):
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline, "the program never listened"
        # The port the policy does not make public is not on the host at all.
        try:
            socket.create_connection(("127.0.0.1", private), timeout=3).close()
            reached_private = True
        except OSError:
            reached_private = False
        assert not reached_private
        with socket.create_connection(("127.0.0.1", public), timeout=10) as conn:
            conn.sendall(b"hello")
            assert conn.recv(100) == b"echo:hello"
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    job.assert_nothing_left()


EGRESS = r"""
import json, os, socket, sys
out = {"hosts": open("/etc/hosts").read()}
for port in sys.argv[1:]:
    try:
        socket.create_connection(("localhost", int(port)), timeout=3).close()
        out[port] = "reached"
    except OSError as exc:
        out[port] = f"refused: {exc.strerror}"
print("@marker egress " + json.dumps(out), flush=True)
"""


def test_an_egress_host_name_is_resolved_and_reached(new_job: NewJob) -> None:
    args = fast_job_args()
    job = new_job(**{**args, "app_files": {"egress.py": EGRESS}}, apply=False)
    port = int(job.dep.cas.url.rsplit(":", 1)[1])
    # Something listens on the host at another port: the program must not reach it.
    other = socket.create_server(("127.0.0.1", 0))
    closed = other.getsockname()[1]
    job.services = {"egress": ["python", "egress.py", str(port), str(closed)]}
    # The host's own loopback, named as the policy allows it: only that port.
    job.network = f'{{egress: ["localhost:{port}"]}}'
    job.apply()
    with other:
        proc = job.run("egress")
    assert proc.returncode == 0, proc.stderr
    found = markers(proc.stdout)["egress"]
    assert isinstance(found, dict)
    assert found[str(port)] == "reached", found
    assert found[str(closed)].startswith("refused"), found
    assert "127.0.0.1\tlocalhost" in found["hosts"]
