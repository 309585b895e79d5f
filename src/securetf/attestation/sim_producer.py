"""The simulated producer: evidence signed by this machine's simulated platform key."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from securetf.attestation.evidence import Evidence, check_report_data
from securetf.attestation.sim import MEASUREMENT_SIZE, sign_sim_evidence
from securetf.attestation.sim_key import load_or_create_platform_key
from securetf.errors import UsageError

__all__ = ["SimProducer"]


class SimProducer:
    """Produces sim evidence for ``measurement``; gives no hardware protection."""

    tee = "sim"

    def __init__(
        self,
        measurement: bytes,
        *,
        home: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(measurement) != MEASUREMENT_SIZE:
            raise UsageError(
                f"a sim measurement is {MEASUREMENT_SIZE} bytes, got {len(measurement)}"
            )
        self._measurement = measurement
        self._home = home
        self._clock = clock

    def evidence(self, report_data: bytes) -> Evidence:
        key = load_or_create_platform_key(self._home)
        data = sign_sim_evidence(
            key,
            measurement=self._measurement,
            report_data=check_report_data(report_data),
            timestamp=int(self._clock()),
        )
        return Evidence(tee="sim", data=data)
