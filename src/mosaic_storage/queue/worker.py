"""The worker loop: reserve a job, run the handler registered for its kind, ack or fail it."""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any, TypeVar

import attrs

from .._redact import redact
from .protocol import DEFAULT_LEASE, Job, JobQueue, QueueError, check_kind

log = logging.getLogger("mosaic.worker")

Handler = Callable[[Job], object]
"""A job handler: called with the `Job`; returning means done, raising means failed."""

H = TypeVar("H", bound=Handler)


class HandlerRegistry:
    """Job handlers by kind. ``@registry.handler("kind")`` registers a function."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for kind, fn in (handlers or {}).items():
            self.register(kind, fn)

    def register(self, kind: str, fn: Handler, *, replace: bool = False) -> None:
        """Run ``fn`` for jobs of ``kind``. Registering a second handler for a kind is an error
        (two modules claiming one kind is a bug) unless ``replace=True``."""
        check_kind(kind)
        if not callable(fn):
            raise QueueError(f"the handler for {kind!r} is not callable: {fn!r}")
        current = self._handlers.get(kind)
        if current is not None and current is not fn and not replace:
            raise QueueError(
                f"job kind {kind!r} already has a handler ({_name(current)})",
                remediation="give the new handler its own kind, or pass replace=True",
            )
        self._handlers[kind] = fn

    def handler(self, kind: str, *, replace: bool = False) -> Callable[[H], H]:
        """Decorator form of `register`."""

        def decorate(fn: H) -> H:
            self.register(kind, fn, replace=replace)
            return fn

        return decorate

    def unregister(self, kind: str) -> None:
        """Forget the handler of ``kind`` (tests, reloading)."""
        self._handlers.pop(kind, None)

    def kinds(self) -> list[str]:
        """The kinds with a handler, sorted."""
        return sorted(self._handlers)

    def get(self, kind: str) -> Handler | None:
        """The handler of ``kind``, or None."""
        return self._handlers.get(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)


handlers = HandlerRegistry()
_default_registry = handlers  # Worker's parameter of the same name hides it there
"""The process-wide registry `mosaic worker` runs: modules register into it on import."""


def job_handler(kind: str, *, replace: bool = False) -> Callable[[H], H]:
    """Register the decorated function in the default registry as the handler of ``kind``.

    Put it in a module and start a worker with ``mosaic worker --import that.module``::

        from mosaic_storage.queue import job_handler

        @job_handler("email.send")
        def send(job):
            ...
    """
    return handlers.handler(kind, replace=replace)


def import_handlers(modules: Sequence[str]) -> None:
    """Import modules for the handlers they register (what ``mosaic worker --import`` does)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise QueueError(
                f"cannot import handler module {name!r}: {redact(err)}",
                remediation="pass a dotted module name importable from this environment (check PYTHONPATH)",
            ) from None


def _name(fn: object) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


@attrs.frozen
class WorkerReport:
    """What a `Worker.run` did."""

    succeeded: int
    failed: int
    released: int
    lost: int
    """Jobs whose lease had lapsed before the ack or fail arrived (they run again elsewhere)."""
    stopped_by: str | None
    """The signal that stopped the worker (``SIGTERM``, ``SIGINT``), if one did."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of this record."""
        return attrs.asdict(self)


class _Abort(BaseException):
    """Raised in the main thread by a second signal: release the running job and exit."""


