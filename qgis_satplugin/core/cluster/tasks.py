"""``run_tasks``: plain-data tasks on a Dask cluster, results in task-key order, failures by name.

Each task is a module-level function and a dict of plain values (the job spec, its
window, ...): a worker imports the function from its own engine package, so nothing but
data crosses the network. The client's GDAL settings travel with every task (a worker
does not see the client's environment). Results come back in the order of the tasks'
keys whatever order they finish in, so what the client writes from them does not depend
on the number of workers. A worker that dies mid-task has its task rerun elsewhere (the
scheduler's own rule); a task that raises is tried once more, then reported by its name.
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.spawn
import os
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import Canceled, SatPluginError
from ..feedback import Feedback
from .identity import check_workers
from .scheduler import Scheduler
from .worker_cache import release

RETRIES = 1  # a task that raises runs once more before it is reported
POLL_S = 0.1  # how often the client checks for a cancel while tasks run
LOGGED_TASKS = 20  # up to this many tasks, each one's end is logged; beyond, every tenth of them
STOP_WAIT_S = 30.0  # at most, after a cancel, for the running tasks (one chunk each) to end
# The GDAL settings a task takes from the client: only these, which change how files are read
# and written, never credentials (GDAL_HTTP_USERPWD, GDAL_HTTP_HEADERS, AWS_*, AZURE_*...) nor
# paths of the client's machine (GDAL_DATA, CPL_TMPDIR, CPL_LOG...).
GDAL_SETTINGS = (
    "GDAL_CACHEMAX", "GDAL_NUM_THREADS", "GDAL_DISABLE_READDIR_ON_OPEN", "GDAL_PAM_ENABLED",
    "GDAL_HTTP_TIMEOUT", "GDAL_HTTP_CONNECTTIMEOUT", "GDAL_HTTP_MAX_RETRY", "GDAL_HTTP_RETRY_DELAY",
    "GDAL_HTTP_MULTIRANGE", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES", "GDAL_HTTP_VERSION", "GDAL_INGESTED_BYTES_AT_OPEN",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS", "CPL_VSIL_CURL_CHUNK_SIZE", "CPL_VSIL_CURL_CACHE_SIZE",
    "CPL_VSIL_CURL_USE_HEAD", "VSI_CACHE", "VSI_CACHE_SIZE", "GTIFF_SRS_SOURCE", "GTIFF_REPORT_COMPD_CS",
    "OGR_CURRENT_DATE", "CHECK_DISK_FREE_SPACE",
)


@dataclass(frozen=True)
class Task:
    """``key`` orders the results (zero-padded: ``chunk-000012``); ``name`` says which work it is, for people.

    :func:`run_tasks` adds ``"run"`` to the payload: the run's own id, which keys what
    workers keep open between its tasks (:mod:`.worker_cache`)."""

    key: str
    payload: dict
    name: str


class TaskFailed(SatPluginError):
    """Tasks that kept failing, each named with its error."""

    def __init__(self, failures: list):
        self.failures = failures  # [(task name, error sentence)] in task order
        listed = "; ".join(f"{name}: {error.rstrip('.')}" for name, error in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} task{'s' if len(failures) > 1 else ''} failed on the Dask cluster: {listed}{more}.")


def error_sentence(error: BaseException) -> str:
    """A task's error as the user reads it: our sentence as it is, a defect with its type."""
    return str(error) if isinstance(error, SatPluginError) else f"{type(error).__name__}: {error}"


def gdal_settings() -> dict:
    """The :data:`GDAL_SETTINGS` in force here: rasterio's environment first, then the variables."""
    import rasterio.env

    env = rasterio.env.getenv() if rasterio.env.hasenv() else {}
    found = {name: os.environ[name] for name in GDAL_SETTINGS if name in os.environ}
    found.update({name: env[name] for name in GDAL_SETTINGS if name in env})
    return dict(sorted(found.items()))


def call_with_gdal(function: Callable, payload: dict, gdal: dict):
    """What a worker runs: ``function(payload)`` inside the client's GDAL settings; a user error stays one sentence."""
    import rasterio

    with rasterio.Env(**gdal):
        try:
            return function(payload)
        except SatPluginError as exc:
            message = str(exc)
    # Raised afresh, outside the handler: the chained GDAL errors behind it do not all pickle, and
    # distributed would then send a bare Exception with the sentence buried in its repr.
    raise SatPluginError(message)


