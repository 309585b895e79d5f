"""Every limit of the policy layer, in one place.

They bound what an untrusted policy file or signed request can make the CAS do (memory,
time, database rows), and how long a signed request stays usable. Change them here only.
"""

from __future__ import annotations

# Parsing: a policy file is small text; anything near these bounds is a mistake or an attack.
MAX_POLICY_BYTES = 256 * 1024
"""Largest policy YAML document accepted, in bytes."""
MAX_YAML_ALIASES = 64
"""Most ``*alias`` references in one document (anchors are rarely needed in a policy)."""
MAX_YAML_NODES = 50_000
"""Most values in the document once aliases are expanded (stops "billion laughs")."""
MAX_YAML_DEPTH = 32
"""Deepest nesting of mappings and lists."""

# The policy model.
MAX_NAME_LENGTH = 63
"""Names of policies, secrets, volumes and services are DNS labels: 63 characters at most."""
MAX_TEXT_LENGTH = 4096
"""Longest free-form string (a command argument, an environment value, a common name)."""
MAX_FILE_LENGTH = 64 * 1024
"""Longest content template of one file under ``services.*.files``."""
MAX_OWNERS = 32
MAX_SECRETS = 256
MAX_VOLUMES = 64
MAX_SERVICES = 64
MAX_INSTANCES = 1024
"""Most instances of one service."""
MAX_MEASUREMENTS = 16
"""Most allowed measurements of one service."""
MAX_LIST_ITEMS = 256
"""Most items of any other list (command arguments, mounts, ports, peers, advisories)."""
MAX_MAP_ITEMS = 256
"""Most entries of any other mapping (environment, files)."""
MAX_RANDOM_BYTES = 1024
"""Largest ``random`` secret, in bytes."""
MAX_TMPFS_BYTES = 1024**4
"""Largest size of one of a program's memory file systems (``services.*.tmpfs``): 1 TiB."""
MAX_ACCOUNT_ID = 2**31 - 1
"""Largest uid or gid of a program (``services.*.user``); (uid_t)-1 means "unchanged"."""
MAX_VOLUME_PATH_BYTES = 4096
"""Longest path inside a volume (``services.*.output``), as the volume format allows."""
MAX_VOLUME_NAME_BYTES = 255
"""Longest name of one file or directory inside a volume, as the volume format allows."""
MAX_CERT_VALID_DAYS = 397
"""Longest validity of an ``x509`` secret (the CA/Browser Forum's ceiling for TLS)."""

# Signed requests.
MAX_REQUEST_BYTES = 4096
"""Largest signed request body."""
MAX_REQUEST_AGE_SECONDS = 300
"""A signed request is refused once it is older than this; the CAS must remember the
request ids it has seen for at least this long plus :data:`MAX_CLOCK_SKEW_SECONDS`."""
MAX_CLOCK_SKEW_SECONDS = 60
"""How far in the future a request's ``issued_at`` may lie (the signer's clock runs ahead)."""
REQUEST_ID_BYTES = 16
"""Random bytes in a request id (written as 32 hex digits)."""

#: Longest time a retired policy CA stays trusted after a rotation (``ca.overlap_seconds``).
MAX_CA_OVERLAP_SECONDS = 90 * 86400
#: Longest time a replaced imported secret stays readable to owners
#: (``previous_readable_seconds``).
MAX_PREVIOUS_SECRET_SECONDS = 365 * 86400
