"""``securetf run``: the runtime that measures, attests, provisions, mounts and launches."""

from securetf.runtime.measure import measure, measurement_text, snapshot
from securetf.runtime.run import RunOptions, run

__all__ = ["RunOptions", "measure", "measurement_text", "run", "snapshot"]