@contextmanager
def dask_client(scheduler: Scheduler, feedback: Feedback):
    """A connected ``distributed.Client`` whose workers passed the engine check; a local cluster is closed after."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SatPluginError(
            "DASK_SCHEDULER needs dask and distributed in the engine's environment: pip install 'satplugin-engine[cluster]' "
            "(the managed engine has them), or leave DASK_SCHEDULER empty.") from None
    cluster = previous_executable = None
    if scheduler.local_workers:
        previous_executable = multiprocessing.spawn.get_executable()
        multiprocessing.set_executable(own_interpreter())  # the workers (and their restarts) are spawned from it
        try:
            cluster = LocalCluster(n_workers=scheduler.local_workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            client = Client(cluster)
        except BaseException:
            if cluster is not None:
                cluster.close()
            multiprocessing.set_executable(previous_executable)
            raise
    else:
        try:
            client = Client(scheduler.address, timeout="10s")
        except OSError as exc:
            raise SatPluginError(f"Cannot reach the Dask scheduler at {scheduler.address} ({exc}).") from None
    try:
        n = check_workers(client)
        feedback.log(f"Running on {scheduler.describe()}: {n} worker{'s' if n > 1 else ''}, all with this engine's versions.")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
            multiprocessing.set_executable(previous_executable)


def own_interpreter() -> str:
    """This process's Python as a program, to start local workers with.

    ``sys.executable`` is not always it: inside QGIS it is the QGIS program (``qgis-bin.exe``
    on Windows, whose spawned workers would open QGIS windows) or whatever ``python3`` comes
    first on the PATH, which may be another Python with another standard library. The
    interpreter of this process lies under ``sys.prefix`` (a virtual environment's own, in
    the managed engine).
    """
    prefix = Path(sys.prefix)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    # Windows: a Python installation has python.exe at its prefix, a virtual environment in Scripts.
    candidates = [prefix / "python.exe", prefix / "Scripts" / "python.exe"] if os.name == "nt" else [
        prefix / "bin" / f"python{version}", prefix / "bin" / "python3"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    if Path(sys.executable).name.lower().startswith("python"):
        return sys.executable
    raise SatPluginError(f"This engine's Python interpreter was not found under {prefix}; local Dask workers cannot be "
                         "started (give DASK_SCHEDULER the address of a cluster instead).")


def _running(run_id: str, dask_worker=None) -> list:
    """On a worker (Client.run passes it): the keys of this run it is executing now."""
    return [str(ts.key) for ts in dask_worker.state.executing if str(ts.key).endswith(run_id)]


def _wait_until_stopped(client, run_id: str, timeout_s: float = STOP_WAIT_S) -> None:
    """After a cancel: wait for the tasks already running (a task cannot be interrupted) to end, so none writes after."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            running = client.run(_running, run_id, on_error="ignore")
        except Exception:  # the cluster is going away: nothing more can be asked
            return
        if not any(running.values()):
            return
        time.sleep(POLL_S)


def run_tasks(client, function: Callable, tasks: list, feedback: Feedback, raise_failures: bool = True,
              wait_after_cancel: bool = True) -> tuple:
    """Run ``function(task.payload)`` for every task on ``client``'s cluster.

    Returns ``(results, failures)``: ``results`` maps each successful task's key to its
    value, in key order; ``failures`` lists ``(name, error)`` of the tasks that kept
    failing (raised as :class:`TaskFailed` unless ``raise_failures`` is false). A cancel
    cancels every task still queued and raises :class:`Canceled`; with ``wait_after_cancel``
    it first waits for the running ones to end (short tasks writing into a folder the
    caller removes next), else it leaves them to finish on their own (long tasks whose
    outputs are complete or absent anyway; a local cluster's workers end with it).
    """
    from distributed import as_completed

    tasks = sorted(tasks, key=lambda t: t.key)
    if len({t.key for t in tasks}) != len(tasks):
        raise ValueError("task keys must be unique")
    run_id = uuid.uuid4().hex[:12]  # keys are global on a shared scheduler: two runs must not meet
    gdal = gdal_settings()
    futures = {}
    for task in tasks:
        future = client.submit(call_with_gdal, function, {**task.payload, "run": run_id}, gdal,
                               key=f"satplugin-{task.key}-{run_id}",
                               retries=RETRIES, pure=False)
        futures[future.key] = (task, future)
    results, failures = {}, []
    done = 0
    pending = as_completed([f for _, f in futures.values()], with_results=False)
    try:
        while not pending.is_empty():
            if feedback.is_canceled():
                raise Canceled()
            batch = pending.next_batch(block=False)
            if not batch:
                time.sleep(POLL_S)
                continue
            for future in batch:
                task, _ = futures[future.key]
                if future.status == "error":
                    failures.append((task.key, task.name, error_sentence(future.exception())))
                elif future.status == "cancelled":  # by the scheduler (a restart) or another client
                    failures.append((task.key, task.name, "canceled on the cluster"))
                elif future.status == "finished":
                    results[task.key] = future.result()  # if its worker just died, distributed computes it again
                else:  # "lost": its worker died holding the result, and the scheduler runs it again
                    pending.add(future)
                    continue
                future.release()
                done += 1
                feedback.set_progress(done / len(tasks))
                if len(tasks) <= LOGGED_TASKS or done * 10 // len(tasks) != (done - 1) * 10 // len(tasks):
                    feedback.log(f"{done} of {len(tasks)} tasks done (the last: {task.name}).")
    finally:
        unfinished = [f for _, f in futures.values() if f.status == "pending"]
        if unfinished:
            client.cancel(unfinished, force=True)
            if wait_after_cancel:
                _wait_until_stopped(client, run_id)
        try:
            client.run(release, on_error="ignore")  # nothing of this run stays open on the workers
        except Exception:  # the cluster is going away: its workers close everything anyway
            pass
    failures = [(name, message) for _, name, message in sorted(failures)]
    if failures and raise_failures:
        raise TaskFailed(failures)
    return {k: results[k] for k in sorted(results)}, failures
