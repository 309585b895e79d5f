"""Starting the CAS: data directory, identity, store, verifiers, HTTPS."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from securetf._http.server import make_server, tls_context
from securetf._logutil import warn_loudly
from securetf.attestation import default_sim_trust, producer_for
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.collateral import CollateralSource
from securetf.cas._evidence import EvidenceVerifier
from securetf.cas._log_entries import identity_entry
from securetf.cas.api import create_app, error_response
from securetf.cas.core import Cas
from securetf.cas.identity import CasIdentity, load_identity, package_measurement
from securetf.cas.master_key import MasterKey
from securetf.cas.recovery import RecoverySet, ShareSet, ensure_shares
from securetf.cas.sealing import sealer_for
from securetf.cas.settings import CasSettings
from securetf.cas.store import open_store
from securetf.crypto import VerifyKey
from securetf.errors import UsageError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    data_dir: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8081
    tee: str = "sim"
    sim_trust: Collection[VerifyKey] = ()
    settings: CasSettings = field(default_factory=CasSettings)
    #: Where collateral comes from when a runtime sends none (see docs/collateral.md).
    pccs_url: str | None = None
    kds_url: str | None = None
    collateral_bundle: Path | None = None
    #: A directory of test roots (emulated hardware): evidence chained to them is verified,
    #: and accepted only by policies that name test-roots.
    test_roots: Path | None = None
    #: Owners' recovery public keys and threshold (JSON, docs/cas.md): the master key is
    #: split into shares sealed to them, so a backup can be recovered.
    recovery_keys: Path | None = None


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    # isascii: str.isdigit also accepts digits such as "²" that int() refuses.
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise UsageError(f"--listen takes HOST:PORT, like 127.0.0.1:8081, not {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build(options: ServeOptions) -> tuple[Cas, CasIdentity]:
    """Everything but the HTTP server: usable in-process by tests and benchmarks."""
    data_dir = options.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    measurement = package_measurement()
    if options.tee == "sim":
        _log.warning("CAS running on the SIMULATED TEE: no hardware protects its keys")
    producer = producer_for(options.tee, measurement=measurement)
    master_key = MasterKey.load_or_create_sealed(data_dir, sealer_for(options.tee))
    identity = load_identity(
        data_dir, producer, measurement, master=master_key, hosts=(options.host,), now=time.time()
    )
    url = options.db_url or f"sqlite:///{data_dir / 'cas.db'}"
    if options.recovery_keys is not None:
        ensure_shares(data_dir, master_key, RecoverySet.load(options.recovery_keys))
    shares = ShareSet.load(data_dir)
    store = open_store(url, master_key=master_key, audit_key=identity.audit_key)
    cas = Cas(store, clock=time.time, settings=options.settings, evidence=_verifier(options))
    cas.log_identity(
        identity_entry(
            tee=producer.tee,
            measurement=measurement,
            tls_public_key_der=identity.tls_key.public_der(),
            audit_public_key=identity.audit_key.verify_key().to_text(),
            log_vkey=identity.log_signer.verifier().vkey(),
            # Who can rebuild the master key is part of what clients trust: logged.
            recovery=shares.recovery.digest() if shares is not None else None,
        )
    )
    return cas, identity


def _verifier(options: ServeOptions) -> EvidenceVerifier:
    test_roots = None
    if options.test_roots is not None:
        test_roots = EmulatedRoots.load(options.test_roots)
        warn_loudly(
            _log,
            "CAS given TEST roots (%s): evidence of emulated hardware verifies, and policies "
            "that name test-roots accept it",
            options.test_roots,
        )
    return EvidenceVerifier(
        sim_trust=frozenset(options.sim_trust) | default_sim_trust(),
        test_roots=test_roots,
        collateral=CollateralSource(
            pccs_url=options.pccs_url,
            kds_url=options.kds_url,
            bundle=options.collateral_bundle,
            cache_dir=options.data_dir / "collateral",
            test_roots=[test_roots.intel] if test_roots and test_roots.intel else (),
        ),
    )


def http_server(options: ServeOptions) -> uvicorn.Server:
    """The CAS's HTTPS server with the limits of ``options.settings``, ready to ``run()``."""
    cas, identity = build(options)
    ident = options.data_dir / "identity"
    return make_server(
        create_app(cas, identity),
        host=options.host,
        port=options.port,
        tls=tls_context(ident / "tls.crt", identity.tls_key.to_pem()),
        limits=options.settings.http,
        max_body_bytes=options.settings.max_request_bytes,
        render=error_response,
    )


def serve(options: ServeOptions) -> None:
    """Run the CAS over HTTPS until interrupted."""
    server = http_server(options)
    print(
        f"securetf CAS listening on https://{options.host}:{options.port} "
        f"(tee {options.tee}, data {options.data_dir})",
        flush=True,
    )
    server.run()
