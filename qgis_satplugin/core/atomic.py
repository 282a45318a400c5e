"""Atomic outputs: write to hidden temp files beside the targets, verify, then rename.

Every output is written under a temporary name, closed, and checked (``verify``) before
any of them is published; only then are they all renamed onto their final names. A
failure, a full disk or a cancel removes the temp files, so only complete outputs ever
appear under their final names, an existing output is replaced only by a complete new
one, and when any output of a run fails every previous file stays byte-identical.

This module is also the one home of two shared rules: how an operating-system error
becomes a sentence for the user (:func:`user_error_for`), and which output paths are
refused before any work (:func:`check_output_paths`).
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Mapping, Optional

from .errors import Canceled, SatPluginError
from .locks import OutputLock, remove_leftovers

# Free space under which a failed output is blamed on a full disk.
LOW_SPACE_BYTES = 1 << 20
# The temp names this module gives: ".<stem>.partial-<8 hex><suffix>" (+ ".aux.xml").
_PARTIAL = ".partial-"


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" and "quota exceeded", from Python or from GDAL's messages."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def disk_full_error(where, lost: str = "No output was written.") -> SatPluginError:
    return SatPluginError(f"The disk is full at {where}; free some space and run again. {lost}".strip())


def user_error_for(exc: BaseException, where, lost: str = "No output was written.") -> Optional[SatPluginError]:
    """The one-sentence error for an OS-level failure while writing at ``where``, or None.

    None means the exception is not one of these (a bug or a user error already): the
    caller re-raises it as it is.
    """
    if isinstance(exc, SatPluginError):
        return None
    if is_disk_full(exc):
        return disk_full_error(where, lost)
    text = str(exc)
    if isinstance(exc, PermissionError) or "Permission denied" in text:
        return SatPluginError(f"Permission denied while writing at {where}; choose a folder you can write to. {lost}")
    if isinstance(exc, IsADirectoryError):
        return SatPluginError(f"{getattr(exc, 'filename', None) or where} is a folder; give a file name. {lost}")
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS,):
        return SatPluginError(f"{where} is on a read-only file system; choose another folder. {lost}")
    # GDAL's writers turn ENOSPC into "WriteEncodedTile/Strip() failed" or "IO error writing
    # tag data", with no errno: a write error on a file system with (almost) no room left
    # is that full disk. Call this before the failed run's temp files are deleted, while
    # they still take the space.
    if _is_io_error(exc) and free_bytes(where) < LOW_SPACE_BYTES:
        return disk_full_error(where, lost)
    return None


def _is_io_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, RuntimeError)):  # GDAL's C API (superres/gdal_writer.py) raises RuntimeError
        return True
    return any(cls.__module__.split(".")[0] == "rasterio" for cls in type(exc).__mro__)


def free_bytes(folder) -> int:
    """Bytes this user may still write on the file system holding ``folder`` (large when unknown)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def check_writable_folder(path: Path) -> None:
    path = Path(path)
    if path.is_dir():
        raise SatPluginError(f"The output {path} is an existing folder; give a file name.")
    check_parent_folder(path)


def check_parent_folder(path: Path) -> None:
    """Refuse an output (file or folder) whose parent folder is missing or cannot be written."""
    path = Path(path)
    folder = path.resolve().parent
    if not folder.is_dir():
        blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise SatPluginError(f"Cannot write {path}: {blocking} is a file, not a folder; choose another place.")
        raise SatPluginError(f"Cannot write {path}: the folder {folder} does not exist; create it or choose another.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SatPluginError(f"Cannot write {path}: the folder {folder} is not writable; choose a folder you can write to.")


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(str(a.resolve())) == os.path.normcase(str(b.resolve()))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def check_output_paths(outputs: Mapping[str, object], inputs: Mapping[str, object] = None) -> None:
    """Refuse, before any work, an output that is an input, holds an input, or repeats another output.

    ``outputs`` and ``inputs`` map parameter names (``OUTPUT_CLASS``, ``REFERENCE``...)
    to paths; empty values are ignored. An input that is a folder (a download folder)
    also protects everything inside it.
    """
    outs = [(name, Path(p)) for name, p in outputs.items() if p]
    ins = [(name, Path(p)) for name, p in (inputs or {}).items() if p]
    for i, (name, path) in enumerate(outs):
        for other, other_path in outs[:i]:
            if _same_path(path, other_path) or _inside(path, other_path) or _inside(other_path, path):
                raise SatPluginError(f"{other} and {name} point to the same place ({path}); give each output its own path.")
        for in_name, in_path in ins:
            if _same_path(path, in_path) or (in_path.is_dir() and _inside(path, in_path)) or _inside(in_path, path):
                raise SatPluginError(
                    f"{name} ({path}) would overwrite the input {in_name}; choose another output path. Nothing was changed."
                )


def _leftover_pattern(final: Path) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(final.stem)}{re.escape(_PARTIAL)}[0-9a-f]{{8}}{re.escape(final.suffix)}(\.aux\.xml)?$")


