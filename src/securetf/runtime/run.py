"""``securetf run``: measure, attest, provision, mount, launch, commit (docs/runtime.md).

If anything fails before the program starts, the program does not start. Mounts and
secret files live in a private mount namespace: the host never sees them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from securetf.attestation import producer_for
from securetf.attestation.rtmr import runtime_measure_app
from securetf.client import CasClient, LivenessChecker
from securetf.errors import AttestationError, Error, IntegrityError, UsageError
from securetf.protocol import ServiceLaunch
from securetf.runtime import _linux
from securetf.runtime.measure import measure_launcher, snapshot
from securetf.runtime.provision import Provisioned, move_tag, provision
from securetf.runtime.volumes import MountedVolume, mount_all, unmount_all
from securetf.shield.fs import check_fuse
from securetf.shield.net import Endpoint, Identity, NetShield, plan

log = logging.getLogger("securetf.runtime")

#: Environment variables of the operator's shell that the program keeps; all else comes
#: from the policy.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TZ")
#: Where the instance's own certificate and key are placed (in memory).
INSTANCE_DIR = Path("/run/securetf")


@dataclass(frozen=True)
class RunOptions:
    cas: str
    policy: str
    service: str
    app: Path | None
    volumes: Mapping[str, Path] = field(default_factory=dict)
    tee: str = "sim"
    instance: int = 0
    app_tmpfs_size: str = "1g"
    peers: Mapping[str, Endpoint] = field(default_factory=dict)
    """Where instances' runtimes accept tunnels (``worker-1`` -> host:port); untrusted."""
    public_address: str = "0.0.0.0"  # noqa: S104 - the policy's public ports, for clients
    """The host address where the service's ``public`` ports are offered."""


def _secret_files(files: Mapping[str, bytes], inst: Provisioned) -> list[Path]:
    """Write the policy's files and the instance identity into tmpfs mounts."""
    placed = dict(files)
    placed[str(INSTANCE_DIR / "tls.crt")] = inst.certificate_pem.encode()
    placed[str(INSTANCE_DIR / "tls.key")] = inst.tls_key.to_pem()
    placed[str(INSTANCE_DIR / "ca.crt")] = inst.ca_certificate_pem.encode()
    mounted: list[Path] = []
    for parent in sorted({Path(p).parent for p in placed}):
        _linux.mount_tmpfs(parent, size="16m", mode=0o755)
        mounted.append(parent)
    for path, content in placed.items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
    return mounted


