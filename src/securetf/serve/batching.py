"""Adaptive batching: concurrent requests for one model become one model call.

A request that arrives at an idle model runs at once. While other requests for the same
model are being received and decoded (the handlers announce them with :meth:`admit`), the
worker waits for them, up to ``timeout`` and ``max_batch_size`` rows, stacks their inputs
on the first axis, calls the model once and hands each caller its own rows back. So one
client pays no waiting, and many clients share model calls.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from securetf.errors import Error, UsageError
from securetf.serve._model_errors import model_error
from securetf.serve.signature import SIGNATURE_KEY, Arrays, LoadedModel

log = logging.getLogger(__name__)

__all__ = ["Batcher"]


@dataclass
class _Job:
    inputs: Arrays
    rows: int
    signature: str
    # Inputs stack only with inputs of the same signature, dtypes and row shapes.
    key: tuple[Any, ...]
    future: Future[Arrays] = field(default_factory=Future)


def _job(inputs: Arrays, signature: str, batched: bool) -> _Job:
    if not batched:
        return _Job(inputs, 0, signature, ("alone", id(inputs)))
    scalars = sorted(k for k, v in inputs.items() if v.ndim == 0)
    if scalars:  # the codecs refuse these first; never an IndexError from here
        raise UsageError(f"inputs {scalars} must have a batch dimension, got scalars")
    rows = {v.shape[0] for v in inputs.values()}
    if len(rows) != 1:
        raise UsageError("all inputs must have the same size in their first dimension")
    key = (signature, *sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))
    return _Job(inputs, rows.pop(), signature, key)


class Batcher:
    """One worker thread in front of one model: the only caller of its ``predict``."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        max_batch_size: int,
        timeout: float,
        on_batch: Callable[[int, int], None] = lambda rows, requests: None,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1:
            raise UsageError("the maximum batch size must be at least 1")
        if timeout < 0:
            raise UsageError("the batch timeout cannot be negative")
        self._model = model
        self._batched = {k: sig.batched for k, sig in model.signatures.items()}
        self._max = max_batch_size
        self._timeout = timeout
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._queue: collections.deque[_Job] = collections.deque()
        self._active = 0
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Announce a request for this model while it is decoded and until it is answered."""
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def submit(self, inputs: Arrays, signature: str = SIGNATURE_KEY) -> Future[Arrays]:
        """Queue one request's inputs; the future gives its outputs or a securetf error."""
        if signature not in self._batched:
            raise UsageError(f"Serving signature name: {signature!r} not found in signature def")
        job = _job(inputs, signature, self._batched[signature])
        with self._cond:
            if self._closed:
                raise Error("the server is shutting down")
            self._queue.append(job)
            self._cond.notify_all()
        return job.future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    # -- the worker --------------------------------------------------------------------
    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            first = self._queue.popleft()
            batch, rows = [first], first.rows
            if not self._batched[first.signature]:
                return batch
            deadline = time.monotonic() + self._timeout
            while rows < self._max:
                if self._queue:
                    nxt = self._queue[0]
                    if nxt.key != first.key or rows + nxt.rows > self._max:
                        break
                    batch.append(self._queue.popleft())
                    rows += nxt.rows
                    continue
                # Nobody else is on the way (every announced request is in this batch).
                remaining = deadline - time.monotonic()
                if self._active <= len(batch) or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        rows = [j.rows for j in batch]
        stacked = {k: np.concatenate([j.inputs[k] for j in batch]) for k in batch[0].inputs}
        try:
            outputs = self._model.predict(stacked, signature=batch[0].signature)
        except Exception:  # one bad request must not fail the others: run each alone
            for job in batch:
                self._run_alone(job)
            return
        total = sum(rows)
        if any(v.ndim == 0 or v.shape[0] != total for v in outputs.values()):
            for job in batch:  # outputs not per row: the model cannot be batched after all
                self._run_alone(job)
            return
        self._on_batch(total, len(batch))
        start = 0
        for job, n in zip(batch, rows, strict=True):
            job.future.set_result({k: v[start : start + n] for k, v in outputs.items()})
            start += n

    def _run_alone(self, job: _Job) -> None:
        try:
            outputs = self._model.predict(job.inputs, signature=job.signature)
        except Exception as exc:
            job.future.set_exception(model_error(exc))
            return
        self._on_batch(job.rows, 1)
        job.future.set_result(outputs)