class AtomicOutputs:
    """Context manager mapping final paths to temp paths, committed together on success.

    >>> with AtomicOutputs([out], verify={out: check}) as tmp:
    ...     write(tmp[out])

    On entry the outputs are locked against other runs (:class:`OutputLock`) and temp
    files left by killed runs are removed. ``verify`` maps a final path to a function
    called with its temp path after the block ends and before anything is renamed; it
    raises when the file is not complete and readable.
    """

    def __init__(
        self,
        paths,
        verify: Optional[Mapping[object, Callable[[Path], None]]] = None,
        what: str = "run",
        lost: str = "No output was written.",
    ):
        self.final = [Path(p) for p in paths if p]
        self.lost = lost
        check_output_paths({str(p): p for p in self.final})
        for path in self.final:
            check_writable_folder(path)
        self.verify = {Path(k): v for k, v in (verify or {}).items()}
        token = uuid.uuid4().hex[:8]
        self.temp = {p: p.with_name(f".{p.stem}{_PARTIAL}{token}{p.suffix}") for p in self.final}
        self._lock = OutputLock(self.final, what)

    def __enter__(self):
        self._lock.__enter__()
        for final in self.final:
            remove_leftovers(final.parent, _leftover_pattern(final))
        return self.temp

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                try:
                    self._verify_all()
                except BaseException as failure:
                    folder = self.final[0].parent
                    # GDAL reports a block it could not flush at close as a warning only;
                    # an unreadable output on a file system with no room left is that.
                    out_of_room = free_bytes(folder) < LOW_SPACE_BYTES
                    error = user_error_for(failure, folder, self.lost)
                    self.discard()
                    if out_of_room and not isinstance(failure, Canceled):
                        raise disk_full_error(folder, self.lost) from failure
                    if error is not None:
                        raise error from failure
                    raise
                self._publish()
                return False
            error = user_error_for(exc, self.final[0].parent, self.lost)  # before the temp files free their room
            self.discard()
            if error is not None:
                raise error from exc
            return False
        finally:
            self._lock.release()

    def _verify_all(self) -> None:
        for final, temp in self.temp.items():
            if not temp.is_file():
                raise SatPluginError(f"{final} was not written; no output was published.")
            _fsync(temp)
            check = self.verify.get(final)
            if check is not None:
                check(temp)

    def _publish(self) -> None:
        for final, temp in self.temp.items():
            try:
                os.replace(temp, final)
            except OSError as exc:
                # Nothing more is published (the outputs before it are already new: each
                # file is whole, the set is mixed); a file held open elsewhere is the usual cause.
                self.discard()
                raise user_error_for(exc, final.parent, "") or SatPluginError(
                    f"Cannot replace {final} ({exc.strerror or exc}); close it where it is open "
                    "(QGIS keeps layers' files open on Windows) and run again."
                ) from exc
            # A stale GDAL side-car would describe the old file.
            Path(str(final) + ".aux.xml").unlink(missing_ok=True)
        _fsync_folder(self.final[0].parent)

    def discard(self):
        for temp in self.temp.values():
            for path in (temp, Path(str(temp) + ".aux.xml")):
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass


def _fsync(path: Path) -> None:
    """Flush a closed file to the disk: a full disk that the writer missed shows up here."""
    fd = os.open(path, os.O_RDWR)  # Windows flushes only handles open for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # pragma: no cover - folders cannot be opened there
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# Temporary names of files being written: replaced()'s ".<name>.<8 hex>.part<suffix>" (the suffix
# kept: drivers such as GPKG check it), and zarr's "<chunk>.<32 hex>.partial".
_PART_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.part(\.[^.]+)?$|^.+\.[0-9a-f]{32}\.partial$")


@contextmanager
def replaced(path: Path):
    """A temporary path beside ``path``, renamed onto it when the block ends without an error."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part{path.suffix}")
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def remove_parts(folder: Path) -> int:
    """Remove what killed workers left under temporary names (:data:`_PART_NAME`); returns how many."""
    n = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            if _PART_NAME.match(name):
                os.remove(os.path.join(parent, name))
                n += 1
    return n
