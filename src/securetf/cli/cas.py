"""``securetf cas``: run the Configuration and Attestation Service, attest one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from securetf._fsutil import read_file
from securetf.attestation import default_sim_trust
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.claims import TEST_ROOTS
from securetf.attestation.collateral import CollateralSource
from securetf.attestation.sim_key import securetf_home
from securetf.cli import _cas_keys
from securetf.cli._common import print_json
from securetf.cli.attest import PCCS_ENV
from securetf.client import save_pin, verify_cas
from securetf.client.cas_attest import unchecked_warning
from securetf.client.caslog import prove_identity
from securetf.errors import UsageError

app = typer.Typer(help="The Configuration and Attestation Service.", no_args_is_help=True)

KDS_ENV = "SECURETF_KDS_URL"

CasUrl = Annotated[str, typer.Option("--cas", help="The CAS, like https://127.0.0.1:8081.")]


@app.command("serve")
def serve_cmd(
    data_dir: Annotated[Path, typer.Option(help="Where the CAS keeps its state and keys.")],
    db: Annotated[
        str | None, typer.Option(help="Database URL (default: a SQLite file in DATA_DIR).")
    ] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "127.0.0.1:8081",
    tee: Annotated[
        str,
        typer.Option(
            help="The TEE the CAS runs in: sgx (Gramine's /dev/attestation), tdx or sev-snp "
            "(configfs-tsm; SECURETF_GRAMINE_ROOT / SECURETF_TSM_ROOT move them), or sim "
            "for development."
        ),
    ] = "sim",
    pccs: Annotated[
        str | None,
        typer.Option(
            help="SGX/TDX collateral from this PCCS when a runtime sends none.", envvar=PCCS_ENV
        ),
    ] = None,
    kds: Annotated[
        str | None,
        typer.Option(
            help="SEV-SNP VCEKs from this AMD KDS when a runtime sends none.", envvar=KDS_ENV
        ),
    ] = None,
    collateral_bundle: Annotated[
        Path | None, typer.Option(help="An offline collateral bundle (docs/collateral.md).")
    ] = None,
    test_roots: Annotated[
        Path | None,
        typer.Option(
            help="Also verify evidence of emulated hardware chained to these test roots "
            "(policies must name test-roots to accept it). Tests and demos only."
        ),
    ] = None,
    log_witness: Annotated[
        list[str] | None,
        typer.Option(
            help="A witness (its cosignature vkey, from 'securetf log witness-key') whose "
            "cosignatures the log's checkpoints need; repeat for each."
        ),
    ] = None,
    log_witness_threshold: Annotated[
        int,
        typer.Option(
            min=0,
            help="How many of the --log-witness must cosign a checkpoint before "
            "clients are given it (default: all of them).",
        ),
    ] = 0,
    recovery_keys: Annotated[
        Path | None,
        typer.Option(
            help="Owners' recovery public keys and threshold (JSON: {threshold, owners: "
            "[{name, public_key}]}): the master key is split into shares sealed to them, "
            "which securetf cas recover needs."
        ),
    ] = None,
) -> None:
    """Run the CAS over HTTPS until interrupted."""
    from securetf.cas.server import ServeOptions, parse_listen, serve  # the web stack, on demand
    from securetf.cas.settings import CasSettings
    from securetf.cas.translog import Witnessing

    host, port = parse_listen(listen)
    witnesses = tuple(log_witness or ())
    threshold = log_witness_threshold or len(witnesses)
    Witnessing.parse(witnesses, threshold)  # a bad key or threshold: exit 2 before starting
    serve(
        ServeOptions(
            settings=CasSettings(log_witnesses=witnesses, log_witness_threshold=threshold),
            data_dir=data_dir,
            db_url=db,
            host=host,
            port=port,
            tee=tee,
            pccs_url=pccs,
            kds_url=kds,
            collateral_bundle=collateral_bundle,
            test_roots=test_roots,
            recovery_keys=recovery_keys,
        )
    )


app.command("recovery-keygen")(_cas_keys.recovery_keygen_cmd)
app.command("backup")(_cas_keys.backup_cmd)
app.command("recovery-share")(_cas_keys.recovery_share_cmd)
app.command("recover")(_cas_keys.recover_cmd)
app.command("rotate-key")(_cas_keys.rotate_key_cmd)


@app.command("attest")
def attest_cmd(
    cas: CasUrl,
    expect_reference: Annotated[
        Path | None,
        typer.Option(
            help="Refuse a hardware CAS whose image differs from these reference values "
            "(JSON: what `securetf attest verify --json` prints under reference, or a "
            "policy's tee section). Without it (or --expect-measurement) the code "
            "identity of a hardware CAS is not checked."
        ),
    ] = None,
    expect_measurement: Annotated[
        str | None,
        typer.Option(
            help="Refuse a CAS whose measurement differs: sha256:<hex> (sim), or "
            "sgx:/tdx:/sev-snp:<hex> (MRENCLAVE, MRTD, launch measurement) as a pin records."
        ),
    ] = None,
    allow_sim: Annotated[
        bool, typer.Option("--allow-sim", help="Accept a CAS on the simulated TEE (development).")
    ] = False,
    test_roots: Annotated[
        Path | None,
        typer.Option(
            help="Also accept a CAS on EMULATED hardware whose evidence chains to these test "
            "roots. It protects nothing: tests and demos only."
        ),
    ] = None,
    pccs: Annotated[
        str | None,
        typer.Option(help="SGX/TDX: Intel's collateral from this PCCS.", envvar=PCCS_ENV),
    ] = None,
    kds: Annotated[
        str | None,
        typer.Option(
            help="SEV-SNP: the chip's VCEK from this AMD KDS when the CAS attaches none.",
            envvar=KDS_ENV,
        ),
    ] = None,
    collateral_bundle: Annotated[
        Path | None, typer.Option(help="An offline collateral bundle (docs/collateral.md).")
    ] = None,
    witness: Annotated[
        bool,
        typer.Option(
            "--witness",
            help="Pin the CAS for a log witness ('securetf log witness'): its identity entry "
            "is not proven here, since no checkpoint counts before its witnesses cosigned.",
        ),
    ] = False,
) -> None:
    """Verify the CAS's evidence and pin its certificate for later commands.

    Collateral is cached in $SECURETF_HOME/collateral. Exit 5 when the CAS is refused.
    """
    tees: tuple[str, ...] = ("sgx", "tdx", "sev-snp")
    tees += ("sim",) if allow_sim else ()
    roots = None
    if test_roots is not None:
        roots = EmulatedRoots.load(test_roots)
        tees += (TEST_ROOTS,)
        typer.echo(
            f"WARNING: accepting a CAS on EMULATED hardware (test roots {test_roots}): "
            "nothing protects it; tests and demos only",
            err=True,
        )
    reference = _read_reference(expect_reference) if expect_reference is not None else None
    source = CollateralSource(
        pccs_url=pccs,
        kds_url=kds,
        bundle=collateral_bundle,
        cache_dir=securetf_home() / "collateral",
        test_roots=[roots.intel] if roots is not None and roots.intel is not None else (),
    )
    result = verify_cas(
        cas,
        now=int(time.time()),
        expect_measurement=expect_measurement,
        expect_reference=reference,
        allowed_tees=tees,
        sim_trust=default_sim_trust() if allow_sim else (),
        test_roots=roots,
        collateral=source,
    )
    pin = result.pin
    if pin.log_vkey is not None and not witness:
        # The identity just attested is the one the CAS's public log records, in a log
        # that extends what this home saw of it before.
        prove_identity(pin, result.identity_log_index, result.identity_measurement)
    path = save_pin(pin)
    if pin.tee == "sim":
        typer.echo("WARNING: this CAS runs on the SIMULATED TEE; nothing protects it", err=True)
    elif result.claims.test_roots:
        typer.echo("WARNING: this CAS runs on EMULATED hardware; nothing protects it", err=True)
    if pin.tee != "sim" and not result.code_checked:
        typer.echo(f"WARNING: {unchecked_warning(result)}", err=True)
    typer.echo(f"CAS verified: tee {pin.tee}, measurement {pin.measurement}")
    if pin.tee != "sim":
        checked = "checked" if result.code_checked else "NOT checked"
        typer.echo(f"code identity {checked}; its reference values (for --expect-reference):")
        print_json(dict(result.reference))
    typer.echo(f"pinned its certificate in {path}")


def _read_reference(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (:func:`securetf.client.cas_attest.expected_references`)."""
    try:
        value = json.loads(read_file(path, "--expect-reference file"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UsageError(f"--expect-reference: {path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"--expect-reference: {path} does not hold a JSON object")
    return value
