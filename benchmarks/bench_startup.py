"""The CLI's start-up, beside the interpreter's own in the same run.

Run: python -m benchmarks.run startup   (or ``make bench``; the run rows need root and
/dev/fuse)

- ``python -c pass``: the baseline, the interpreter alone.
- ``securetf --help``: the entry point as the installed ``securetf`` script calls it
  (``from securetf.cli.main import main; main()``); target within 10x of the baseline.
  Command modules are imported only when their command runs.
- ``securetf run`` to the program's first line: invoking the command until the program
  prints a timestamp; in between the runtime measures and copies the app, attests and
  provisions at the CAS, mounts two sealed volumes and the program's root. Target < 0.5 s.

Each figure is the median of ``REPEAT`` runs, with the spread (lowest-highest) in its
row: the machine is shared and noisy. securetf's bytecode is compiled first, as installing
the package compiles it: an editable install run under ``PYTHONDONTWRITEBYTECODE`` would
otherwise compile every module it imports on every start (about 0.07 s of ``securetf run``
on this machine), which is no work of securetf's.
"""

from __future__ import annotations

import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.runtime.support import make_job

import securetf
from benchmarks._common import Row
from benchmarks.bench_runtime import FIRST, _deployment, _first_line, _plain_env

REPEAT = 7
ENTRY = "from securetf.cli.main import main; main()"


def _compile_bytecode() -> None:
    """securetf's modules compiled to ``__pycache__``, as ``pip install`` leaves them."""
    if not compileall.compile_dir(Path(securetf.__file__).parent, quiet=1):
        raise RuntimeError("securetf's modules did not compile")


def _wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def _series(fn: Callable[[], float]) -> tuple[float, float, float]:
    """(median, lowest, highest) of REPEAT runs, after one warm-up run."""
    fn()
    runs = [fn() for _ in range(REPEAT)]
    return statistics.median(runs), min(runs), max(runs)


def _spread(low: float, high: float) -> str:
    return f"median of {REPEAT}, spread {low:.3f}-{high:.3f} s"


def _cli() -> list[Row]:
    python = sys.executable
    base, b_low, b_high = _series(lambda: _wall([python, "-c", "pass"]))
    helped, h_low, h_high = _series(lambda: _wall([python, "-c", ENTRY, "--help"]))
    return [
        Row(
            "startup",
            f"securetf --help ({_spread(h_low, h_high)}; python -c pass: {_spread(b_low, b_high)})",
            helped,
            "s",
            "python -c pass",
            base,
            "<= 10x",
        )
    ]


def _run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="securetf-bench-startup-") as tmp:
        cas, dep = _deployment(Path(tmp))
        job = None
        try:
            job = make_job(
                dep,
                app_files={"first.py": FIRST},
                services={"first": ["python", "first.py"]},
                dataset={"table.csv": b"id\n1\n"},
            )
            (data := job.root / "plain-data").mkdir()
            (model := job.root / "plain-model").mkdir()
            env = _plain_env(job, data, model)
            run = job.run_args("first")
            shield, s_low, s_high = _series(lambda: _first_line(run, job.run_env(), job.root))
            plain, p_low, p_high = _series(
                lambda: _first_line(["python", "first.py"], env, job.app)
            )
        finally:
            cas.stop()
            if job is not None:
                subprocess.run(["rm", "-rf", str(job.root)], check=False)
    return [
        Row(
            "startup",
            f"securetf run, invoking to the program's first line, 2 volumes "
            f"({_spread(s_low, s_high)}; python first.py: {_spread(p_low, p_high)})",
            shield,
            "s",
            "python first.py",
            plain,
            "< 0.5 s",
        )
    ]


def run() -> list[Row]:
    _compile_bytecode()
    return _cli() + _run()
