"""``securetf init``: a starter policy for an app directory, and the commands that follow."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import atomic_write
from securetf.cli._starter import Starter, owner_name_for, policy_name_for, starter_policy
from securetf.cli.owner import load_owner_key
from securetf.errors import UsageError

#: Scripts ``init`` takes as the program, in this order, when the app has several.
USUAL_SCRIPTS = ("train.py", "main.py", "app.py", "run.py")


def _script(app: Path, given: str | None) -> str:
    if given is not None:
        if not (app / given).is_file():
            raise UsageError(f"--script {given}: there is no such file in {app}")
        return given
    scripts = sorted(p.name for p in app.glob("*.py") if p.is_file())
    for usual in USUAL_SCRIPTS:
        if usual in scripts:
            return usual
    if len(scripts) == 1:
        return scripts[0]
    if not scripts:
        raise UsageError(
            f"{app} holds no Python script at its top level: put your program there "
            "(train.py), or name it with --script"
        )
    raise UsageError(f"{app} holds several scripts ({', '.join(scripts)}): name one with --script")


def init_cmd(
    app: Annotated[Path, typer.Argument(help="The application directory (your scripts).")],
    owner: Annotated[
        Path, typer.Option("--owner", help="Your owner key (from 'securetf owner keygen').")
    ],
    service: Annotated[str, typer.Option(help="The service's name in the policy.")] = "train",
    out: Annotated[Path, typer.Option(help="Where to write the policy.")] = Path("policy.yaml"),
    script: Annotated[
        str | None,
        typer.Option(help="The script the service runs (default: train.py, main.py, ...)."),
    ] = None,
    cas: Annotated[
        str, typer.Option(help="The CAS the printed commands name.")
    ] = "https://127.0.0.1:8081",
) -> None:
    """Write a starter policy for an app directory, and print the commands that follow.

    The policy is commented, measured and applies as written: one owner, an input and an
    output volume, the simulated TEE named explicitly.
    """
    from securetf.policy import Policy, fill_version
    from securetf.runtime.measure import measure, measurement_text

    if not app.is_dir():
        raise UsageError(f"{app} is not a directory: give the directory that holds your program")
    if out.exists():
        raise UsageError(f"{out} exists: remove it or write elsewhere with --out FILE")
    key = load_owner_key(owner)
    command = ("python", _script(app, script))
    starter = Starter(
        name=policy_name_for(app.resolve().name),
        owner=owner_name_for(owner.stem),
        public_key=key.verify_key().to_text(),
        service=service,
        command=command,
        measurement=measurement_text(measure(app, command)),
    )
    text = starter_policy(starter)
    Policy.from_yaml(fill_version(text.encode(), version=1, predecessor=None))  # as applied
    atomic_write(out, text.encode())
    typer.echo(f"wrote {out}: policy {starter.name}, service {service} runs {' '.join(command)}")
    typer.echo(f"measurement {starter.measurement}\n\nNext:")
    for line in next_commands(starter, app=app, out=out, owner=owner, cas=cas):
        typer.echo(f"  {line}")


def next_commands(s: Starter, *, app: Path, out: Path, owner: Path, cas: str) -> list[str]:
    """What an owner and an operator run after ``init``, in order, ready to paste."""
    q = shlex.quote
    at = f"--policy {q(s.name)} --cas {q(cas)} --key {q(str(owner))}"
    return [
        "securetf cas serve --data-dir cas-data &   # a development CAS (simulated TEE)",
        f"securetf cas attest --cas {q(cas)} --allow-sim",
        "securetf volume keygen data.key",
        "mkdir sealed && securetf volume seal DATA_DIR sealed/data --key-file data.key",
        f"securetf policy apply {q(str(out))} --cas {q(cas)} --key {q(str(owner))} "
        "--secret data-key=data.key",
        f"securetf volume register sealed/data {at} --volume data --key-file data.key",
        f"securetf run --cas {q(cas)} --policy {q(s.name)} --service {q(s.service)} "
        f"--app {q(str(app))} --volume data=sealed/data --volume model=sealed/model",
        f"securetf secret get model-key {at} --out model.key",
        "securetf volume unseal sealed/model model --key-file model.key",
    ]
