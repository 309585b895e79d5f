"""Emulated Intel SGX/TDX hardware: a test PKI and quotes in the real byte layouts.

:class:`IntelTestPki` is everything Intel and a platform's quoting enclave would provide,
generated locally (nothing is fetched): an Intel-like root CA, a PCK Platform CA, PCK leaf
certificates with the SGX extension, a TCB signing certificate, TCB info and QE identities
signed by it, and CRLs. Its quotes and collateral pass the same verifier as real ones
(:func:`securetf.attestation.dcap.verify_dcap`) when that verifier is given the test root;
against the bundled Intel root they are refused. Every name in the PKI says TEST.

The platform has two PCK certificates, one per TCB level the TCB info knows
(``"up-to-date"`` and ``"out-of-date"``), so a test can produce an OutOfDate platform
without a second PKI. Separate processes (a CAS, an emulated device, a PCCS) share one PKI
through :meth:`IntelTestPki.save` and :meth:`IntelTestPki.load`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from securetf.attestation.emulated import _intel_collateral as _coll
from securetf.attestation.emulated._intel_certs import (
    PCK_CN,
    PLATFORM_CA_CN,
    ROOT_CN,
    TCB_SIGNING_CN,
    Issued,
    Validity,
    ca_certificate,
    crl,
    leaf_certificate,
)
from securetf.attestation.emulated._intel_collateral import LEVELS, UP_TO_DATE, check_tee
from securetf.attestation.emulated._intel_pck import sgx_extension
from securetf.attestation.emulated._intel_quote import (
    QuotingPlatform,
    SgxReport,
    TdReport,
    make_quote,
    sgx_body,
    td_body,
)
from securetf.attestation.emulated._intel_store import PkiParts, load_parts, save_parts
from securetf.crypto import Certificate, random_bytes
from securetf.crypto.x509ca import EcKey
from securetf.errors import UsageError

__all__ = [
    "DEFAULT_MR_ENCLAVE",
    "DEFAULT_MR_SIGNER",
    "DEFAULT_MR_TD",
    "DEFAULT_RTMRS",
    "PCK_TCB_LEVELS",
    "IntelTestPki",
]

#: The PCK TCB levels a quote can come from: ``"up-to-date"`` and ``"out-of-date"``.
PCK_TCB_LEVELS = tuple(LEVELS)
DEFAULT_MR_ENCLAVE = hashlib.sha256(b"securetf emulated SGX enclave").digest()
DEFAULT_MR_SIGNER = hashlib.sha256(b"securetf emulated SGX enclave signer").digest()
DEFAULT_MR_TD = hashlib.sha384(b"securetf emulated TD").digest()
#: RTMR0..2 as firmware, kernel and command line would leave them; RTMR3 untouched (zero).
DEFAULT_RTMRS = (
    *(hashlib.sha384(f"securetf emulated RTMR{i}".encode()).digest() for i in range(3)),
    bytes(48),
)
_PCE_ID = bytes(2)


def _pck_name(level: str) -> str:
    return f"pck-{level}"


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise UsageError(f"PCK TCB level {level!r} is unknown; choose {' or '.join(LEVELS)}")
    return level


def _issue(
    *, fmspc: bytes, validity: Validity
) -> tuple[dict[str, Issued], dict[str, bytes], dict[str, tuple[str, bytes]]]:
    """Every certificate (with its key), both CRLs, and the signed TCB info / QE identity."""
    root_key = EcKey.generate()
    root_cert = ca_certificate(
        root_key, ROOT_CN, issuer=None, issuer_key=root_key, path_length=1, validity=validity
    )
    root = Issued(root_key, root_cert)

    def leaf(cn: str, issuer: Issued, extension: bytes | None = None) -> Issued:
        key = EcKey.generate()
        cert = leaf_certificate(
            key,
            cn,
            issuer=issuer.cert,
            issuer_key=issuer.key,
            validity=validity,
            sgx_extension=extension,
        )
        return Issued(key, cert)

    platform_key = EcKey.generate()
    platform_ca = Issued(
        platform_key,
        ca_certificate(
            platform_key,
            PLATFORM_CA_CN,
            issuer=root.cert,
            issuer_key=root.key,
            path_length=0,
            validity=validity,
        ),
    )
    issued = {
        "root": root,
        "platform-ca": platform_ca,
        "tcb-signing": leaf(TCB_SIGNING_CN, root),
    }
    # One platform (PPID, instance) whose PCK certificates state either TCB level.
    ppid, instance = random_bytes(16), random_bytes(16)
    for name, level in LEVELS.items():
        extension = sgx_extension(
            ppid=ppid, tcb=level.pck, pce_id=_PCE_ID, fmspc=fmspc, platform_instance_id=instance
        )
        issued[_pck_name(name)] = leaf(PCK_CN, platform_ca, extension)
    crls = {
        "root-ca": crl(root.cert, root.key, validity),
        "pck": crl(platform_ca.cert, platform_ca.key, validity),
    }
    signer = issued["tcb-signing"].key
    signed: dict[str, tuple[str, bytes]] = {}
    for tee in ("sgx", "tdx"):
        for kind, text in (
            ("tcb-info", _coll.tcb_info_text(tee, fmspc, validity)),
            ("qe-identity", _coll.qe_identity_text(tee, validity)),
        ):
            signed[f"{kind}-{tee}"] = (text, _coll.sign_raw(signer, text.encode()))
    return issued, crls, signed


class IntelTestPki:
    """A test Intel PKI and the platform it certifies; see the module docstring."""

    def __init__(self, parts: PkiParts) -> None:
        self._parts = parts
        self.fmspc, self.validity = parts.fmspc, parts.validity
        self.pck_tcb = _check_level(parts.pck_tcb)
        for level in LEVELS:  # every part a quote needs is there
            self.platform("sgx", level)

    @classmethod
    def generate(
        cls,
        *,
        now: int,
        days: int = 30,
        fmspc: bytes = bytes.fromhex("00906ED50000"),
        pck_tcb: str = UP_TO_DATE,
    ) -> IntelTestPki:
        """A new PKI whose certificates, CRLs and JSON are valid from ``now`` - 1 day to
        ``now`` + ``days`` days (``issueDate``/``nextUpdate`` and ``thisUpdate``/
        ``nextUpdate`` likewise). ``pck_tcb`` is the TCB level of the PCK certificate that
        :meth:`quote` uses by default.
        """
        if days < 1:
            raise UsageError("the emulated Intel PKI must be valid for at least one day")
        if len(fmspc) != 6:
            raise UsageError(f"an FMSPC is 6 bytes, got {len(fmspc)}")
        validity = Validity(now - 86400, now + days * 86400)
        issued, crls, signed = _issue(fmspc=fmspc, validity=validity)
        return cls(PkiParts(issued, crls, signed, fmspc, validity, _check_level(pck_tcb)))

    def save(self, directory: Path | str) -> None:
        """Write the PKI to ``directory`` (keys in mode 0600 files); see ``_intel_store``."""
        save_parts(self._parts, Path(directory))

    @classmethod
    def load(cls, directory: Path | str) -> IntelTestPki:
        """Read a PKI that :meth:`save` wrote; a missing or altered one is a UsageError."""
        parts = load_parts(Path(directory))
        try:
            return cls(parts)
        except KeyError as exc:
            raise UsageError(f"the emulated Intel PKI in {directory} lacks {exc}") from None

    # -- the trust anchor and the collateral -------------------------------------------------

    @property
    def root_der(self) -> bytes:
        """The test root CA certificate, DER: the trust anchor to verify against."""
        return self._parts.issued["root"].der

    @property
    def root(self) -> Certificate:
        return Certificate.load(self.root_der, what="emulated Intel root CA")

    @property
    def root_ca_crl(self) -> bytes:
        """The root CA's CRL (DER): covers the PCK Platform CA and the TCB signing cert."""
        return self._parts.crls["root-ca"]

    @property
    def pck_crl(self) -> bytes:
        """The PCK Platform CA's CRL (DER): covers the PCK certificates."""
        return self._parts.crls["pck"]

    @property
    def pck_crl_issuer_chain(self) -> str:
        """PEM: the PCK Platform CA, then the root."""
        return self._parts.issued["platform-ca"].pem + self._parts.issued["root"].pem

    @property
    def tcb_signing_chain(self) -> str:
        """PEM: the TCB signing certificate, then the root (signs TCB info and QE identity)."""
        return self._parts.issued["tcb-signing"].pem + self._parts.issued["root"].pem

    def tcb_info(self, tee: str) -> tuple[str, bytes]:
        """The signed TCB info of ``tee`` (``"sgx"`` or ``"tdx"``): exact JSON text, signature."""
        return self._parts.signed[f"tcb-info-{check_tee(tee)}"]

    def qe_identity(self, tee: str) -> tuple[str, bytes]:
        """The signed identity of ``tee``'s quoting enclave: exact JSON text, signature."""
        return self._parts.signed[f"qe-identity-{check_tee(tee)}"]

    def pck_chain_pem(self, pck_tcb: str | None = None) -> bytes:
        """PEM: a PCK leaf (of ``pck_tcb``, default the PKI's), its Platform CA, the root."""
        pck = self._parts.issued[_pck_name(_check_level(pck_tcb or self.pck_tcb))]
        return (pck.pem + self.pck_crl_issuer_chain).encode()

    def collateral_json(self, tee: str) -> str:
        """dcap-qvl's ``QuoteCollateralV3`` JSON for this PKI's ``tee`` quotes."""
        tcb_info, tcb_info_signature = self.tcb_info(tee)
        qe_identity, qe_identity_signature = self.qe_identity(tee)
        return json.dumps(
            {
                "pck_crl_issuer_chain": self.pck_crl_issuer_chain,
                "root_ca_crl": self.root_ca_crl.hex(),
                "pck_crl": self.pck_crl.hex(),
                "tcb_info_issuer_chain": self.tcb_signing_chain,
                "tcb_info": tcb_info,
                "tcb_info_signature": tcb_info_signature.hex(),
                "qe_identity_issuer_chain": self.tcb_signing_chain,
                "qe_identity": qe_identity,
                "qe_identity_signature": qe_identity_signature.hex(),
            },
            indent=2,
        )

    # -- the platform ------------------------------------------------------------------------

    def platform(self, tee: str, pck_tcb: str | None = None) -> QuotingPlatform:
        """The quoting side of the platform: PCK key and chain, TCB, quoting enclave."""
        level = _check_level(pck_tcb or self.pck_tcb)
        pck = self._parts.issued[_pck_name(level)]
        return QuotingPlatform(
            pck_key=pck.key,
            pck_chain_pem=self.pck_chain_pem(level),
            cpu_svn=LEVELS[level].pck.cpu_svn,
            pce_svn=LEVELS[level].pck.pce_svn,
            qe=_coll.QE_IDENTITIES[check_tee(tee)],
            qe_id=hashlib.sha256(pck.der).digest()[:16],
        )

    def quote(
        self,
        tee: str,
        report_data: bytes,
        *,
        debug: bool = False,
        pck_tcb: str | None = None,
        mr_enclave: bytes = DEFAULT_MR_ENCLAVE,
        mr_signer: bytes = DEFAULT_MR_SIGNER,
        isv_prod_id: int = 1,
        isv_svn: int = 1,
        mr_td: bytes = DEFAULT_MR_TD,
        rtmr0: bytes = DEFAULT_RTMRS[0],
        rtmr1: bytes = DEFAULT_RTMRS[1],
        rtmr2: bytes = DEFAULT_RTMRS[2],
        rtmr3: bytes = DEFAULT_RTMRS[3],
        mr_config_id: bytes = bytes(48),
        mr_owner: bytes = bytes(48),
    ) -> bytes:
        """A quote of ``tee`` (SGX: v3, TDX: v4) over ``report_data`` (64 bytes).

        The SGX fields (``mr_enclave`` ... ``isv_svn``) apply to SGX quotes, the TDX ones
        (``mr_td``, ``rtmr0``..``rtmr3``, ``mr_config_id``, ``mr_owner``) to TDX quotes.
        ``debug`` sets the enclave's ATTRIBUTES.DEBUG or the TD's TDATTRIBUTES.DEBUG.
        ``pck_tcb`` picks the PCK certificate (default: the PKI's ``pck_tcb``); a TD's
        TEE_TCB_SVN follows the same TCB level.
        """
        level = _check_level(pck_tcb or self.pck_tcb)
        platform = self.platform(tee, level)
        body: SgxReport | TdReport
        if tee == "sgx":
            body = sgx_body(
                cpu_svn=platform.cpu_svn,
                report_data=report_data,
                debug=debug,
                mr_enclave=mr_enclave,
                mr_signer=mr_signer,
                isv_prod_id=isv_prod_id,
                isv_svn=isv_svn,
            )
        else:
            # TEE_TCB_SVN: the TDX module's SVN and major version, then the level's SVNs.
            tcb = LEVELS[level]
            module = (tcb.tdx_module_svn, _coll.TDX_MODULE_VERSION)
            body = td_body(
                tee_tcb_svn=bytes(module + tcb.tdx_components[2:]),
                report_data=report_data,
                debug=debug,
                mr_td=mr_td,
                rtmrs=(rtmr0, rtmr1, rtmr2, rtmr3),
                mr_config_id=mr_config_id,
                mr_owner=mr_owner,
            )
        return make_quote(body, platform)
