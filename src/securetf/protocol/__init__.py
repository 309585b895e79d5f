"""Wire formats shared by the CAS, the runtime and the client SDK (no I/O, no trust logic)."""

from securetf.protocol.binding import (
    CONFIG_INFO,
    cas_report_data,
    provision_report_data,
    tag_update_message,
)
from securetf.protocol.messages import (
    ApplyResult,
    AuditHead,
    AuditPage,
    CasIdentityDoc,
    NonceResponse,
    PolicyApply,
    PolicyApprove,
    PolicyDoc,
    PolicyHistory,
    ProvisionRequest,
    ProvisionResponse,
    ServiceConfig,
    TagUpdate,
    VolumeGrant,
)

__all__ = [
    "CONFIG_INFO",
    "ApplyResult",
    "AuditHead",
    "AuditPage",
    "CasIdentityDoc",
    "NonceResponse",
    "PolicyApply",
    "PolicyApprove",
    "PolicyDoc",
    "PolicyHistory",
    "ProvisionRequest",
    "ProvisionResponse",
    "ServiceConfig",
    "TagUpdate",
    "VolumeGrant",
    "cas_report_data",
    "provision_report_data",
    "tag_update_message",
]
