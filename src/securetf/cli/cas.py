"""``securetf cas``: run the Configuration and Attestation Service, attest one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from securetf.attestation import default_sim_trust
from securetf.cli.attest import PCCS_ENV
from securetf.client import attest_cas, save_pin

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
        str, typer.Option(help="The TEE the CAS runs in (sim for development).")
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
) -> None:
    """Run the CAS over HTTPS until interrupted."""
    from securetf.cas.server import ServeOptions, parse_listen, serve  # the web stack, on demand

    host, port = parse_listen(listen)
    serve(
        ServeOptions(
            data_dir=data_dir,
            db_url=db,
            host=host,
            port=port,
            tee=tee,
            pccs_url=pccs,
            kds_url=kds,
            collateral_bundle=collateral_bundle,
            test_roots=test_roots,
        )
    )


@app.command("attest")
def attest_cmd(
    cas: CasUrl,
    expect_measurement: Annotated[
        str | None, typer.Option(help="Refuse a CAS whose code measurement differs.")
    ] = None,
    allow_sim: Annotated[
        bool, typer.Option("--allow-sim", help="Accept a CAS on the simulated TEE (development).")
    ] = False,
) -> None:
    """Verify the CAS's evidence and pin its certificate for later commands."""
    tees = ("sgx", "tdx", "sev-snp") + (("sim",) if allow_sim else ())
    pin = attest_cas(
        cas,
        now=int(time.time()),
        expect_measurement=expect_measurement,
        allowed_tees=tees,
        sim_trust=default_sim_trust() if allow_sim else (),
    )
    path = save_pin(pin)
    if pin.tee == "sim":
        typer.echo("WARNING: this CAS runs on the SIMULATED TEE; nothing protects it", err=True)
    typer.echo(f"CAS verified: tee {pin.tee}, measurement {pin.measurement}")
    typer.echo(f"pinned its certificate in {path}")
