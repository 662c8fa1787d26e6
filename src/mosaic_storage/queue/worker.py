"""The worker loop: reserve a job, run the handler registered for its kind, ack or fail it."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import signal
import threading
import time
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
    """Raised by a second signal, in the main thread and in the threads running a handler:
    stop the handler, release the job."""


ABORT_GRACE_S = 5.0
"""After a second signal, how long `Worker.run` waits for handler threads to stop."""


class Worker:
    """Runs jobs from a queue with the handlers registered for their kinds.

    A job a handler returns from is acked; one whose handler raises is failed (retried with
    backoff, dead after ``max_attempts``). From its reservation until its ack, fail or release,
    a heartbeat thread extends every job the worker holds (running, prefetched or done but not
    yet acked) every ``lease / 3`` seconds, so it is not handed to another worker; if the
    process dies, the heartbeat stops and the job is redelivered once its lease lapses.

    Shutdown: the first SIGTERM/SIGINT stops taking jobs and lets the running ones finish
    (their leases still extended); a second one interrupts the handlers, releases their jobs
    (due again at once, the attempt not counted) and returns. A handler thread that does not
    stop within a few seconds (blocked in C code) keeps its job, which is not released: its
    lease lapses and it runs again.

    An exception outside a handler (the queue's database gone, say) stops the worker and is
    raised from `run` once the other threads are done.
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
        # Set only once every loop has returned and its jobs are settled: until then the
        # heartbeat keeps their leases.
        self._beat_stop = threading.Event()
        self._held: dict[int, Job] = {}  # reserved and not yet acked, failed or released
        self._running: dict[int, Job] = {}  # thread ident -> the job its handler runs
        self._flight_lock = threading.Lock()
        self._counts = {"succeeded": 0, "failed": 0, "released": 0, "lost": 0}
        self._count_lock = threading.Lock()
        self._errors: list[BaseException] = []
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
        self._beat_stop.clear()
        self._errors = []
        self._signals_seen = 0
        self._stopped_by = None
        budget = _Budget(max_jobs)
        heartbeat = threading.Thread(target=self._heartbeat, name="mosaic-worker-heartbeat", daemon=True)
        heartbeat.start()
        try:
            with self._signals(install_signals):
                try:
                    if self.concurrency == 1:
                        self._loop(budget, until_idle)
                    else:
                        self._run_threads(budget, until_idle)
                except _Abort:
                    pass
                finally:
                    self._stop.set()
        finally:
            self._beat_stop.set()
            heartbeat.join(timeout=5)
        if self._errors:
            raise self._errors[0]
        return WorkerReport(stopped_by=self._stopped_by, **self._counts)

    def _run_threads(self, budget: _Budget, until_idle: bool) -> None:
        finished = [threading.Event() for _ in range(self.concurrency)]
        threads = [
            threading.Thread(
                target=self._thread_main,
                args=(budget, until_idle, done),
                name=f"mosaic-worker-{i}",
                daemon=True,
            )
            for i, done in enumerate(finished)
        ]
        for thread in threads:
            thread.start()
        try:
            _join(finished, None)
        except _Abort:
            # Second signal: stop the handlers; each thread releases its own jobs once its
            # handler is no longer running (never a job another thread still runs).
            self._interrupt_handlers()
            with contextlib.suppress(_Abort):  # a third signal: stop waiting
                _join(finished, ABORT_GRACE_S)
            alive = [t.name for t, done in zip(threads, finished, strict=True) if not done.is_set()]
            if alive:
                log.warning("handler threads still running, their jobs not released: %s", ", ".join(alive))
            raise

    def _thread_main(self, budget: _Budget, until_idle: bool, finished: threading.Event) -> None:
        try:
            self._loop(budget, until_idle)
        except _Abort:
            return
        except BaseException as err:
            self._errors.append(err)
            self._stop.set()
        finally:
            finished.set()

    def _interrupt_handlers(self) -> None:
        # Under the lock a thread cannot leave its handler's bookkeeping, so the exception
        # lands in the handler or in the `finally` right after it, never in queue code.
        with self._flight_lock:
            for ident in self._running:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(_Abort))

    def _loop(self, budget: _Budget, until_idle: bool) -> None:
        held: dict[int, Job] = {}  # this loop's jobs not yet settled
        # Jobs whose handler returned: acked with the next reservation, in one round trip.
        done: list[Job] = []
        failing = False
        try:
            while not self._stop.is_set():
                want = budget.take(self.prefetch)
                if want == 0:
                    return
                acked, jobs = self.queue.ack_and_reserve(
                    done, self.kinds, lease=self.lease, count=want, wait=self.poll
                )
                if done:
                    self._settle(done, acked)
                self._swap(held, done, jobs)
                done = []
                if len(jobs) < want:
                    budget.give_back(want - len(jobs))
                if not jobs:
                    if until_idle:
                        return
                    continue
                for job in jobs:
                    if self._stop.is_set():
                        return  # the unstarted ones are released below
                    if self._run_one(job):
                        done.append(job)
                    else:
                        self._let_go(held, [job])
        except BaseException:
            failing = True
            raise
        finally:
            self._wind_up(held, done, quiet=failing)

    def _wind_up(self, held: dict[int, Job], done: list[Job], *, quiet: bool) -> None:
        """Ack the jobs whose handler returned, release the others this loop holds."""
        try:
            if done:
                self._settle(done, self.queue.ack_many(done))
            self._let_go(held, done)
            for job in list(held.values()):
                self._finish("released", self.queue.release(job))
                self._let_go(held, [job])
        except Exception as err:
            if not quiet:
                raise
            log.warning("could not settle the jobs of a stopping worker: %s", redact(err))
        finally:
            self._let_go(held, list(held.values()))

    def _swap(self, held: dict[int, Job], settled: Sequence[Job], reserved: Sequence[Job]) -> None:
        """`_let_go` the settled jobs and `_hold` the reserved ones, under one lock (once a job)."""
        with self._flight_lock:
            for job in settled:
                held.pop(id(job), None)
                self._held.pop(id(job), None)
            for job in reserved:
                held[id(job)] = job
                self._held[id(job)] = job

    def _let_go(self, held: dict[int, Job], jobs: Sequence[Job]) -> None:
        with self._flight_lock:
            for job in jobs:
                held.pop(id(job), None)
                self._held.pop(id(job), None)

    def _settle(self, done: list[Job], acked: int) -> None:
        with self._count_lock:
            self._counts["succeeded"] += acked
            self._counts["lost"] += len(done) - acked

    def _run_one(self, job: Job) -> bool:
        """Run the handler; True when it returned (the job is to be acked)."""
        ident = threading.get_ident()
        try:
            handler = self.registry.get(job.kind)
            if handler is None:
                raise QueueError(f"no handler for job kind {job.kind!r}")
            with self._flight_lock:
                self._running[ident] = job
            try:
                handler(job)
            finally:
                with self._flight_lock:
                    self._running.pop(ident, None)
        except Exception as err:
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
        return True

    def _finish(self, outcome: str, held: bool) -> None:
        with self._count_lock:
            self._counts[outcome if held else "lost"] += 1

    def _heartbeat(self) -> None:
        interval = self.lease / 3
        while not self._beat_stop.wait(interval):
            with self._flight_lock:
                jobs = list(self._held.values())
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
            # With threads, the main thread only waits for them: interrupt the wait, and it
            # interrupts their handlers. Alone, only a handler is interrupted; queue calls
            # between handlers finish (the loop stops right after), so no transaction is cut.
            if self.concurrency > 1 or threading.get_ident() in self._running:
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


def _join(finished: Sequence[threading.Event], timeout: float | None) -> None:
    """Wait for the threads to set their events, in short waits so the main thread keeps
    handling signals (``Thread.join`` interrupted by a signal can leave ``is_alive`` wrong)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for event in finished:
        while not event.wait(0.1):
            if deadline is not None and time.monotonic() >= deadline:
                return
