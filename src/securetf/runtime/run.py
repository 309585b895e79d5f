"""``securetf run``: measure, attest, provision, mount, launch, commit (docs/runtime.md).

If anything fails before the program starts, the program does not start. Mounts and
secret files live in a private mount namespace: the host never sees them. The program
sees only the root the runtime builds for it (:mod:`._rootfs`), with an environment from
the policy alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from securetf.attestation import producer_for
from securetf.attestation.rtmr import runtime_measure_app
from securetf.client import CasClient, LivenessChecker
from securetf.envimage import EnvImage
from securetf.errors import (
    AttestationError,
    Error,
    IntegrityError,
    MeasurementError,
    NotFoundError,
    UsageError,
)
from securetf.policy import SealedOutput, Tmpfs, User
from securetf.protocol import ServiceConfig, ServiceLaunch, VolumeGrant
from securetf.runtime import _linux
from securetf.runtime._diagnose import failure_note, measurement_refused
from securetf.runtime._launch import SYSTEM_PATH, Program, ProgramOutput, launch
from securetf.runtime._output import SealedLog, output_of
from securetf.runtime._rootfs import LOOPBACK_HOSTS, RootFs
from securetf.runtime._trace import WriteTrace, find_strace
from securetf.runtime._view import APP, HOME, default_path, system_view
from securetf.runtime._writes import RefusedWrites
from securetf.runtime.measure import Measurement, launcher, snapshot
from securetf.runtime.provision import Provisioned, move_tag, provision
from securetf.runtime.volumes import MountedVolume, mount_all, unmount_all
from securetf.shield.fs import ImageMount, check_fuse, mount_image, shared_image
from securetf.shield.net import Endpoint, Identity, NetShield, plan

log = logging.getLogger("securetf.runtime")

#: Where the instance's own certificate and key are placed (in memory), in the program's view.
INSTANCE_DIR = "/run/securetf"
#: The program's environment before the policy's: nothing comes from the operator's.
#: Python writes no bytecode caches: the places it would (the app, the Python environment)
#: are read-only, and each attempt is a refused write.
BASE_ENV = {
    "HOME": HOME,
    "LANG": "C.UTF-8",
    "PYTHONNOUSERSITE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


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
    env_image: Path | None = None
    """The environment image the policy pins (``env_image``), as the operator stores it."""
    trace_writes: bool = False
    """Run the program under strace and report the writes the kernel refused it."""
    steps: Callable[[str], AbstractContextManager[object]] | None = None
    """Shows each long step (measuring, attesting, mounting, committing) while it runs: the
    CLI's spinner on a terminal. Never around the program itself."""


def _step(options: RunOptions, what: str) -> AbstractContextManager[object]:
    return options.steps(what) if options.steps is not None else contextlib.nullcontext()


def _secret_files(root: RootFs, files: Mapping[str, bytes], inst: Provisioned) -> None:
    """The policy's files and the instance identity, in memory in the program's root."""
    placed = dict(files)
    placed[f"{INSTANCE_DIR}/tls.crt"] = inst.certificate_pem.encode()
    placed[f"{INSTANCE_DIR}/tls.key"] = inst.tls_key.to_pem()
    placed[f"{INSTANCE_DIR}/ca.crt"] = inst.ca_certificate_pem.encode()
    for path, content in sorted(placed.items()):
        root.place(path, content)


def _environment(config: ServiceConfig, search_path: str) -> dict[str, str]:
    """The policy's environment, the program's PATH, and the instance's identity files."""
    env = {"PATH": search_path, **BASE_ENV, **config.environment}
    env["SECURETF_TLS_CERT"] = f"{INSTANCE_DIR}/tls.crt"
    env["SECURETF_TLS_KEY"] = f"{INSTANCE_DIR}/tls.key"
    env["SECURETF_CA_CERT"] = f"{INSTANCE_DIR}/ca.crt"
    return env


