"""An application shipped in a sealed code volume: decrypted only inside the runtime."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from securetf.errors import IntegrityError

from .support import VENV_BIN, Deployment, single_owner_header

PROGRAM = "import os\nprint('code volume says', os.environ['GREETING'])\n"


def _policy(dep: Deployment, name: str, root: Path, measurement: str) -> str:
    return (
        single_owner_header(dep, name)
        + f"""secrets:
  code-key: {{kind: volume-key, source: imported}}
volumes:
  code: {{key: code-key, rollback: none}}
services:
  hello:
    measurement: "{measurement}"
    command: [python, main.py]
    code: {{volume: code, path: {root / "mnt" / "code"}}}
    environment: {{GREETING: "hi"}}
"""
    )


def _run(dep: Deployment, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**dep.cas.env(), "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    exe = [str(VENV_BIN / "python"), "-m", "securetf.cli.main"]
    return subprocess.run(
        [*exe, *map(str, args)], env=env, capture_output=True, text=True, check=False, timeout=120
    )


def test_code_from_a_sealed_volume_runs_and_tampering_stops_it(
    deployment: Deployment, root: Path
) -> None:
    dep, name = deployment, f"code-{secrets.token_hex(3)}"
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text(PROGRAM)
    dep.cli("volume", "keygen", root / "code.key")
    dep.cli("volume", "seal", root / "app", root / "sealed-code", "--key-file", root / "code.key")
    (root / "policy.yaml").write_text(_policy(dep, name, root, "sha256:" + "0" * 64))
    measured = dep.cli("measure", "--policy", root / "policy.yaml", "--service", "hello")
    (root / "policy.yaml").write_text(_policy(dep, name, root, measured.stdout.strip()))
    url = dep.cas.url
    dep.cli(
        "policy",
        "apply",
        "--yes",
        root / "policy.yaml",
        "--cas",
        url,
        "--key",
        dep.owner_key,
        "--secret",
        f"code-key={root / 'code.key'}",
    )
    run = ["run", "--cas", url, "--policy", name, "--service", "hello"]
    ok = _run(dep, *run, "--volume", f"code={root / 'sealed-code'}")
    assert ok.returncode == 0, ok.stderr
    assert "code volume says hi" in ok.stdout
    # Passing an app directory for a code-volume service is refused before anything runs.
    refused = _run(dep, *run, "--app", root / "app", "--volume", f"code={root / 'sealed-code'}")
    assert refused.returncode == 2
    assert "runs code from the sealed volume" in refused.stderr
    # Storage flips a bit of the sealed code: it never runs.
    obj = next(p for p in (root / "sealed-code" / "objects").rglob("*") if p.is_file())
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 1
    obj.write_bytes(data)
    tampered = _run(dep, *run, "--volume", f"code={root / 'sealed-code'}")
    assert tampered.returncode != 0
    assert "code volume says" not in tampered.stdout
    assert tampered.returncode == IntegrityError.exit_code, tampered.stderr
    assert "code volume 'code' failed its integrity check" in tampered.stderr
    assert "Traceback" not in tampered.stderr
