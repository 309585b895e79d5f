"""``securetf cas`` commands for the CAS's keys: recovery keys and shares, backup, recover."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import read_file, write_private_file
from securetf.crypto.sealed_box import BoxKey

Tee = Annotated[
    str,
    typer.Option(help="The TEE the CAS runs in (sim, sgx, tdx, sev-snp): whose key seals its "
                 "master key."),
]  # fmt: skip
DataDir = Annotated[Path, typer.Option(help="The CAS's data directory.")]


def recovery_keygen_cmd(
    keyfile: Annotated[Path, typer.Argument(help="Where to write the private recovery key.")],
) -> None:
    """Write a new X25519 recovery key (mode 0600) and print its public key, for the CAS's
    --recovery-keys file. Keep the private key offline: it opens your share of the CAS."""
    from securetf.cas.recovery import public_key_text

    key = BoxKey()
    write_private_file(keyfile, key.to_pem())
    typer.echo(public_key_text(key.public()))


def backup_cmd(
    data_dir: DataDir,
    out: Annotated[Path, typer.Option(help="The backup file to write (mode 0600).")],
    db: Annotated[
        str | None, typer.Option(help="The CAS's database URL if not DATA_DIR/cas.db.")
    ] = None,
    tee: Tee = "sim",
) -> None:
    """Write a consistent, sealed snapshot of the CAS (it may keep running).

    Only k of the recovery owners' shares open it (securetf cas recover).
    """
    from securetf.cas.backup import write_backup
    from securetf.cas.master_key import MasterKey
    from securetf.cas.sealing import sealer_for

    master = MasterKey.load_existing(data_dir, sealer_for(tee))
    backup = write_backup(data_dir, out, master=master, db_url=db)
    recovery = backup.shares.recovery
    names = ", ".join(name for name, _ in recovery.owners)
    typer.echo(f"backup written to {out}; {recovery.threshold} of {names} can recover it")
    if backup.database != "sqlite":
        typer.echo(
            "the database is PostgreSQL: it is NOT in this file; dump it now with "
            "pg_dump --format=custom (docs/cas.md, 'Backup and recovery')",
            err=True,
        )


def recovery_share_cmd(
    backup: Annotated[Path, typer.Argument(help="The backup file.")],
    key: Annotated[Path, typer.Option(help="Your private recovery key.")],
    out: Annotated[Path, typer.Option(help="Where to write your opened share (mode 0600).")],
) -> None:
    """Open your share of a backup with your recovery key, for `securetf cas recover`."""
    import json

    from securetf.cas.backup import BackupFile

    box = BoxKey.from_pem(read_file(key, "recovery key"), source=str(key))
    share = BackupFile.load(backup).shares.open_share(box)
    write_private_file(out, json.dumps(share.to_json()).encode())
    typer.echo(f"share {share.index} of {share.owner!r} written to {out}")


def recover_cmd(
    backup: Annotated[Path, typer.Argument(help="The backup file.")],
    data_dir: Annotated[Path, typer.Option(help="The new CAS's data directory (new or empty).")],
    share: Annotated[
        list[Path], typer.Option("--share", help="An owner's opened share; k of them.")
    ],
    tee: Tee = "sim",
) -> None:
    """Make a new CAS data directory from a backup and k owners' shares; its master key is
    sealed to this machine's TEE. Exit 3 (nothing written) with too few or foreign shares
    or a changed backup."""
    from securetf.cas.backup import BackupFile, recover
    from securetf.cas.recovery import Share
    from securetf.cas.sealing import sealer_for

    parsed = BackupFile.load(backup)
    recover(parsed, [Share.load(p) for p in share], data_dir, sealer=sealer_for(tee))
    typer.echo(f"CAS recovered into {data_dir}; start it with securetf cas serve --data-dir")
    if parsed.database != "sqlite":
        typer.echo("restore its PostgreSQL database with pg_restore before starting it", err=True)


def rotate_key_cmd(data_dir: DataDir, tee: Tee = "sim") -> None:
    """Retire the CAS's TLS key for a new one that the old one endorses. The CAS takes it
    at its next start (restart it); pinned clients follow the endorsement and attest the
    new key on their next call, and the transparency log records the new identity. Run it
    on the CAS's machine with the CAS stopped: the keys are sealed under its master key."""
    import time

    from securetf.cas.master_key import MasterKey
    from securetf.cas.rotation import rotate_key
    from securetf.cas.sealing import sealer_for

    master = MasterKey.load_existing(data_dir, sealer_for(tee))
    digest = rotate_key(data_dir, now=time.time(), master=master)
    typer.echo(f"new TLS key sha256:{digest} endorsed by the old one; restart the CAS to use it")
