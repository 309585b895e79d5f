"""``make bench``: run every benchmark suite and print one Markdown table.

Usage: python -m benchmarks.run [SUITE ...]   (default: all suites)
The table is also written to bench-results/latest.md.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from benchmarks._common import Row

SUITES = [
    "volume",
    "attestation",
    "cas",
    "fs",
    "serve",
    "runtime",
    "envimage",
    "log",
    "net",
    "net_training",
    "startup",
]


def _fmt(x: float) -> str:
    return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| suite | measurement | securetf | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = f"{r.baseline_name}: {_fmt(r.baseline_value)} {r.unit}" if r.baseline_name else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(
            f"| {r.suite} | {r.what} | {_fmt(r.value)} {r.unit} | {base} | {ratio} | {r.target} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = argv or SUITES
    rows: list[Row] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}", file=sys.stderr, flush=True)
        rows.extend(module.run())
    text = table(rows)
    print(text)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
