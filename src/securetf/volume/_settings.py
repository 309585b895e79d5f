"""Named limits and constants of the volume format (docs/volume-format.md)."""

from __future__ import annotations

#: Plaintext bytes per chunk unless a volume is created with another size.
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 4 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024

#: Files and manifests are padded to at least this many bytes, so tiny sizes do not show.
MIN_PADDED_SIZE = 256

#: Largest manifest a reader accepts (bounds memory before authentication).
MAX_MANIFEST_BYTES = 256 * 1024 * 1024

#: Plaintext a writable file keeps in memory before it encrypts full chunks to storage.
WRITE_CACHE_BYTES = 8 * 1024 * 1024

#: Consecutive encrypted chunks gathered before one write to storage.
WRITE_BATCH_BYTES = 4 * 1024 * 1024

#: The mode bits a volume records and applies: permissions only. Setuid, setgid and
#: sticky are never kept, so unsealing (often as root) cannot hand out a setuid program.
MODE_BITS = 0o777

#: Longest path inside a volume, and longest single component.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255

MANIFEST_NAME = "securetf-volume"
OBJECTS_DIR = "objects"
LOCK_NAME = ".lock"