def _service(client: CasClient, options: RunOptions) -> ServiceLaunch:
    # Only the public launch information: the policy itself is for owners and instances.
    try:
        service = client.launch(options.policy, options.service)
    except NotFoundError as exc:
        if "has no service" not in str(exc):
            raise
        raise NotFoundError(f"{exc}: run one of them with --service NAME") from None
    if service.code is not None and options.app is not None:
        raise UsageError(
            f"service {options.service!r} runs code from the sealed volume "
            f"{service.code.volume!r}; give it with --volume {service.code.volume}=PATH, not --app"
        )
    if service.code is None and options.app is None:
        raise UsageError(f"service {options.service!r} needs its application: --app DIR")
    return service


def _env_image(service: ServiceLaunch, options: RunOptions) -> EnvImage | None:
    """The environment image, checked against the policy's pin before anything runs."""
    if service.env_image is None:
        if options.env_image is not None:
            raise UsageError(
                f"service {options.service!r} pins no environment image (env_image); "
                "omit --env-image"
            )
        return None
    if options.env_image is None:
        raise UsageError(
            f"service {options.service!r} runs on the environment image {service.env_image}: "
            "give it with --env-image PATH"
        )
    expect = bytes.fromhex(service.env_image.split(":", 1)[1])
    return EnvImage.open(options.env_image, expect=expect)


def _measure(
    service: ServiceLaunch, options: RunOptions, app: Path, image: EnvImage | None
) -> Measurement:
    """The app copied into memory while measured, or, for code volumes, the launcher."""
    command = list(service.command)
    if service.code is not None:
        return launcher(
            command,
            service.code.volume,
            code_path=service.code.path,
            path=service.path,
            image=image,
        )
    if options.app is None:  # checked by _service
        raise UsageError("--app DIR is required")
    return snapshot(options.app, app, command, path=service.path, image=image)


def _hosts(shield: NetShield) -> str:
    """The program's /etc/hosts: loopback and the policy's egress host names (it has no DNS).

    The addresses are those the names had when the runtime resolved them, the same the
    egress rules allow.
    """
    lines = [f"{a}\t{name}" for name, found in shield.plan.hosts.items() for a in found]
    return LOOPBACK_HOSTS + "".join(line + "\n" for line in lines)


def _stop(shield: NetShield | None) -> None:
    if shield is not None:
        shield.stop()


def _network(inst: Provisioned, options: RunOptions, client: CasClient, root: RootFs) -> NetShield:
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
        Identity(
            root.at(f"{INSTANCE_DIR}/tls.crt"),
            root.at(f"{INSTANCE_DIR}/tls.key"),
            root.at(f"{INSTANCE_DIR}/ca.crt"),
        ),
        liveness=LivenessChecker(client.instance_status, policy=inst.config.policy),
    )
    shield.start()
    return shield


def _check_config(config: ServiceConfig, service: ServiceLaunch) -> None:
    """What was measured from the public launch information is what the CAS configured."""
    if config.command != list(service.command):
        raise AttestationError("the CAS configured another command than the one measured")
    if config.path != service.path:
        raise AttestationError("the CAS configured another PATH than the one measured")
    if config.env_image != service.env_image:
        raise AttestationError("the CAS configured another environment image than the one measured")


def _private(root: RootFs, config: ServiceConfig) -> list[str]:
    """The view's places whose names are the program's: memory and volumes (code too)."""
    return [*root.writable, *(grant.path for grant in config.volumes.values())]


def _report(
    code: int, root: RootFs, mounted: list[MountedVolume], refused: RefusedWrites | None
) -> None:
    """After a failure, where the program could write (the first thing to check), and where
    it was refused when traced; after a traced success, the refusals it got over."""
    if code != 0:
        volumes = [mv.grant.path for mv in mounted if mv.grant.mode == "rw"]
        log.warning("%s", failure_note(code, root.writable, volumes, refused))
    elif refused is not None:
        log.warning("the program exited with code 0. Traced: %s", refused.summary())


