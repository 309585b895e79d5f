"""What a service is: its measured code, command, mounts, environment, files and network."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from securetf.errors import PolicyError
from securetf.policy import limits
from securetf.policy._templates import parse_template
from securetf.policy._types import (
    AbsolutePath,
    AbsolutePathText,
    Digest,
    Egress,
    EnvName,
    FileText,
    Name,
    NameText,
    PolicyModel,
    Port,
    SetOf,
    Text,
)


def _template(value: str) -> str:
    try:
        parse_template(value)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _search_path(value: str) -> str:
    for entry in value.split(":"):
        if not entry:
            # An empty entry means the working directory to execvp: the app, or worse.
            raise ValueError("must not have an empty entry (a leading, trailing or double ':')")
        if not entry.startswith("/"):
            raise ValueError(f"must hold absolute directories only, got {entry!r}")
        AbsolutePathText.validate_python(entry)
    return value


_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _size(value: str) -> str:
    if int(value[:-1]) * _SIZE_UNITS[value[-1]] > limits.MAX_TMPFS_BYTES:
        raise ValueError(f"must be at most {limits.MAX_TMPFS_BYTES // 1024**3}g")
    return value


Template = Annotated[Text, AfterValidator(_template)]
FileTemplate = Annotated[FileText, AfterValidator(_template)]
_List = Field(max_length=limits.MAX_LIST_ITEMS)
_Map = Field(max_length=limits.MAX_MAP_ITEMS)


class Mount(PolicyModel):
    volume: Name
    """A volume defined under ``volumes``."""
    path: AbsolutePath
    """Where the program sees the volume's files."""
    mode: Literal["ro", "rw"] = "ro"
    """``rw`` lets the service commit new states of the volume."""


class CodeVolume(PolicyModel):
    """An application shipped inside a sealed volume, mounted read-only and measured."""

    volume: Name
    path: AbsolutePath


class Network(PolicyModel):
    """Everything the service may reach or be reached by; empty means nothing."""

    peers: Annotated[tuple[Name, ...], _List, SetOf] = ()
    """Services whose instances this one talks to, over mutual TLS."""
    listen: Annotated[tuple[Port, ...], _List, SetOf] = ()
    """Ports that instances of the peer services may connect to."""
    egress: Annotated[tuple[Egress, ...], _List, SetOf] = ()
    """Destinations outside the policy: ``host:port``, ``cidr:port`` or ``[v6cidr]:port``."""
    public: Annotated[tuple[Port, ...], _List, SetOf] = ()
    """Ports open to clients outside the policy, over TLS with the policy CA's certificate."""


SearchPath = Annotated[
    StrictStr, Field(min_length=1, max_length=limits.MAX_TEXT_LENGTH), AfterValidator(_search_path)
]
"""``PATH``: absolute, normalized directories separated by ``:``."""

TmpfsSize = Annotated[StrictStr, Field(pattern=r"^[1-9][0-9]{0,9}[kmg]$"), AfterValidator(_size)]
"""A size in KiB, MiB or GiB: ``512k``, ``256m``, ``2g``."""


class Tmpfs(PolicyModel):
    """The program's memory file systems: the most each may hold. They count against the
    memory of the TEE, and are gone when the program ends."""

    tmp: TmpfsSize = "256m"
    """``/tmp``."""
    var_tmp: TmpfsSize = "64m"
    """``/var/tmp``."""
    home: TmpfsSize = "256m"
    """The program's ``HOME``, ``/root`` (caches such as ``~/.keras`` land here)."""
    shm: TmpfsSize = "64m"
    """``/dev/shm``."""


#: The program's uid and gid when the policy gives none: distroless's "nonroot".
DEFAULT_ID = 65532
#: Ids the program may not have: root, whose files and processes are the runtime's, and
#: the kernel's overflow id ("nobody"), which stands for every unmapped owner.
_RESERVED_IDS = {0: "root", 65534: "nobody, the kernel's overflow id"}


def _account_id(value: int) -> int:
    if value in _RESERVED_IDS:
        raise ValueError(f"must not be {value} ({_RESERVED_IDS[value]})")
    return value


AccountId = Annotated[StrictInt, Field(ge=0, le=limits.MAX_ACCOUNT_ID), AfterValidator(_account_id)]
"""A uid or gid: not 0 (root) and not 65534 (nobody)."""


class User(PolicyModel):
    """Who the program is: an unprivileged uid and gid of its own, never root. Its memory
    file systems, volumes and secret files are its own; the runtime stays root outside."""

    uid: AccountId = DEFAULT_ID
    gid: AccountId = DEFAULT_ID


OUTPUT_FORMS = "'operator', 'none' or {sealed: VOLUME/PATH}"


def _output_path(value: str) -> str:
    volume, _, path = value.partition("/")
    parts = path.split("/")
    if not volume or not path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            "must be VOLUME/PATH: a volume's name, '/', and a file's path inside it, "
            f"such as model/logs/train.log (no '.', '..', '//' or trailing '/'), got {value!r}"
        )
    try:
        NameText.validate_python(volume)
    except ValueError:
        raise ValueError(
            f"must start with a volume's name (lower-case letters, digits, '-'), got {volume!r}"
        ) from None
    if len(path.encode()) > limits.MAX_VOLUME_PATH_BYTES or any(
        len(p.encode()) > limits.MAX_VOLUME_NAME_BYTES for p in parts
    ):
        raise ValueError(
            f"the path inside the volume must be at most {limits.MAX_VOLUME_PATH_BYTES} bytes, "
            f"each name at most {limits.MAX_VOLUME_NAME_BYTES}"
        )
    return value


