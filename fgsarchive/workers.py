"""Process-pool workers that end with their main process.

A main process killed with SIGKILL (the OOM killer, a batch scheduler, ``kill -9``) cannot shut its
pool down: its ``fork`` and ``forkserver`` workers then wait on their task queue forever, each holding
its memory (measured: ingest and fit workers still alive minutes after the main process was killed).
:func:`exit_with_main` is a pool initializer that ends the worker when the main process is gone.
"""

from __future__ import annotations

import os
import threading

import psutil

POLL_S = 0.5


def exit_with_main(main_pid: int) -> None:
    """Pool initializer: a daemon thread ends this worker once process ``main_pid`` has exited."""
    try:
        main = psutil.Process(main_pid)  # remembers the start time: safe against pid reuse
    except psutil.NoSuchProcess:
        os._exit(1)

    def watch() -> None:
        event = threading.Event()
        while not event.wait(POLL_S):
            try:
                gone = not main.is_running() or main.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-main", daemon=True).start()


def end_workers(pool: object) -> None:
    """Terminate a ``ProcessPoolExecutor``'s worker processes before it shuts down.

    Call it once every result is in (or the run is failing anyway). CPython's shutdown sends each
    worker a stop message through the task queue and joins it; a worker killed at that moment (the
    OOM killer) can die holding the queue's read lock, and then the others wait on that lock and
    the shutdown waits on them forever: the command hung (reproduced on Python 3.11). Idle workers
    lose nothing by being ended directly.
    """
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        try:
            process.terminate()
        except (OSError, ValueError):  # already gone or closed
            pass