class Worker:
    """Runs jobs from a queue with the handlers registered for their kinds.

    A job a handler returns from is acked; one whose handler raises is failed (retried with
    backoff, dead after ``max_attempts``). While a handler runs, a heartbeat thread extends
    the job's lease every ``lease / 3`` seconds, so a long job is not handed to another
    worker; if the process dies, the heartbeat stops and the job is redelivered once its
    lease lapses.

    Shutdown: the first SIGTERM/SIGINT stops taking jobs and lets the running ones finish;
    a second one releases them (due again at once, the attempt not counted) and returns.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler] | HandlerRegistry | None = None,
        *,
        kinds: Sequence[str] | None = None,
        lease: float = DEFAULT_LEASE,
        poll: float = 1.0,
        prefetch: int = 1,
        concurrency: int = 1,
    ) -> None:
        if handlers is None:
            registry = _default_registry
        elif isinstance(handlers, HandlerRegistry):
            registry = handlers
        else:
            registry = HandlerRegistry(handlers)
        wanted = list(kinds) if kinds is not None else registry.kinds()
        missing = [k for k in wanted if k not in registry]
        if missing:
            raise QueueError(
                f"no handler for job kind(s) {', '.join(map(repr, missing))}",
                remediation="register one with @job_handler(kind) in a module passed to --import",
            )
        if not wanted:
            raise QueueError(
                "the worker has no job handlers",
                remediation="register handlers with @job_handler(kind) and import their module (--import)",
            )
        if concurrency < 1 or prefetch < 1:
            raise QueueError("concurrency and prefetch must be at least 1")
        self.queue = queue
        self.registry = registry
        self.kinds = wanted
        self.lease = lease
        self.poll = poll
        self.prefetch = prefetch
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._in_flight: dict[int, Job] = {}
        self._flight_lock = threading.Lock()
        self._counts = {"succeeded": 0, "failed": 0, "released": 0, "lost": 0}
        self._count_lock = threading.Lock()
        self._signals_seen = 0
        self._stopped_by: str | None = None

    def stop(self) -> None:
        """Ask the worker to return once the running jobs are done (thread-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once `stop` was called or a shutdown signal arrived."""
        return self._stop.is_set()

    def run(
        self, *, max_jobs: int | None = None, until_idle: bool = False, install_signals: bool = True
    ) -> WorkerReport:
        """Work until stopped (or after ``max_jobs`` jobs, or when no job is due with ``until_idle``)."""
        self._stop.clear()
        self._signals_seen = 0
        self._stopped_by = None
        budget = _Budget(max_jobs)
        heartbeat = threading.Thread(target=self._heartbeat, name="mosaic-worker-heartbeat", daemon=True)
        heartbeat.start()
        with self._signals(install_signals):
            try:
                if self.concurrency == 1:
                    self._loop(budget, until_idle)
                else:
                    self._run_threads(budget, until_idle)
            except _Abort:
                self._release_in_flight()
            finally:
                self._stop.set()
        heartbeat.join(timeout=5)
        return WorkerReport(stopped_by=self._stopped_by, **self._counts)

    def _run_threads(self, budget: _Budget, until_idle: bool) -> None:
        threads = [
            threading.Thread(
                target=self._loop, args=(budget, until_idle), name=f"mosaic-worker-{i}", daemon=True
            )
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        # Joined with a timeout so the main thread keeps handling signals.
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.1)

    def _loop(self, budget: _Budget, until_idle: bool) -> None:
        # Jobs whose handler returned: acked with the next reservation, in one round trip.
        done: list[Job] = []
        try:
            while not self._stop.is_set():
                want = budget.take(self.prefetch)
                if want == 0:
                    return
                acked, jobs = self.queue.ack_and_reserve(
                    done, self.kinds, lease=self.lease, count=want, wait=self.poll
                )
                self._settle(done, acked)
                done = []
                budget.give_back(want - len(jobs))
                if not jobs:
                    if until_idle:
                        return
                    continue
                for index, job in enumerate(jobs):
                    if self._stop.is_set():
                        for unstarted in jobs[index:]:
                            self._finish("released", self.queue.release(unstarted))
                        return
                    if self._run_one(job):
                        done.append(job)
        finally:
            if done:
                self._settle(done, self.queue.ack_many(done))

    def _settle(self, done: list[Job], acked: int) -> None:
        with self._count_lock:
            self._counts["succeeded"] += acked
            self._counts["lost"] += len(done) - acked

    def _run_one(self, job: Job) -> bool:
        """Run the handler; True when it returned (the job is to be acked)."""
        key = id(job)
        with self._flight_lock:
            self._in_flight[key] = job
        try:
            handler = self.registry.get(job.kind)
            if handler is None:
                raise QueueError(f"no handler for job kind {job.kind!r}")
            handler(job)
        except _Abort:
            with self._flight_lock:
                self._in_flight.pop(key, None)
            self._finish("released", self.queue.release(job))
            raise
        except Exception as err:
            with self._flight_lock:
                self._in_flight.pop(key, None)
            error = f"{type(err).__name__}: {err}"
            status = self.queue.fail(job, error)
            log.warning(
                "job %s (%s) attempt %d failed: %s -> %s",
                job.id,
                job.kind,
                job.attempt,
                redact(error),
                status or "lease lost",
            )
            self._finish("failed", status is not None)
            return False
        with self._flight_lock:
            self._in_flight.pop(key, None)
        return True

    def _finish(self, outcome: str, held: bool) -> None:
        with self._count_lock:
            self._counts[outcome if held else "lost"] += 1

    def _release_in_flight(self) -> None:
        with self._flight_lock:
            jobs, self._in_flight = list(self._in_flight.values()), {}
        for job in jobs:
            self._finish("released", self.queue.release(job))

    def _heartbeat(self) -> None:
        interval = self.lease / 3
        while not self._stop.wait(interval):
            with self._flight_lock:
                jobs = list(self._in_flight.values())
            for job in jobs:
                try:
                    self.queue.extend(job, self.lease)
                except Exception as err:  # a lapsed heartbeat only risks a redelivery
                    log.warning("could not extend the lease of job %s: %s", job.id, redact(err))

    @contextlib.contextmanager
    def _signals(self, install: bool) -> Iterator[None]:
        if not install or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self._signals_seen += 1
            self._stopped_by = signal.Signals(signum).name
            self._stop.set()
            if self._signals_seen == 1:
                log.info(
                    "%s: finishing the running job, then stopping (again to release it)", self._stopped_by
                )
                return
            raise _Abort

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _Budget:
    """How many more jobs the worker may take (shared by its threads)."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, want: int) -> int:
        if self._left is None:
            return want
        with self._lock:
            got = min(want, self._left)
            self._left -= got
            return got

    def give_back(self, unused: int) -> None:
        if self._left is not None and unused > 0:
            with self._lock:
                self._left += unused
