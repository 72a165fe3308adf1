"""Dynamic micro-batching: concurrent requests share one forward pass.

In: ``await batcher.submit(sequences)`` from any number of concurrent requests.
Out: for each caller, the results (one per sequence) that belong to its sequences, in order.

One consumer task takes the first waiting request and every request already queued behind it (those
that arrived while the model ran the previous batch), up to ``max_batch`` sequences (a request that
would overflow the batch opens the next one; a single request larger than ``max_batch`` runs alone).
The batching window adapts to load: only when the previous batch was shared (several requests, so
requests are arriving faster than one at a time) does it also wait up to ``max_wait_ms`` for more; a
request reaching an idle server runs at once, so batching adds no latency at low load. The gathered
sequences go to ``predict_fn`` in one call, on a dedicated worker thread, so the event loop keeps
accepting requests while the model runs. With ``enabled=False`` every request gets its own call
(the baseline the benchmark compares against).

If a shared call fails, each of its requests is retried alone, so that one request's error is
never reported to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class _Job:
    sequences: list[str]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Gathers concurrent prediction requests into shared forward passes.

    Args:
        predict_fn: sequences -> one result per sequence, in input order (runs on a worker thread).
        max_batch: most sequences gathered into one call.
        max_wait_ms: longest time the first request of a batch waits for company, under load only (see the module docstring).
        enabled: gather requests (False: one call per request).
    """

    def __init__(self, predict_fn: Callable[[list[str]], Sequence], max_batch: int = 64, max_wait_ms: float = 10.0, enabled: bool = True):
        self.predict_fn = predict_fn
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_ms)) / 1000.0
        self.enabled = enabled
        self.calls = 0
        self.sequences = 0
        self._shared = False  # whether the last batch held several requests: then the next one waits for company
        self._queue: asyncio.Queue[_Job] | None = None
        self._carry: _Job | None = None
        self._task: asyncio.Task | None = None
        # One model, one inference thread: torch parallelises inside the call.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biolm-predict")

    @property
    def running(self) -> bool:
        """Whether the consumer task is alive."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the consumer task (call from the event loop that will submit)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._consume(), name="biolm-batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop the consumer and the worker thread."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, sequences: Sequence[str]) -> list:
        """Predict ``sequences`` (possibly together with other callers'); results in input order."""
        if not self.running:
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(list(sequences), future))
        return await future

    async def run_exclusive(self, fn: Callable[[], object]) -> object:
        """Run ``fn()`` on the inference thread, between batches (other model work, e.g. variant scoring)."""
        if not self.running:
            raise RuntimeError("the batcher is not running")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _next_job(self, timeout_s: float | None) -> _Job | None:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout_s is None:
            return await self._queue.get()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop an item that arrives as it times out.
        try:
            async with asyncio.timeout(timeout_s):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def _gather(self) -> list[_Job]:
        first = await self._next_job(None)
        jobs, count = [first], len(first.sequences)
        if not self.enabled:
            return jobs
        deadline = asyncio.get_running_loop().time() + (self.max_wait_s if self._shared else 0.0)
        while count < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            job = self._queue.get_nowait() if remaining <= 0 and not self._queue.empty() else None
            if job is None:
                if remaining <= 0:
                    break
                job = await self._next_job(remaining)
                if job is None:
                    break
            if count + len(job.sequences) > self.max_batch:
                self._carry = job
                break
            jobs.append(job)
            count += len(job.sequences)
        self._shared = len(jobs) > 1
        return jobs

    async def _consume(self) -> None:
        while True:
            jobs = await self._gather()
            try:
                await self._run(jobs)
            finally:
                for _ in jobs:
                    self._queue.task_done()

    async def _call(self, sequences: list[str]) -> Sequence:
        self.calls += 1
        self.sequences += len(sequences)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.predict_fn, sequences)

    async def _run(self, jobs: list[_Job]) -> None:
        live = [job for job in jobs if not job.future.done()]  # a caller may have disconnected
        if not live:
            return
        try:
            results = await self._call([s for job in live for s in job.sequences])
        except Exception as err:
            if len(live) == 1:
                if not live[0].future.done():
                    live[0].future.set_exception(err)
                return
            log.debug("shared forward pass failed (%s); retrying its %d requests one by one", err, len(live))
            for job in live:
                await self._run([job])
            return
        start = 0
        for job in live:
            rows = list(results[start : start + len(job.sequences)])
            start += len(job.sequences)
            if not job.future.done():
                job.future.set_result(rows)
