"""``securetf`` with the CAS's transparency log switched off: the baseline of
bench_cas_log only. No such switch exists in the product; here every append is a no-op."""

from __future__ import annotations

from securetf.cas.store._tx_log import LogOps


def _no_append(self: LogOps, entry: bytes, ref: str | None = None) -> int:
    return 0


LogOps.append_log = _no_append  # type: ignore[method-assign]

if __name__ == "__main__":
    from securetf.cli.main import main

    main()
