"""Process-pool workers that end with their main process.

A main process killed with SIGKILL (the OOM killer, a batch scheduler, ``kill -9``) cannot shut its
pool down: its ``fork`` and ``forkserver`` workers then wait on their task queue forever, each holding
its memory (measured: ingest and fit workers still alive minutes after the main process was killed).
:func:`exit_with_main` is a pool initializer that ends the worker when the main process is gone.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence

import psutil

from .config import one_thread_libraries
from .errors import SchedulerError

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


def start_forkserver(preload: Sequence[str]) -> None:
    """Start this process's forkserver, importing the modules ``preload`` (their compiled kernels
    and libraries, once for every worker it forks), unless it already runs. It returns at once:
    the server imports while this process goes on, so calling it early (before this process's own
    imports and planning) hides the server's start-up. One thread per numerical library
    (:data:`~fgsarchive.config.ONE_THREAD_ENV`)."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
    with one_thread_libraries():
        forkserver.ensure_running()


def process_pool(workers: int, *, start: str = "forkserver", preload: str | Sequence[str] = ()):
    """A ``ProcessPoolExecutor`` of ``workers`` processes that end with this one.

    ``start="forkserver"`` (the fit, the analyses): workers fork from a clean server that imported
    ``preload`` (the compiled kernels) once, so start-up is cheap and safe even when this process
    already runs threads (DuckDB, numba); see :func:`start_forkserver` (a server already running
    keeps its own preload). ``"fork"`` (ingest) copies this process.
    """
    ctx = multiprocessing.get_context(start)
    if start == "forkserver":
        start_forkserver([preload] if isinstance(preload, str) else preload)
    return cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=exit_with_main, initargs=(os.getpid(),)
    )


@contextlib.contextmanager
def dask_client(scheduler: str, workers: int) -> Iterator[object]:
    """A Dask client: ``"local"`` starts a cluster of ``workers`` processes (one thread each),
    else ``scheduler`` is the address of a running one. Closed (and the local cluster ended) on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise SchedulerError(
            "--scheduler needs the cluster extra: pip install 'fgsarchive[cluster]'"
        ) from exc
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(
            f"--scheduler {scheduler}: no Dask scheduler answered within 10 s"
        ) from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def dask_completed(client, function: Callable, tasks: Sequence) -> Iterator[tuple[object, object]]:
    """``(task, future)`` of ``function(task)`` on ``client`` as each finishes; the caller reads
    ``future.result()``, then ``future.release()``, so a handled result is freed at once."""
    from distributed import as_completed

    futures = client.map(function, tasks, pure=False)
    by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
    completed = as_completed(futures)
    del futures  # only `completed` holds them
    for future in completed:
        yield by_key.pop(future.key), future
