"""``securetf attest``: verify TEE evidence, show the simulated platform key.

Exit codes: 0 the evidence verified and its platform is acceptable; 2 bad usage or
malformed input files; 5 the evidence was refused (bad signature, expired collateral,
TCB status not tolerated, wrong chip, malformed evidence).
"""

from __future__ import annotations

import enum
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from securetf._fsutil import read_file
from securetf.attestation import (
    Collateral,
    appraise_platform,
    decode_evidence,
    default_sim_trust,
    fetch_collateral,
    load_or_create_platform_key,
    reference_values,
    verify_evidence,
)
from securetf.cli._common import print_json

app = typer.Typer(
    help="TEE evidence: verify SGX, TDX, SEV-SNP and simulated evidence.", no_args_is_help=True
)

PCCS_ENV = "SECURETF_PCCS_URL"


class Tee(enum.StrEnum):
    SGX = "sgx"
    TDX = "tdx"
    SEV_SNP = "sev-snp"
    SIM = "sim"


def _collateral(path: Path | None, quote: bytes) -> Collateral | None:
    if path is not None:
        return Collateral.load(read_file(path, "collateral"))
    url = os.environ.get(PCCS_ENV, "")
    return fetch_collateral(quote, url) if url else None


@app.command("verify")
def verify(
    evidence: Annotated[Path, typer.Argument(help="Quote or report file, binary or hex text.")],
    tee: Annotated[Tee, typer.Option("--tee", help="The TEE the evidence must come from.")],
    collateral: Annotated[
        Path | None,
        typer.Option(help=f"SGX/TDX collateral JSON (else fetched from ${PCCS_ENV} if set)."),
    ] = None,
    vcek: Annotated[Path | None, typer.Option(help="SEV-SNP: the chip's VCEK (DER/PEM).")] = None,
    now: Annotated[
        int | None, typer.Option(help="Verify as of this time, unix seconds (default: now).")
    ] = None,
    tolerate: Annotated[
        list[str] | None,
        typer.Option(
            help="Accept a TCB condition: sw-hardening-needed, configuration-needed, "
            "out-of-date. Repeat or separate with commas."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the claims as JSON.")] = False,
) -> None:
    """Verify EVIDENCE and print its claims; exit 5 if it is refused."""
    data = decode_evidence(read_file(evidence, "evidence"))
    claims = verify_evidence(
        tee.value,
        data,
        now=int(time.time()) if now is None else now,
        collateral=_collateral(collateral, data) if tee in (Tee.SGX, Tee.TDX) else None,
        vcek=read_file(vcek, "VCEK") if vcek is not None else None,
        sim_trust=default_sim_trust() if tee is Tee.SIM else frozenset(),
    )
    conditions = {c.strip() for item in tolerate or [] for c in item.split(",") if c.strip()}
    appraise_platform(claims, tolerate=conditions)
    if as_json:
        doc = claims.to_dict()
        if claims.tee != "sim":  # sim's measurement goes in services.*.measurement instead
            doc["reference"] = reference_values(claims)
        print_json(doc)
        return
    typer.echo(f"verified {claims.tee} evidence: TCB status {claims.tcb_status}")
    typer.echo(f"  measurement  {claims.measurement.hex()}")
    typer.echo(f"  report data  {claims.report_data.hex()}")
    typer.echo(f"  signer       {claims.signer}")
    typer.echo(f"  advisories   {', '.join(claims.advisories) or 'none'}")
    typer.echo("  (measurement and report data are shown, not compared with a policy)")


@app.command("sim-key")
def sim_key() -> None:
    """Print this machine's simulated platform public key (created on first use)."""
    typer.echo(load_or_create_platform_key().verify_key().to_text())
