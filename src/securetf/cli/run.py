"""``securetf run`` and ``securetf measure``: the runtime's commands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import read_file
from securetf.cli._common import parse_assignments, steps_on_terminal
from securetf.envimage import EnvImage
from securetf.errors import UsageError
from securetf.runtime import RunOptions, measurement_text, run
from securetf.runtime.measure import executable, launcher, measure
from securetf.shield.net import parse_peers


def _volumes(items: list[str] | None) -> dict[str, Path]:
    # Absolute: the runtime changes its working directory before it opens them.
    return {name: Path(p).absolute() for name, p in parse_assignments(items, "--volume").items()}


def run_cmd(
    cas: Annotated[
        str, typer.Option("--cas", help="The attested CAS, like https://127.0.0.1:8081.")
    ],
    policy: Annotated[str, typer.Option(help="The policy's name at the CAS.")],
    service: Annotated[str, typer.Option(help="The service to run.")],
    app: Annotated[
        Path | None,
        typer.Option(help="The application directory (measured); not for code volumes."),
    ] = None,
    volume: Annotated[
        list[str] | None, typer.Option(help="NAME=PATH: where a volume of the service is stored.")
    ] = None,
    tee: Annotated[str, typer.Option(help="The TEE to attest with (sim for development).")] = "sim",
    instance: Annotated[int, typer.Option(help="Which instance of the service this is.")] = 0,
    peer: Annotated[
        list[str] | None,
        typer.Option(
            help="SERVICE-INSTANCE=HOST:PORT: where an instance's runtime accepts tunnels "
            "(this instance's own entry is where it listens); see docs/net-shield.md."
        ),
    ] = None,
    public_address: Annotated[
        str,
        typer.Option(help="Host address where the service's public ports are offered."),
    ] = "0.0.0.0",  # noqa: S104 - a server's public ports, as the policy says
    env_image: Annotated[
        Path | None,
        typer.Option(help="The environment image the service's env_image pins."),
    ] = None,
    trace_writes: Annotated[
        bool,
        typer.Option(
            "--trace-writes",
            help="Run the program under strace and name, after it exits, the paths where "
            "writes were refused (slower; needs strace; see docs/runtime.md).",
        ),
    ] = False,
) -> None:
    """Measure the app, attest to the CAS, mount the volumes, run the program, commit."""
    _report_to_operator()
    code = run(
        RunOptions(
            cas=cas,
            policy=policy,
            service=service,
            app=app.absolute() if app is not None else None,
            volumes=_volumes(volume),
            tee=tee,
            instance=instance,
            peers=parse_peers(peer or []),
            public_address=public_address,
            env_image=env_image.absolute() if env_image is not None else None,
            trace_writes=trace_writes,
            steps=steps_on_terminal("securetf run: "),
        )
    )
    sys.exit(code)


def _report_to_operator() -> None:
    """The runtime's account of its steps (the measurement, what was committed and where
    the CAS's tags moved) on stderr, each line marked as the runtime's, not the program's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("securetf run: %(message)s"))
    runtime = logging.getLogger("securetf.runtime")
    runtime.addHandler(handler)
    runtime.setLevel(logging.INFO)


def measure_cmd(
    policy: Annotated[Path, typer.Option(help="The policy YAML that holds the service.")],
    service: Annotated[str, typer.Option(help="The service whose command is measured.")],
    app: Annotated[
        Path | None, typer.Option(help="The application directory (not for code volumes).")
    ] = None,
    env_image: Annotated[
        Path | None,
        typer.Option(help="The environment image the service runs on (its env_image)."),
    ] = None,
) -> None:
    """Print the measurement to put into the policy for this app and service.

    The command's first word is looked up as ``securetf run`` will: on the service's PATH,
    in the program's view of this machine (docs/runtime.md); stderr names what it found.
    """
    # The whole policy model only here: 'securetf run' gets its service from the CAS.
    from securetf.policy import Policy, fill_version, version_fields

    raw = read_file(policy, "policy file")
    if not version_fields(raw).has_version:  # as securetf init writes it: apply fills it in
        raw = fill_version(raw, version=1, predecessor=None)
    doc = Policy.from_yaml(raw)
    svc = doc.services.get(service)
    if svc is None:
        raise UsageError(
            f"the policy has no service {service!r} (services: {', '.join(sorted(doc.services))}):"
            " name one of them with --service"
        )
    image = _image(svc.env_image, env_image, service)
    try:
        if svc.code is not None:
            if app is not None:
                raise UsageError(f"service {service!r} runs code from a sealed volume; omit --app")
            found = launcher(
                svc.command, svc.code.volume, code_path=svc.code.path, path=svc.path, image=image
            )
            typer.echo(f"{svc.command[0]} runs {found.executable}", err=True)
            typer.echo(measurement_text(found.digest))
            return
        if app is None:
            raise UsageError("--app DIR is required (the service has no code volume)")
        digest = measure(app, svc.command, path=svc.path, image=image)
        exe = executable(svc.command, path=svc.path, app=app, image=image)
        typer.echo(f"{svc.command[0]} runs {exe}", err=True)
        typer.echo(measurement_text(digest))
    finally:
        if image is not None:
            image.close()


def _image(pinned: str | None, given: Path | None, service: str) -> EnvImage | None:
    """The image to measure with: the one the policy pins, opened and checked."""
    if pinned is None:
        if given is not None:
            raise UsageError(f"service {service!r} pins no env_image; omit --env-image")
        return None
    if given is None:
        raise UsageError(f"service {service!r} runs on the image {pinned}: give --env-image PATH")
    return EnvImage.open(given, expect=bytes.fromhex(pinned.split(":", 1)[1]))
