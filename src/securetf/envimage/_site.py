"""What a Python environment spans beyond its prefix: shared by the runtime's view of the
environment securetf runs in and by ``securetf env pack``."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path


def under(path: str, root: str) -> bool:
    """Whether the normalized absolute ``path`` is ``root`` or lies below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def pth_dirs(site_dirs: Iterable[str]) -> list[str]:
    """Directories that the ``.pth`` files of the site directories add to ``sys.path``
    (editable installs); ``import`` lines and missing directories are skipped."""
    found: list[str] = []
    for site_dir in site_dirs:
        try:
            names = sorted(n for n in os.listdir(site_dir) if n.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            try:
                lines = Path(site_dir, name).read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    entry = posixpath.normpath(posixpath.join(site_dir, line))
                    if os.path.isdir(entry):
                        found.append(entry)
    return found
