"""How long `mosaic doctor` takes: a healthy local tier, and a federated tier with everything down.

Run it from a checkout: ``python benchmarks/doctor.py [--timeout S] [--repeat N]``. Prints each
case's median wall time and its ratio to the configured timeout, the anchor measured here: the
doctor's promise is that even an all-down report returns within about one timeout (ratio ~1).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import mosaic_storage as ms


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A bound, non-listening port: connects are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@contextlib.contextmanager
def blackholed_port() -> Iterator[int]:
    """A listener whose backlog is full: further connects get no answer at all."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(8):
            filler = stack.enter_context(socket.socket())
            filler.settimeout(0.25)
            try:
                filler.connect(address)
            except TimeoutError:
                break
        yield int(address[1])


def federated(pg_port: int, redis_port: int) -> ms.MosaicConfig:
    return ms.MosaicConfig(
        tier=ms.StorageTier.FEDERATED,
        storage=ms.StorageConfig(url=f"postgresql://mosaic:pw@127.0.0.1:{pg_port}/mosaic"),
        queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=f"redis://127.0.0.1:{redis_port}/0"),
    )


def measure(config: ms.MosaicConfig, timeout: float, repeat: int) -> tuple[float, ms.TierReport]:
    times = []
    report = None
    for _ in range(repeat):
        started = time.perf_counter()
        report = ms.detect_tier(config, timeout=timeout)
        times.append(time.perf_counter() - started)
    assert report is not None
    return statistics.median(times), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0, help="connect timeout per probe (s)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (median reported)")
    args = parser.parse_args()
    timeout: float = args.timeout

    with tempfile.TemporaryDirectory() as tmp:
        local = ms.MosaicConfig(storage=ms.StorageConfig(url=f"sqlite:///{tmp}/brain.db"))
        with ms.open_store(local) as store:
            ms.upgrade(store)
        # First calls load alembic and the drivers; time the doctor, not the imports.
        ms.detect_tier(local, timeout=timeout)
        with refused_port() as pg, refused_port() as rd:
            ms.detect_tier(federated(pg, rd), timeout=timeout)
        cases = [("local, healthy (SQLite)", *measure(local, timeout, args.repeat))]
        with refused_port() as pg, refused_port() as rd:
            cases.append(("federated, all down: refused", *measure(federated(pg, rd), timeout, args.repeat)))
        with blackholed_port() as pg, blackholed_port() as rd:
            repeat = max(1, min(args.repeat, 3))
            cases.append(("federated, all down: no answer", *measure(federated(pg, rd), timeout, repeat)))

    print(f"mosaic doctor wall time, median; configured timeout {timeout:g} s")
    for name, seconds, report in cases:
        failed = ",".join(p.service for p in report.failures) or "-"
        print(
            f"  {name:<32} {seconds * 1000:8.1f} ms   {seconds / timeout:6.3f} x timeout"
            f"   ok={report.ok!s:<5} failed={failed}"
        )


if __name__ == "__main__":
    main()
