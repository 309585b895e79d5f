"""``tee``: which TEEs and TCB states a policy trusts, and the image each TEE must show.

The reference values (``sgx``, ``tdx``, ``sev-snp``) are hex of each field's natural length,
named as ``securetf attest verify --json`` prints them, so its output pastes in. A policy
without them stays valid (and hashes as before); the CAS then refuses that TEE's evidence.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, model_validator

from securetf.policy import limits
from securetf.policy._types import AdvisoryId, Hex32, Hex48, PolicyModel, SetOf

AllowedTee = Literal["sim", "tdx", "sev-snp", "sgx", "test-roots"]
_HARDWARE = frozenset({"tdx", "sev-snp", "sgx"})
TcbStatus = Literal["sw-hardening-needed", "configuration-needed", "out-of-date"]

Svn = Annotated[StrictInt, Field(ge=0, le=0xFFFF)]
Spl = Annotated[StrictInt, Field(ge=0, le=0xFF)]


class SgxReference(PolicyModel):
    """An enclave: by ``mr_enclave``, or by ``mr_signer`` + ``isv_prod_id`` + ``min_isv_svn``."""

    mr_enclave: Hex32 | None = None
    """MRENCLAVE: exactly this enclave build."""
    mr_signer: Hex32 | None = None
    """MRSIGNER: any enclave of this signing key (with the product id and SVN below)."""
    isv_prod_id: Svn | None = None
    min_isv_svn: Svn | None = None
    """The lowest ISV SVN accepted: older (unpatched) enclave versions are refused."""

    @model_validator(mode="after")
    def _one_identity(self) -> SgxReference:
        signer = (self.mr_signer, self.isv_prod_id, self.min_isv_svn)
        if any(v is not None for v in signer) and any(v is None for v in signer):
            raise ValueError("mr_signer, isv_prod_id and min_isv_svn go together: give all three")
        if self.mr_enclave is None and self.mr_signer is None:
            raise ValueError("name the enclave: mr_enclave, or mr_signer, isv_prod_id, min_isv_svn")
        return self


class TdxReference(PolicyModel):
    """A TD: its initial image (``mr_td``) and what was measured after it (``rtmr0``-``3``)."""

    mr_td: Hex48
    rtmr0: Hex48
    """Firmware configuration (TDVF)."""
    rtmr1: Hex48
    """The OS loader and kernel."""
    rtmr2: Hex48
    """Kernel command line and initrd."""
    rtmr3: Hex48
    """Measured at run time."""
    mr_config_id: Hex48 | None = None
    mr_owner: Hex48 | None = None


class SnpTcb(PolicyModel):
    """Lowest accepted security patch level of each firmware part (``fmc``: Turin only)."""

    bootloader: Spl
    tee: Spl
    snp: Spl
    microcode: Spl
    fmc: Spl | None = None


class SnpReference(PolicyModel):
    """An SEV-SNP guest: launch measurement, TCB floor, guest policy, VMPL, host data."""

    measurement: Hex48
    min_tcb: SnpTcb
    """Compared with the report's REPORTED_TCB, part by part."""
    allow_smt: StrictBool = False
    """Whether the guest policy may allow SMT (hyperthreads shared with the host's work)."""
    vmpl: Annotated[
        tuple[Annotated[StrictInt, Field(ge=0, le=3)], ...], Field(min_length=1), SetOf
    ] = (0,)
    """The VMPLs the report may come from (0: the most privileged, no paravisor)."""
    host_data: Hex32 | None = None
    """HOST_DATA the host set at launch, when the deployment pins it."""


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, dict) else value


# One set or a list of them; an empty list is left out of the canonical form, so that a
# policy written before reference values existed keeps its hash.
_Sets = Field(max_length=limits.MAX_MEASUREMENTS, exclude_if=lambda value: not value)
SgxReferences = Annotated[
    tuple[SgxReference, ...],
    BeforeValidator(_one_or_many, json_schema_input_type=SgxReference | list[SgxReference]),
    _Sets,
]
TdxReferences = Annotated[
    tuple[TdxReference, ...],
    BeforeValidator(_one_or_many, json_schema_input_type=TdxReference | list[TdxReference]),
    _Sets,
]
SnpReferences = Annotated[
    tuple[SnpReference, ...],
    BeforeValidator(_one_or_many, json_schema_input_type=SnpReference | list[SnpReference]),
    _Sets,
]


class Tee(PolicyModel):
    model_config = ConfigDict(serialize_by_alias=True)

    allow: Annotated[tuple[AllowedTee, ...], Field(min_length=1), SetOf]
    """TEE types whose evidence is accepted; ``sim`` protects nothing and must be named.
    ``test-roots`` also accepts the hardware TEEs named here when their evidence chains to
    the test roots the CAS was given (emulated hardware, which protects nothing either)."""
    tolerate: Annotated[tuple[TcbStatus, ...], SetOf] = ()
    """TCB statuses accepted besides up to date; ``revoked`` never passes."""
    ignore_advisories: Annotated[
        tuple[AdvisoryId, ...], Field(max_length=limits.MAX_LIST_ITEMS), SetOf
    ] = ()
    """Advisory ids (``INTEL-SA-00615``) that do not count against the TCB."""
    sgx: SgxReferences = ()
    """Accepted enclaves; SGX evidence must match one."""
    tdx: TdxReferences = ()
    """Accepted TDs; TDX evidence must match one."""
    sev_snp: SnpReferences = Field(default=(), alias="sev-snp")
    """Accepted SEV-SNP guests; SEV-SNP evidence must match one."""

    @model_validator(mode="after")
    def _test_roots_qualify_hardware(self) -> Tee:
        if "test-roots" in self.allow and not _HARDWARE & set(self.allow):
            raise ValueError(
                "test-roots qualifies the hardware TEEs: name sgx, tdx or sev-snp beside it"
            )
        return self