OutputPath = Annotated[Text, AfterValidator(_output_path)]
"""``VOLUME/PATH``: a volume of the policy and a file's path inside it."""


class SealedOutput(PolicyModel):
    """The program's standard output and error, appended to a file of a read-write volume
    that the service mounts, and committed with it."""

    sealed: OutputPath
    """``VOLUME/PATH``, such as ``model/logs/train.log``."""

    @property
    def volume(self) -> str:
        return self.sealed.partition("/")[0]

    @property
    def path(self) -> str:
        """The file's path inside the volume (``logs/train.log``)."""
        return self.sealed.partition("/")[2]


def _output_mode(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    try:
        return handler(value)
    except ValueError:
        raise ValueError(f"must be {OUTPUT_FORMS}, got {value!r}") from None


def _output_form(value: object) -> str | None:
    if isinstance(value, str):
        return "mode"
    return "sealed" if isinstance(value, dict | SealedOutput) else None


#: The union's tags, which error messages leave out of the key path (the user never wrote them).
OUTPUT_TAGS = ("mode", "sealed")

Output = Annotated[
    Annotated[Literal["operator", "none"], WrapValidator(_output_mode), Tag("mode")]
    | Annotated[SealedOutput, Tag("sealed")],
    Discriminator(
        _output_form, custom_error_type="output", custom_error_message=f"must be {OUTPUT_FORMS}"
    ),
]
"""Where the program's standard output and error go: ``operator`` (the runtime's own, which
the operator reads), ``none`` (discarded) or ``{sealed: VOLUME/PATH}``."""


class Service(PolicyModel):
    measurement: Annotated[
        tuple[Digest, ...],
        BeforeValidator(_one_or_many, json_schema_input_type=Digest | list[Digest]),
        Field(min_length=1, max_length=limits.MAX_MEASUREMENTS),
        SetOf,
    ]
    """The allowed measurement(s): one ``sha256:...`` or a list of them."""
    command: Annotated[tuple[Text, ...], Field(min_length=1, max_length=limits.MAX_LIST_ITEMS)]
    """The program and its arguments (quote numbers: ``"5"``)."""
    instances: Annotated[StrictInt, Field(ge=1, le=limits.MAX_INSTANCES)] = 1
    mounts: Annotated[tuple[Mount, ...], _List] = ()
    environment: Annotated[dict[EnvName, Template], _Map] = Field(default_factory=dict)
    """Environment variables; values may hold ``{{ secrets.NAME }}`` templates. Nothing of
    the operator's environment reaches the program; ``PATH`` is set with ``path``."""
    # Left out of the canonical form when not given, so that a policy written before these
    # keys existed keeps its hash.
    path: SearchPath | None = Field(default=None, exclude_if=lambda value: value is None)
    """The program's ``PATH``, where ``command[0]`` is looked up too (in the program's view,
    before it is measured). Default: the bin directory of the Python environment securetf
    runs in, then ``/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin``."""
    tmpfs: Tmpfs = Field(default_factory=Tmpfs, exclude_if=lambda value: value == Tmpfs())
    """Sizes of the program's memory file systems; the rest of its view is read-only."""
    user: User = Field(default_factory=User, exclude_if=lambda value: value == User())
    """The program's uid and gid (default 65532 both); it has no capabilities either way."""
    env_image: Digest | None = Field(default=None, exclude_if=lambda value: value is None)
    """The measurement of the environment image the program runs on (``securetf env pack``
    prints it): its interpreter and libraries, read-only and checked as they are read.
    Without it the program sees the Python environment securetf runs in, unmeasured."""
    output: Output = Field(default="operator", exclude_if=lambda value: value == "operator")
    """Where the program's standard output and error go (default ``operator``: to the
    runtime's, which the operator reads, with every secret the program prints)."""
    files: Annotated[dict[AbsolutePath, FileTemplate], _Map] = Field(default_factory=dict)
    """Files placed in memory inside the TEE; contents may hold templates."""
    network: Network = Field(default_factory=Network)
    code: CodeVolume | None = None
    """Where the application comes from when it is shipped in a sealed volume."""

    @field_validator("environment")
    @classmethod
    def _no_path_variable(cls, value: dict[str, str]) -> dict[str, str]:
        if "PATH" in value:
            raise ValueError(
                "PATH is set with the service's 'path' key: command[0] is looked up there too"
            )
        return value

    @model_validator(mode="after")
    def _distinct_paths(self) -> Service:
        paths = [mount.path for mount in self.mounts]
        if self.code is not None:
            paths.append(self.code.path)
        for index, path in enumerate(paths):
            if path in paths[:index]:
                raise ValueError(f"two mounts (or a mount and code) share the path {path!r}")
        return self
