"""Writes the multiprocess metric files that N recycled worker children leave behind.

Run as a script in a fresh interpreter with PROMETHEUS_MULTIPROC_DIR set: prometheus_client
picks its value class at import. The real metric objects of service.worker.metrics write the files;
only the process identifier is faked, so one process can play N children that have exited
(their pids can never exist) plus one that is alive. Prints the files written as JSON.

    python benchmarks/dead_children.py CHILDREN LIVE_PID
"""

from __future__ import annotations

import json
import os
import random
import sys

from prometheus_client import values

from service import task_names

# Linux's PID_MAX_LIMIT (2**22): no process anywhere has a pid at or above it.
FIRST_DEAD_PID = 4_194_304

TASKS = (
    ("default", "service.tasks.diagnostics.noop"),
    ("default", "service.tasks.diagnostics.fail"),
    ("default", "service.tasks.maintenance.cleanup"),
    ("email", "service.tasks.email.send_email"),
)


def play_child(seed: int) -> None:
    from service.worker.metrics import task_metrics

    rng = random.Random(seed)
    for queue, task in TASKS:
        for _ in range(rng.randint(1, 25)):
            task_metrics.started(queue, task, rng.expovariate(1 / 2.0))
            task_metrics.finished(queue, task, rng.expovariate(1 / 0.3))
            if task.endswith(".fail"):
                task_metrics.failed(queue, task, "PermanentError")
                task_metrics.dead_lettered(queue, task, "non_retryable_error")
            elif rng.random() < 0.1:
                task_metrics.failed(queue, task, "TimeoutError")
                task_metrics.retried(queue, task)
            else:
                task_metrics.succeeded(queue, task)


def main(children: int, live_pid: int) -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    # The task names a worker's app would register (labels are capped to them); no app here.
    task_names.use(lambda: [task for _, task in TASKS])
    pid = [FIRST_DEAD_PID]
    # Before service.worker.metrics is imported, so every labelled child value uses this class.
    values.ValueClass = values.MultiProcessValue(lambda: pid[0])
    for i in range(children):
        pid[0] = FIRST_DEAD_PID + i
        play_child(i)
    # A live process with an unfinished task: its files stay and its gauge counts.
    pid[0] = live_pid
    from service.worker.metrics import task_metrics

    play_child(children)
    task_metrics.started("default", "service.tasks.diagnostics.noop", 0.5)
    values.close_all_multiprocess_files()
    print(json.dumps(sorted(os.listdir(directory))))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
