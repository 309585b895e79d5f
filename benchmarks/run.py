"""``make bench``: run every benchmark suite and print one Markdown table.

Usage: python -m benchmarks.run [SUITE ...]   (default: all suites)
The table is also written to bench-results/latest.md, and its rows go into
docs/benchmarks.md's table: the rows of the suites that ran replace theirs, the other
suites' rows stay as they were measured (a partial run updates only its own).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from benchmarks._common import Row

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

SUITES = [
    "volume",
    "attestation",
    "cas",
    "fs",
    "serve",
    "serve_json",
    "runtime",
    "envimage",
    "log",
    "cas_log",
    "net",
    "net_training",
    "startup",
]


def _fmt(x: float) -> str:
    return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"


HEADER = [
    "| suite | measurement | securetf | baseline (same run) | ratio | target |",
    "|---|---|---|---|---|---|",
]


def table(rows: list[Row]) -> str:
    lines = list(HEADER)
    for r in rows:
        base = f"{r.baseline_name}: {_fmt(r.baseline_value)} {r.unit}" if r.baseline_name else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(
            f"| {r.suite} | {r.what} | {_fmt(r.value)} {r.unit} | {base} | {ratio} | {r.target} |"
        )
    return "\n".join(lines)


def update_doc(doc: str, ran: list[str], fresh: str) -> str:
    """``doc`` with the table between the bench markers holding ``fresh``'s rows for the
    suites in ``ran`` and the rows it had for the others, in :data:`SUITES` order."""
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC} has no {START} ... {END} table to update")
    head, rest = doc.split(START, 1)
    body, tail = rest.split(END, 1)
    lines = body.strip("\n").splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith("| suite |")), len(lines))
    prose, old = lines[:at], [line for line in lines[at + 2 :] if line.startswith("| ")]
    while prose and not prose[-1].strip():
        prose.pop()
    new = [line for line in fresh.splitlines()[2:] if line.startswith("| ")]
    kept = [line for line in old if _suite(line) not in ran] + new
    order = {name: i for i, name in enumerate(SUITES)}
    kept.sort(key=lambda line: order.get(_suite(line), len(order)))  # stable within a suite
    rows = "\n".join([*prose, *([""] if prose else []), *HEADER, *kept])
    return f"{head}{START}\n{rows}\n{END}{tail}"


def _suite(row: str) -> str:
    return row.split("|")[1].strip()


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
    DOC.write_text(update_doc(DOC.read_text(), names, text))
    print(f"updated {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
