"""Run one step in an engine process: the job spec in, feedback lines streamed back, the result out.

The child is ``<python> -m satplugin_engine run <step> job.json`` (see the engine's
``__main__``): each line it prints is one JSON event, progress and log while it works,
then the result or the error. Cancel sends it SIGTERM (CTRL_BREAK on Windows), which the
engine handles as a cancel at its next check; a child that has not ended
:data:`CANCEL_GRACE_S` later is killed. A child that dies (a segfault in a native library,
the kernel's out-of-memory killer) becomes one :class:`EngineFailed` with the end of its
error output; QGIS keeps running. Outputs are written atomically by the engine, so a
killed child leaves the previous state. A QGIS killed in a run leaves its job folder in the
temporary folder; the next run removes it (:func:`remove_abandoned_jobs`).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: abandoned job folders are left to the system (remove_abandoned_jobs)
    fcntl = None

from ..core.errors import Canceled, SatPluginError
from ..core.feedback import Feedback, replay_event
from ..core.locks import held_by_child
from .locate import child_environment

JOB_PREFIX = "satplugin-job-"
OWNER_FILE = "owner.pid"  # the QGIS process whose run the job folder is
# A job folder this old whose owner has ended was left by a killed run (see remove_abandoned_jobs).
ABANDONED_AFTER_S = 60
# A canceled child ends within this (the engine checks for a cancel every few hundred ms).
CANCEL_GRACE_S = 1.5
POLL_S = 0.1
ERROR_TAIL_LINES = 12
SIGNAL_NAMES = {
    getattr(signal, "SIGSEGV", 11): "a segmentation fault in a native library",
    getattr(signal, "SIGKILL", 9): "killed, usually by the system for lack of memory",
    getattr(signal, "SIGABRT", 6): "aborted by a native library",
    getattr(signal, "SIGBUS", 7): "a bus error in a native library",
}


class EngineFailed(SatPluginError):
    """The engine process ended without an answer (a crash, a kill)."""


def run_in_engine(python: str, step: str, job_json: str, feedback: Feedback | None = None, *, extra_env=None,
                  held=()) -> dict:
    """The result (as JSON values) of ``step`` run by the engine of ``python`` on ``job_json``.

    Raises the step's error as :class:`SatPluginError`, a cancel as :class:`Canceled`, and a
    crash as :class:`EngineFailed`. ``extra_env`` adds variables to the child's environment
    only (credentials: never in the job file or on a command line). ``held`` are locks the child
    keeps held while it lives (the engine's in-use lock: a child that outlives a killed QGIS
    still keeps the engine from being removed under it).
    """
    feedback = Feedback.of(feedback)
    remove_abandoned_jobs()
    with tempfile.TemporaryDirectory(prefix=JOB_PREFIX) as folder, _owned(Path(folder) / OWNER_FILE):
        job = Path(folder) / "job.json"
        job.write_text(job_json, encoding="utf-8")
        errors_path = Path(folder) / "stderr.txt"
        # The child starts in the job's folder (so that no folder of the user's is on its sys.path) and
        # works in QGIS's, so that relative paths in the job mean what they mean to QGIS.
        workdir = ["--workdir", _working_folder()] if _working_folder() else []
        with open(errors_path, "w+b") as errors:
            try:
                process = subprocess.Popen(
                    [python, "-m", "satplugin_engine", "run", step, str(job), *workdir],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, cwd=folder,
                    env=child_environment(extra_env), **_own_process_group(), **held_by_child(*held),
                )
            except OSError as exc:  # removed since it was checked, or not a program
                raise EngineFailed(f"The engine's Python {python} could not be started ({exc.strerror or exc}); "
                                   "nothing was run. Check that the engine is installed, then run the step again.") from None
            try:
                final, canceled = _follow(process, feedback)
            finally:  # whatever went wrong here, the child does not outlive the run
                if process.poll() is None:
                    _kill(process)
                    process.wait()
            errors.seek(0)
            error_text = errors.read().decode("utf-8", "replace")
    if final is not None and "result" in final:
        return final["result"]
    if final is not None and "error" in final:
        if canceled or process.returncode == 3:
            raise Canceled(final["error"])
        if final.get("defect"):
            _log_error_output(error_text, feedback)
        raise SatPluginError(final["error"])
    if canceled:
        raise Canceled("Canceled by the user; the engine was stopped and no output was written.")
    raise EngineFailed(_crash_sentence(process.returncode, error_text))


@contextmanager
def _owned(owner_file: Path):
    """The job folder marked as this process's while the run lasts: its process id and host in
    ``owner_file``, which stays locked (POSIX) until the run ends or the process dies."""
    with open(owner_file, "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()} {socket.gethostname()}")
        f.flush()
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def remove_abandoned_jobs(now=None) -> list:
    """Remove the job folders of runs whose QGIS was killed (it had no chance to); returns them.

    A folder is abandoned when the process named in its owner file, on this host, has ended,
    nothing holds the file's lock, and the folder is older than :data:`ABANDONED_AFTER_S` (a
    folder being set up has no owner file yet). The host and the lock keep a temporary folder
    shared with other machines or containers (whose process ids mean nothing here) safe. Only
    folders of this user, and only on systems where a process can be asked whether it lives
    (not Windows, where signal 0 would be a Ctrl+C): there the system's cleaning of its
    temporary folder has to do.
    """
    if os.name == "nt" or not hasattr(os, "getuid"):
        return []
    now = time.time() if now is None else now
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(JOB_PREFIX + "*"):
        try:
            info = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid() or now - info.st_mtime < ABANDONED_AFTER_S:
                continue
            pid, _, host = (folder / OWNER_FILE).read_text(encoding="utf-8").partition(" ")
            owner = int(pid)
        except (OSError, ValueError):
            continue
        # An owner file without a host is an earlier version's, written on this host.
        ours_here = host in ("", socket.gethostname()) and owner != os.getpid()
        if ours_here and not _alive(owner) and not _locked(folder / OWNER_FILE):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _locked(owner_file: Path) -> bool:
    """Whether a run holds the owner file's lock (or it cannot be told)."""
    try:
        with open(owner_file, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and is someone else's
        return True
    return True


def _working_folder():
    """This process's working folder, or None where it has been removed."""
    try:
        return os.getcwd()
    except OSError:
        return None


def _follow(process: subprocess.Popen, feedback: Feedback):
    """Apply the child's events until it ends; cancel it when asked. Returns (final event, canceled)."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for raw in process.stdout:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="satplugin-engine-output").start()
    final, canceled, kill_at, ended = None, False, None, False
    while not ended:
        try:
            line = lines.get(timeout=POLL_S)
        except queue.Empty:
            line = ""
        if line is None:
            ended = True
        elif line.strip() and not replay_event(line, feedback):
            final = _final_event(line) or final
        if not canceled and feedback.is_canceled():
            canceled, kill_at = True, time.monotonic() + CANCEL_GRACE_S
            _interrupt(process)
        if kill_at is not None and time.monotonic() > kill_at:
            _kill(process)  # its own children too: one left alive would hold the output open
            kill_at = None
    process.wait()
    process.stdout.close()  # the reader has seen its end
    return final, canceled


def _final_event(line: str):
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and ("result" in event or "error" in event) else None


def _own_process_group() -> dict:
    """The child in a group of its own, so that a cancel signal reaches it and not QGIS."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _interrupt(process: subprocess.Popen) -> None:
    """Ask the engine (and what it started) to cancel."""
    try:
        if os.name == "nt":
            process.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            os.killpg(process.pid, signal.SIGTERM)
    except OSError:  # already gone
        pass


def _kill(process: subprocess.Popen) -> None:
    try:
        if os.name == "nt":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)
    except OSError:  # already gone
        pass


def _log_error_output(error_text: str, feedback: Feedback) -> None:
    """The end of the traceback the engine printed for a defect (an error it did not expect), in the
    log: its error sentence points to it, and the file goes with the job folder."""
    start = error_text.rfind("Traceback (most recent call last)")
    if start < 0:
        return
    feedback.log("The end of the engine's error output:")
    for line in _last_lines(error_text[start:]):
        feedback.log("  " + line)


def _crash_sentence(returncode: int, error_text: str) -> str:
    if returncode is not None and returncode < 0:
        how = f"signal {-returncode}: {SIGNAL_NAMES.get(-returncode, 'ended by a signal')}"
    else:
        how = f"exit status {returncode}"
    tail = _last_lines(error_text)
    details = ("; its last error output: " + " | ".join(tail)) if tail else ""
    return f"The engine stopped unexpectedly ({how}) without finishing; outputs are left as they were{details}."


def _last_lines(text: str) -> list:
    """The last ERROR_TAIL_LINES lines of ``text`` that are not blank."""
    return [line for line in text.splitlines() if line.strip()][-ERROR_TAIL_LINES:]
