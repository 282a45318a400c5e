"""Atomic outputs: write to hidden temp files beside the target, rename on success.

A failure, a full disk or a cancel removes the temp files, so only complete outputs
ever appear under their final names, and an existing output is replaced only by a
complete new one.
"""
from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from .errors import Canceled, SatPluginError


def check_writable_folder(path: Path) -> None:
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise SatPluginError(f"Cannot write {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SatPluginError(f"Cannot write {path}: the folder {folder} is not writable.")


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(exc)


class AtomicOutputs:
    """Context manager mapping final paths to temp paths, committed together on success.

    >>> with AtomicOutputs([out]) as tmp:
    ...     write(tmp[out])
    """

    def __init__(self, paths):
        self.final = [Path(p) for p in paths if p]
        for path in self.final:
            check_writable_folder(path)
        token = uuid.uuid4().hex[:8]
        self.temp = {p: p.with_name(f".{p.stem}.partial-{token}{p.suffix}") for p in self.final}

    def __enter__(self):
        return self.temp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            for final, temp in self.temp.items():
                os.replace(temp, final)
                # A stale GDAL side-car would describe the old file.
                Path(str(final) + ".aux.xml").unlink(missing_ok=True)
            return False
        self.discard()
        if isinstance(exc, (SatPluginError, Canceled)):
            return False
        if _is_disk_full(exc):
            raise SatPluginError(
                f"The disk holding {self.final[0].parent} is full; free some space and run again. "
                "No output was written."
            ) from exc
        if isinstance(exc, PermissionError):
            raise SatPluginError(f"Permission denied while writing the outputs: {exc}") from exc
        return False

    def discard(self):
        for temp in self.temp.values():
            for path in (temp, Path(str(temp) + ".aux.xml")):
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass
