"""TEE evidence: producers (inside the TEE) and verifiers, plus appraisal against a policy.

Verifiers return :class:`Claims` or raise :class:`securetf.errors.AttestationError`;
nothing here returns a bool. See docs/attestation.md.
"""

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