def _sealed_log(output: SealedOutput, mounted: list[MountedVolume]) -> SealedLog:
    """The output's file, opened on the volume's mount in the runtime's namespace."""
    mv = next(mv for mv in mounted if mv.name == output.volume)  # granted rw: output_of
    return SealedLog.open(mv.mount.mountpoint, output)


def _record(
    client: CasClient,
    inst: Provisioned,
    mounted: list[MountedVolume],
    changed: dict[str, tuple[str, int]],
    *,
    failed: bool,
) -> None:
    """Move the tags of the volumes committed (after a failure: the output's alone), and
    tell the operator what was committed, and which writable volumes were left as they were."""
    for name, (tag, version) in changed.items():
        grant = inst.config.volumes[name]
        move_tag(client, inst, name, expected=grant.tag, tag=tag, version=version)
        what = " with the program's output alone (the program failed)" if failed else ""
        was = f"version {grant.version}" if grant.tag is not None else "new"
        log.info(
            "volume %s committed%s: version %d (was %s), tag %s; the CAS's tag moved to it",
            name,
            what,
            version,
            was,
            tag,
        )
    for mv in mounted:
        if mv.grant.mode == "rw" and mv.name not in changed and not failed:
            log.info("volume %s unchanged: nothing committed", mv.name)


