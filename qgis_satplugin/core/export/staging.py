"""The output folder appears complete or not at all.

Everything is written into a hidden sibling folder (same file system, so the final
rename is atomic) and renamed onto the target at the end. A failure, a full disk or a
cancel removes the sibling; a previous export in the target stays until the new one is
complete, then is replaced. A target holding anything else is never overwritten.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ..atomic import _is_disk_full
from ..errors import Canceled, SatPluginError
from .dataset_card import JSON_NAME


def check_target(target: Path) -> None:
    target = Path(target)
    parent = target.resolve().parent
    if not parent.is_dir():
        raise SatPluginError(f"Cannot write {target}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SatPluginError(f"Cannot write {target}: the folder {parent} is not writable.")
    if target.exists():
        if not target.is_dir():
            raise SatPluginError(f"{target} exists and is a file; choose a folder for the dataset.")
        if any(target.iterdir()) and not (target / JSON_NAME).is_file():
            raise SatPluginError(
                f"{target} already holds files that are not an exported dataset; choose an empty or new folder."
            )


class StagedFolder:
    def __init__(self, target):
        self.target = Path(target)
        check_target(self.target)
        token = uuid.uuid4().hex[:8]
        self.temp = self.target.with_name(f".{self.target.name}.partial-{token}")
        self.old = self.target.with_name(f".{self.target.name}.old-{token}")

    def __enter__(self) -> Path:
        self.temp.mkdir()
        return self.temp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            replaced = self.target.exists()
            if replaced:
                os.replace(self.target, self.old)
            os.replace(self.temp, self.target)
            if replaced:
                shutil.rmtree(self.old, ignore_errors=True)
            return False
        shutil.rmtree(self.temp, ignore_errors=True)
        if isinstance(exc, (SatPluginError, Canceled)):
            return False
        if _is_disk_full(exc):
            raise SatPluginError(f"The disk holding {self.target.parent} is full; free some space and run again. No dataset was written.") from exc
        if isinstance(exc, PermissionError):
            raise SatPluginError(f"Permission denied while writing the dataset: {exc}") from exc
        return False
