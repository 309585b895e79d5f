"""Sealed volumes: encrypted, authenticated, versioned directory trees.

The format is specified in docs/volume-format.md.
"""

from securetf.volume._keys import VolumeKey, generate_key_file
from securetf.volume._reader import VolumeFileReader
from securetf.volume._source import scan_tree
from securetf.volume._tree import put_file, seal_tree, unseal_tree
from securetf.volume._volume import FileInfo, VerifyReport, Volume
from securetf.volume._writer import VolumeFileWriter

__all__ = [
    "FileInfo",
    "VerifyReport",
    "Volume",
    "VolumeFileReader",
    "VolumeFileWriter",
    "VolumeKey",
    "generate_key_file",
    "put_file",
    "scan_tree",
    "seal_tree",
    "unseal_tree",
]
