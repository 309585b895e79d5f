"""TEE evidence: producers (inside the TEE) and verifiers, plus appraisal against a policy.

Verifiers return :class:`Claims` or raise :class:`securetf.errors.AttestationError`;
nothing here returns a bool. See docs/attestation.md.
"""

import typing as _typing

from securetf._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from securetf.attestation._amd_roots import AmdRoots, bundled_roots
    from securetf.attestation.appraisal import appraise
    from securetf.attestation.claims import REPORT_DATA_SIZE, TEES, Claims
    from securetf.attestation.dcap import Collateral, fetch_collateral, verify_dcap
    from securetf.attestation.detect import detect_tee, producer_for
    from securetf.attestation.evidence import Evidence, Producer
    from securetf.attestation.gramine import GramineProducer
    from securetf.attestation.reference import TeeReferences, check_references, reference_values
    from securetf.attestation.sim import verify_sim
    from securetf.attestation.sim_key import default_sim_trust, load_or_create_platform_key
    from securetf.attestation.sim_producer import SimProducer
    from securetf.attestation.snp import verify_snp
    from securetf.attestation.snp_report import SnpReport, TcbVersion
    from securetf.attestation.tcb import CONDITIONS, STATUS_CONDITIONS, appraise_platform
    from securetf.attestation.tsm import ConfigfsTsmProducer
    from securetf.attestation.verify import decode_evidence, verify_evidence

#: Each name is imported from its module on first use: the runtime produces evidence
#: and reads the platform key's home, and needs none of the verifiers (DCAP's binding
#: alone costs ``securetf run`` a twentieth of a second). No submodule is named like one
#: of these names (it would hide the name once imported).
_WHERE: dict[str, str] = {
    "AmdRoots": "_amd_roots",
    "bundled_roots": "_amd_roots",
    "appraise": "appraisal",
    "REPORT_DATA_SIZE": "claims",
    "TEES": "claims",
    "Claims": "claims",
    "Collateral": "dcap",
    "fetch_collateral": "dcap",
    "verify_dcap": "dcap",
    "detect_tee": "detect",
    "producer_for": "detect",
    "Evidence": "evidence",
    "Producer": "evidence",
    "GramineProducer": "gramine",
    "TeeReferences": "reference",
    "check_references": "reference",
    "reference_values": "reference",
    "verify_sim": "sim",
    "default_sim_trust": "sim_key",
    "load_or_create_platform_key": "sim_key",
    "SimProducer": "sim_producer",
    "verify_snp": "snp",
    "SnpReport": "snp_report",
    "TcbVersion": "snp_report",
    "CONDITIONS": "tcb",
    "STATUS_CONDITIONS": "tcb",
    "appraise_platform": "tcb",
    "ConfigfsTsmProducer": "tsm",
    "decode_evidence": "verify",
    "verify_evidence": "verify",
}

__all__ = [
    "CONDITIONS",
    "REPORT_DATA_SIZE",
    "STATUS_CONDITIONS",
    "TEES",
    "AmdRoots",
    "Claims",
    "Collateral",
    "ConfigfsTsmProducer",
    "Evidence",
    "GramineProducer",
    "Producer",
    "SimProducer",
    "SnpReport",
    "TcbVersion",
    "TeeReferences",
    "appraise",
    "appraise_platform",
    "bundled_roots",
    "check_references",
    "decode_evidence",
    "default_sim_trust",
    "detect_tee",
    "fetch_collateral",
    "load_or_create_platform_key",
    "producer_for",
    "reference_values",
    "verify_dcap",
    "verify_evidence",
    "verify_sim",
    "verify_snp",
]


__getattr__ = _lazy_names(__name__, _WHERE)
