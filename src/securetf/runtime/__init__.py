"""``securetf run``: the runtime that measures, attests, provisions, mounts and launches."""

from securetf.runtime.measure import (
    Measurement,
    measure,
    measure_launcher,
    measurement_text,
    snapshot,
)
from securetf.runtime.run import RunOptions, run

__all__ = [
    "Measurement",
    "RunOptions",
    "measure",
    "measure_launcher",
    "measurement_text",
    "run",
    "snapshot",
]
