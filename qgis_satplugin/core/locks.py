"""One run at a time per output: an advisory lock keyed by the output's resolved path.

Two runs writing into one place would delete each other's staging files or silently
overwrite each other's results. Each step takes an :class:`OutputLock` on the folder or
files it writes before it touches anything there; a second run refuses at once with a
sentence naming the place and the holder's process id.

The lock files live in a per-user folder under the system's temporary directory, named
by a hash of the resolved path, not in the user's folders: a folder that does not exist
yet can be locked, and nothing is left next to the user's data. The operating system
releases the lock when the process ends in any way (a kill included), so a lock can
never go stale. Holding it is also what makes it safe to delete what earlier, killed
runs left behind (:func:`remove_leftovers`): nobody else is writing there.

The lock is per machine: two machines writing one network folder are not kept apart.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import SatPluginError

if os.name == "nt":  # pragma: no cover - only Linux is tested here
    import msvcrt
else:
    import fcntl


def _lock_folder() -> Path:
    """The per-user folder of lock files, refused unless it is this user's own and private.

    On a shared machine another user could create the folder first (the name is
    predictable) and plant links in it; then it is not used.
    """
    user = str(os.getuid()) if hasattr(os, "getuid") else (os.environ.get("USERNAME") or "user")
    folder = Path(tempfile.gettempdir()) / f"satplugin-locks-{re.sub(r'[^A-Za-z0-9_.-]', '_', user)}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise SatPluginError(
            f"Cannot create the lock folder {folder} ({exc.strerror or exc}); check the temporary folder "
            "(TMPDIR) and free some space there."
        ) from None
    if hasattr(os, "getuid") and (
        not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077
    ):
        raise SatPluginError(
            f"The lock folder {folder} is not a private folder of this user; remove it (or set TMPDIR to a "
            "folder of your own) and run again."
        )
    return folder


def lock_key(path) -> str:
    """The resolved, normalised path a lock is keyed by (case-folded on Windows)."""
    resolved = os.path.normcase(str(Path(path).expanduser().resolve()))
    return resolved


class OutputLock:
    """Exclusive lock on a set of output paths, for ``with`` blocks.

    ``what`` names the run for the message ("download", "export"). Paths are locked in
    sorted order, so two runs asking for overlapping sets cannot deadlock.
    """

    def __init__(self, paths, what: str = "run"):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.keys = sorted({lock_key(p) for p in paths if p})
        self.what = what
        self._held: list[tuple[int, str]] = []

    def __enter__(self) -> "OutputLock":
        try:
            for key in self.keys:
                fd = _open_lock_file(key)
                if not _try_lock(fd):
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise SatPluginError(
                        f"Another {self.what} is writing to {key}{holder}; wait for it to finish "
                        "or choose another output."
                    )
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n{key}\n".encode("utf-8"))
                self._held.append((fd, key))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()
        return False

    @property
    def fds(self) -> tuple:
        return tuple(fd for fd, _ in self._held)

    def release(self) -> None:
        while self._held:
            fd, _ = self._held.pop()
            try:
                os.ftruncate(fd, 0)
                _unlock(fd)
            finally:
                os.close(fd)


class InUse:
    """``path`` marked as in use while a ``with`` block runs: a program is running from it.

    Any number of users hold it at once (a shared lock); with ``exclusive``, what replaces
    or removes ``path`` holds it alone, and refuses at once while anyone uses it. Either
    side that cannot have it raises :class:`SatPluginError` with ``refusal``. POSIX only:
    on Windows it holds nothing (msvcrt has no shared locks), and Windows itself refuses to
    delete a program that is running.
    """

    def __init__(self, path, refusal: str, *, exclusive: bool = False):
        self.key = lock_key(path) + "#in-use"  # not the key of an OutputLock on the same path
        self.refusal = refusal
        self.exclusive = exclusive
        self._fd = None

    def __enter__(self) -> "InUse":
        if os.name == "nt":  # pragma: no cover - only Linux is tested here
            return self
        fd = _open_lock_file(self.key)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SatPluginError(self.refusal) from None
        self._fd = fd
        return self

    @property
    def fds(self) -> tuple:
        return () if self._fd is None else (self._fd,)

    def __exit__(self, exc_type, exc, tb):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        return False


def held_by_child(*locks) -> dict:
    """Popen arguments that give a child the locks' files, so that they stay held while it runs
    even when this process is killed first (a child in a session of its own outlives it).

    An ``flock`` belongs to the open file, which the child then shares; this process still
    releases it, after waiting for the child. POSIX only (Windows has no ``pass_fds``).
    """
    fds = tuple(fd for lock in locks for fd in lock.fds)
    return {"pass_fds": fds} if fds and os.name != "nt" else {}


def _open_lock_file(key: str) -> int:
    """The lock file of ``key`` in the lock folder, opened (created if need be)."""
    folder = _lock_folder()
    name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".lock"
    try:
        return os.open(folder / name, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise SatPluginError(
            f"Cannot create a lock file in {folder} ({exc.strerror or exc}); "
            "free some space in the temporary folder and run again."
        ) from None


def _try_lock(fd: int) -> bool:
    try:
        if os.name == "nt":  # pragma: no cover
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 64).decode("utf-8", "replace").split("\n", 1)[0].strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def remove_leftovers(folder, pattern: re.Pattern) -> list[Path]:
    """Delete the entries of ``folder`` whose names match ``pattern``; call only while locked.

    These are the temporary files or folders of earlier runs that were killed before they
    could clean up. Returns what was removed.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed
