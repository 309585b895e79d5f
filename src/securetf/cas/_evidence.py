"""What the CAS verifies evidence with: its trust anchors and where collateral comes from.

Collateral (SGX/TDX: TCB info, QE identity, CRLs; SEV-SNP: the chip's VCEK) is signed by
the vendor, so where it comes from does not matter to security: a request may bring its
own; otherwise the CAS takes it from its collateral source (cache, offline bundle, the
configured PCCS or KDS). Fetching is network I/O, done before any store transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from securetf.attestation import Claims, Collateral, verify_evidence
from securetf.attestation.anchors import EmulatedRoots
from securetf.attestation.collateral import CollateralSource
from securetf.crypto import VerifyKey
from securetf.errors import AttestationError
from securetf.protocol import ProvisionRequest

__all__ = ["EvidenceVerifier"]


@dataclass(frozen=True)
class EvidenceVerifier:
    sim_trust: Collection[VerifyKey] = frozenset()
    test_roots: EmulatedRoots | None = None
    collateral: CollateralSource | None = None

    def verify(
        self,
        tee: str,
        evidence: bytes,
        *,
        now: int,
        collateral_json: str | None = None,
        vcek: bytes | None = None,
    ) -> Claims:
        """Verify ``evidence`` of ``tee`` at ``now``.

        SGX/TDX collateral comes from the CAS's own source (PCCS or offline bundle) when it
        has one, whatever the request brings: collateral is signed but not the newest, and a
        runtime must not choose an older TCB info that still calls its platform up to date.
        Only a CAS without a source judges by the request's. An SNP VCEK is the chip's
        certificate for its TCB, so the request's is as good as the KDS's.
        """
        source = self.collateral
        own = source is not None and (source.pccs_url is not None or source.bundle is not None)
        dcap = None
        if tee in ("sgx", "tdx"):
            if own or not collateral_json:
                dcap = self._source(tee).dcap(tee, evidence, now=now)
            else:
                dcap = Collateral.load(collateral_json.encode())
        if tee == "sev-snp" and vcek is None:
            vcek = self._source(tee).vcek(evidence, now=now)
        return verify_evidence(
            tee,
            evidence,
            now=now,
            collateral=dcap,
            vcek=vcek,
            sim_trust=self.sim_trust,
            test_roots=self.test_roots,
        )

    def provision(self, req: ProvisionRequest, *, now: int) -> Claims:
        return self.verify(
            req.tee, req.evidence, now=now, collateral_json=req.collateral, vcek=req.vcek
        )

    def _source(self, tee: str) -> CollateralSource:
        if self.collateral is None:
            what = "a VCEK (SEV-SNP)" if tee == "sev-snp" else f"collateral ({tee})"
            raise AttestationError(
                f"{tee} evidence came without {what} and the CAS has no collateral source; "
                "start the CAS with --pccs URL / --kds URL or --collateral-bundle FILE"
            )
        return self.collateral
