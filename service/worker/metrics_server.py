"""Serves worker metrics from the main process, merged across prefork children.

Every process that ever ran writes files in PROMETHEUS_MULTIPROC_DIR; with children recycled
(`worker_max_tasks_per_child`) dead files pile up and each scrape reads them all
(client_python #367: ~3.6 ms per dead file). So before each scrape, and every
COMPACT_INTERVAL seconds, the files of dead pids are folded into one archive file per
metric type and deleted. Bound: files <= (live processes + children that died since the last
compaction) x metric types + 2 archive files, whatever the worker's age."""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

COMPACT_INTERVAL = 5.0
ARCHIVE = "archive"
_ADDITIVE_TYPES = ("counter", "histogram")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _file_pid(path: str) -> tuple[str, int | None]:
    """('counter', 123) for counter_123.db; gauges are gauge_<mode>_<pid>.db."""
    parts = os.path.basename(path)[: -len(".db")].split("_")
    try:
        return parts[0], int(parts[-1])
    except ValueError:
        return parts[0], None  # an archive file


def compact(directory: Path, alive: Callable[[int], bool] = pid_alive) -> int:
    """Fold dead processes' counters and histograms into the archives; drop their live
    gauges. Returns how many files were removed. Counts and bucket counts are preserved
    exactly (they are additive); float `_sum` values may differ in the last bits."""
    archives: dict[str, MmapedDict] = {}
    removed = 0
    try:
        for path in sorted(glob.glob(str(directory / "*.db"))):
            kind, pid = _file_pid(path)
            if pid is None or alive(pid):
                continue
            if kind == "gauge":
                mark_process_dead(pid, str(directory))
                removed += 1
                continue
            if kind not in _ADDITIVE_TYPES:
                continue
            archive = archives.get(kind)
            if archive is None:
                archive = archives[kind] = MmapedDict(str(directory / f"{kind}_{ARCHIVE}.db"))
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(path):
                current, _ts = archive.read_value(key)
                archive.write_value(key, current + value, timestamp)
            os.remove(path)
            removed += 1
    finally:
        for archive in archives.values():
            archive.close()
    return removed


class CompactingCollector:
    """MultiProcessCollector that compacts first; one lock so the background compaction
    and a scrape never read a half-merged directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._inner = MultiProcessCollector(None, str(directory))
        self._lock = threading.Lock()

    def compact(self) -> None:
        with self._lock:
            compact(self.directory)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            compact(self.directory)
            metrics = list(self._inner.collect())
        yield from metrics


def _compact_forever(collector: CompactingCollector, stop: threading.Event) -> None:
    while not stop.wait(COMPACT_INTERVAL):
        try:
            collector.compact()
        except Exception:
            logger.exception("metrics compaction failed; retrying next interval")


def serve_worker_metrics(port: int) -> None:
    """Start /metrics in this (the worker's main) process; returns at once."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        logger.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: /metrics shows only the main process, not "
            "the pool children. Start workers with `fleet worker` to get correct totals."
        )
        start_http_server(port)
        return
    registry = CollectorRegistry()
    collector = CompactingCollector(Path(directory))
    registry.register(collector)
    start_http_server(port, registry=registry)
    stop = threading.Event()
    threading.Thread(
        target=_compact_forever, args=(collector, stop), name="metrics-compaction", daemon=True
    ).start()
    logger.info("worker metrics on :%d (multiprocess dir %s)", port, directory)