def run(options: RunOptions) -> int:
    """Run the service; return the program's exit code."""
    # 0. Privileges and the CAS, before anything changes. The runtime's own helpers (ip,
    #    nft, fusermount3, setpriv) come from the system's directories, not the operator's.
    _linux.require_root()
    os.environ["PATH"] = SYSTEM_PATH
    check_fuse()
    if options.trace_writes:
        find_strace()
    client = CasClient.for_url(options.cas)
    service = _service(client, options)
    command = list(service.command)
    app_at = service.code.path if service.code is not None else APP
    # The environment image, checked against the policy's pin before anything else.
    image = _env_image(service, options)
    # Kept mounted by 'securetf env serve' (its cache already verified), or mounted below.
    kept = shared_image(image.digest) if image is not None else None
    # 1-2. A private mount namespace, and the app measured while copied into memory.
    _linux.private_mount_namespace()
    work = Path(tempfile.mkdtemp(prefix="securetf-run-"))
    mounted: list[MountedVolume] = []
    tmpfs: list[Path] = []
    shield: NetShield | None = None
    env_mount: ImageMount | None = None
    sealed_log: SealedLog | None = None
    try:
        _linux.mount_tmpfs(work, size=options.app_tmpfs_size)
        tmpfs.append(work)
        app = work / "app"
        app.mkdir()
        with _step(options, "measuring the app"):
            measured = _measure(service, options, app, image)
        log.info("measurement sha256:%s (runs %s)", measured.digest.hex(), measured.executable)
        # 3. Attest and provision.
        producer = producer_for(options.tee, measurement=measured.digest)
        # TDX: the app's measurement into RTMR3 too, where the kernel offers it.
        events = runtime_measure_app(measured.digest) if options.tee == "tdx" else None
        try:
            with _step(options, f"attesting to the CAS ({options.tee})"):
                inst = provision(
                    client,
                    producer,
                    policy=options.policy,
                    service=options.service,
                    instance=options.instance,
                    measurement=measured.digest,
                    rtmr_events=events,
                )
        except MeasurementError as exc:
            raise measurement_refused(
                exc,
                measured,
                policy=options.policy,
                service=options.service,
                cas=options.cas,
                app=options.app if service.code is None else None,
            ) from None
        _check_config(inst.config, service)
        output = output_of(inst.config)
        # 4. The program's root: the system and Python (or the environment image, each
        #    chunk checked as it is read) read-only, the app, memory.
        image_source: Path | None = None
        if kept is not None:
            image_source = kept.root
        elif image is not None:
            image_source = work / "env"
            (work / "env-verified").mkdir()
            image_source.mkdir()
            env_mount = mount_image(image, work / "env-verified", image_source)
        view = system_view(
            app=app_at,
            app_source=app,
            image=image.meta if image is not None else None,
            image_source=image_source,
        )
        user = User.model_validate(inst.config.user)
        sizes = Tmpfs.model_validate(inst.config.tmpfs)
        root = RootFs.build(work / "root", view, sizes, app, user)
        tmpfs.append(root.path)
        # 5. Volumes through the file system shield, in the root; the code volume only
        #    where the runtime copies it from.
        code_dir = work / "code"

        def target(name: str, grant: VolumeGrant) -> Path:
            if grant.code:
                (code_dir / name).mkdir(parents=True)
                return code_dir / name
            return root.mountpoint(grant.path)

        with _step(options, f"mounting volumes {', '.join(sorted(inst.config.volumes))}"):
            mounted = mount_all(
                inst.config.volumes,
                options.volumes,
                policy=options.policy,
                cas=options.cas,
                target=target,
                owner=(user.uid, user.gid),
            )
        if service.code is not None:
            # The code, decrypted only here, copied into memory while measured.
            try:
                copied = snapshot(
                    code_dir / service.code.volume,
                    app,
                    command,
                    path=service.path,
                    app_at=app_at,
                    image=image,
                )
            except OSError:
                raise IntegrityError(
                    f"the code volume {service.code.volume!r} failed its integrity check; "
                    "the program was not started"
                ) from None
            log.info("code volume %s measured sha256:%s", service.code.volume, copied.digest.hex())
        #    The app the program's own; secret files in memory; the network shield; then
        #    the root turns read-only.
        root.give_app(app)
        _secret_files(root, inst.config.files, inst)
        env = _environment(inst.config, service.path or default_path(view.image))
        shield = _network(inst, options, client, root)
        if shield.plan.hosts:
            root.write_etc("hosts", _hosts(shield))
        if shield.plan.cluster and "TF_CONFIG" not in inst.config.environment:
            env["TF_CONFIG"] = shield.tf_config()
        root.seal()
        #    Its output: the runtime's, discarded, or a pipe into its volume's file.
        program_output: ProgramOutput
        if isinstance(output, SealedOutput):
            sealed_log = _sealed_log(output, mounted)
            program_output = sealed_log.write_end
        else:
            program_output = output
        # 6. The program, in its root and namespaces, as its own user, without capabilities.
        program = Program(
            root.path, app_at, [measured.executable, *command[1:]], env, user, program_output
        )
        trace = WriteTrace(_private(root, inst.config)) if options.trace_writes else None
        try:
            code = launch(program, view, shield.program_namespace(), trace=trace)
        finally:
            refused = trace.finish() if trace is not None else None
        if sealed_log is not None:
            sealed_log.finish()
        _stop(shield)
        shield = None
        _report(code, root, mounted, refused)
        # 7. Commit written volumes after success; after a failure only the output's file
        #    (the log of a failed run is the one its owners most need). Record their tags.
        keep = {output.volume: [output.path]} if isinstance(output, SealedOutput) else {}
        done, mounted = mounted, []
        with _step(options, "unmounting and committing volumes"):
            changed = unmount_all(done, commit=code == 0, keep=keep)
        _record(client, inst, done, changed, failed=code != 0)
        return code
    finally:
        if sealed_log is not None:
            sealed_log.finish()
        _stop(shield)
        if mounted:
            unmount_all(mounted, commit=False)
        for path in reversed(tmpfs[1:]):
            with contextlib.suppress(Error):
                _linux.umount(path)
        if env_mount is not None:
            env_mount.close()  # after the root, whose binds hold the image's file system
        elif image is not None:
            image.close()
        if kept is not None:
            kept.release()  # after the root, whose binds hold the kept file system
        for path in tmpfs[:1]:
            with contextlib.suppress(Error):
                _linux.umount(path)
        with contextlib.suppress(OSError):
            os.rmdir(work)  # empty once its tmpfs is gone; never a walk into mounts
        client.close()