def _environment(config_env: Mapping[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(config_env)
    env["SECURETF_TLS_CERT"] = str(INSTANCE_DIR / "tls.crt")
    env["SECURETF_TLS_KEY"] = str(INSTANCE_DIR / "tls.key")
    env["SECURETF_CA_CERT"] = str(INSTANCE_DIR / "ca.crt")
    return env


#: The program runs as root without any capability: it cannot leave or change its network
#: namespace, mount, trace the runtime or load modules, so the confinement the runtime set
#: up holds even against a program that would undo it. ``setpriv`` is util-linux's.
DROP_CAPABILITIES = (
    "setpriv",
    "--no-new-privs",
    "--bounding-set=-all",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--",
)
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _launch(
    command: list[str], cwd: Path, env: dict[str, str], shield: NetShield | None = None
) -> int:
    """Run the program; forward SIGINT/SIGTERM; return its exit code (128+N if killed)."""
    # From the system's directories, not the operator's PATH.
    setpriv = shutil.which(DROP_CAPABILITIES[0], path=SYSTEM_PATH)
    if setpriv is None:
        raise UsageError(
            "securetf run needs setpriv to drop the program's capabilities: install util-linux"
        )
    try:
        with shield.program_namespace() if shield else contextlib.nullcontext():
            proc = subprocess.Popen([setpriv, *DROP_CAPABILITIES[1:], *command], cwd=cwd, env=env)
    except OSError as exc:
        raise UsageError(f"cannot start {command[0]!r}: {exc.strerror}") from exc
    previous = {
        sig: signal.signal(sig, lambda s, _f: proc.send_signal(s))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _service(client: CasClient, options: RunOptions) -> ServiceLaunch:
    # Only the public launch information: the policy itself is for owners and instances.
    service = client.launch(options.policy, options.service)
    if service.code is not None and options.app is not None:
        raise UsageError(
            f"service {options.service!r} runs code from the sealed volume "
            f"{service.code.volume!r}; give it with --volume {service.code.volume}=PATH, not --app"
        )
    if service.code is None and options.app is None:
        raise UsageError(f"service {options.service!r} needs its application: --app DIR")
    return service


def _measure(service: ServiceLaunch, options: RunOptions, app: Path) -> bytes:
    """The app copied into memory while measured, or, for code volumes, the launcher."""
    command = list(service.command)
    if service.code is not None:
        return measure_launcher(command, service.code.volume)
    if options.app is None:  # checked by _service
        raise UsageError("--app DIR is required")
    return snapshot(options.app, app, command)


HOSTS = Path("/etc/hosts")


def _hosts_file(shield: NetShield, work: Path) -> Path | None:
    """The program's /etc/hosts: loopback and the policy's egress host names (it has no DNS).

    The addresses are those the names had when the runtime resolved them, the same the
    egress rules allow; the file is shown at /etc/hosts in the private mount namespace.
    """
    if not shield.plan.hosts:
        return None
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost"]
    lines += [f"{a}\t{name}" for name, found in shield.plan.hosts.items() for a in found]
    path = work / "hosts"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    _linux.bind_file(path, HOSTS)
    return HOSTS


def _stop(shield: NetShield | None) -> None:
    if shield is not None:
        shield.stop()


def _network(inst: Provisioned, options: RunOptions, client: CasClient) -> NetShield:
    """The network shield: the program's own namespace, with what the policy allows, and
    peers accepted only while the CAS says their certificates are live."""
    shield = NetShield(
        plan(
            inst.config.network,
            policy=inst.config.policy,
            service=inst.config.service,
            instance=inst.config.instance,
            peers=options.peers,
            public_host=options.public_address,
        ),
        Identity(INSTANCE_DIR / "tls.crt", INSTANCE_DIR / "tls.key", INSTANCE_DIR / "ca.crt"),
        liveness=LivenessChecker(client.instance_status, policy=inst.config.policy),
    )
    shield.start()
    return shield


def run(options: RunOptions) -> int:
    """Run the service; return the program's exit code."""
    # 0. Privileges and the CAS, before anything changes.
    _linux.require_root()
    check_fuse()
    client = CasClient.for_url(options.cas)
    service = _service(client, options)
    command = list(service.command)
    # 1. A private mount namespace, and the app measured while copied into memory.
    _linux.private_mount_namespace()
    work = Path(tempfile.mkdtemp(prefix="securetf-run-"))
    mounted: list[MountedVolume] = []
    tmpfs: list[Path] = []
    shield: NetShield | None = None
    try:
        _linux.mount_tmpfs(work, size=options.app_tmpfs_size)
        tmpfs.append(work)
        app = work / "app"
        app.mkdir()
        measurement = _measure(service, options, app)
        log.info("measurement sha256:%s", measurement.hex())
        # 2. Attest and provision.
        producer = producer_for(options.tee, measurement=measurement)
        # TDX: the app's measurement into RTMR3 too, where the kernel offers it.
        events = runtime_measure_app(measurement) if options.tee == "tdx" else None
        inst = provision(
            client,
            producer,
            policy=options.policy,
            service=options.service,
            instance=options.instance,
            measurement=measurement,
            rtmr_events=events,
        )
        if inst.config.command != command:
            raise AttestationError("the CAS configured another command than the one measured")
        # 3. Volumes through the file system shield; 4. secret files in memory.
        mounted = mount_all(
            inst.config.volumes, options.volumes, policy=options.policy, cas=options.cas
        )
        if service.code is not None:
            # The code, decrypted only here, copied into memory while measured.
            try:
                digest = snapshot(Path(service.code.path), app, command)
            except OSError:
                raise IntegrityError(
                    f"the code volume {service.code.volume!r} failed its integrity check; "
                    "the program was not started"
                ) from None
            log.info("code volume %s measured sha256:%s", service.code.volume, digest.hex())
        tmpfs += _secret_files(inst.config.files, inst)
        # 5. The network shield, then the program in its namespace, without capabilities.
        env = _environment(inst.config.environment)
        shield = _network(inst, options, client)
        if (hosts := _hosts_file(shield, work)) is not None:
            tmpfs.append(hosts)  # unmounted with the rest
        if shield.plan.cluster and "TF_CONFIG" not in inst.config.environment:
            env["TF_CONFIG"] = shield.tf_config()
        code = _launch(inst.config.command, app, env, shield)
        _stop(shield)
        shield = None
        # 6. Commit written volumes (only after success) and record their tags.
        changed = unmount_all(mounted, commit=code == 0)
        mounted = []
        for name, (tag, version) in changed.items():
            move_tag(
                client, inst, name, expected=inst.config.volumes[name].tag, tag=tag, version=version
            )
            log.info("volume %s committed: version %d, %s", name, version, tag)
        return code
    finally:
        _stop(shield)
        if mounted:
            unmount_all(mounted, commit=False)
        for path in reversed(tmpfs):
            with contextlib.suppress(Error):
                _linux.umount(path)
        shutil.rmtree(work, ignore_errors=True)
        client.close()
