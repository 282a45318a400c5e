"""The output folder appears complete or not at all, and only files an export wrote are replaced.

Everything is written into a hidden sibling folder (same file system, so the final
rename is atomic) and renamed onto the target at the end. A failure, a full disk or a
cancel removes the sibling; a previous export in the target stays until the new one is
complete, then is replaced.

A folder is replaced only when it holds nothing but what an earlier export wrote: every
export lists its files in its ``dataset.json`` (``"contents"``, see :func:`listing`), and
any other file there (the user's notes, a checkpoint, a dataset of an older version that
kept no list) makes the export refuse before any work, naming the file. The check runs
again on the old folder just before it is deleted, so a file saved there while the
export ran is put back with it instead.

The export holds an :class:`OutputLock` on the target from start to end
(:func:`export_lock`), so a second export into the same folder refuses at once; holding
it, :func:`prepare_target` removes what killed runs left beside the target.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

from ..atomic import check_parent_folder, user_error_for
from ..errors import SatPluginError
from ..locks import OutputLock, remove_leftovers
from .dataset_card import CONTENTS_KEY, FORMAT, JSON_NAME

_TOKEN = r"[0-9a-f]{8}"
# GDAL writes side-cars (statistics, histograms) beside a raster when QGIS opens it:
# they describe a file the export wrote, and go with it.
SIDECAR = ".aux.xml"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
OS_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
LOST = "No dataset was written; a previous one in that folder is unchanged."


def export_lock(target) -> OutputLock:
    """The lock an export holds on its output folder for the whole run."""
    return OutputLock([resolved(target)], "export")


def resolved(target) -> Path:
    """The real folder: a link to a folder elsewhere is followed, so that the link itself stays."""
    return Path(target).expanduser().resolve()


def listing(folder) -> list:
    """Every entry under ``folder``, relative, '/'-separated, folders ending in '/', sorted.

    This is what an export records as its contents and what a later export compares the
    folder against. Links are listed as entries and never followed.
    """
    folder = Path(folder)
    out = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in dirs:
            path = Path(root) / name
            out.append((rel / name).as_posix() + ("" if path.is_symlink() else "/"))
        out.extend((rel / name).as_posix() for name in files)
    return sorted(out)


def _card(folder: Path):
    try:
        card = json.loads((folder / JSON_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("format") == FORMAT else None


def foreign_entries(folder: Path, shown_as: Path = None) -> list:
    """Entries of ``folder`` that the export recorded in its ``dataset.json`` did not write.

    Raises when the folder is not an export at all, or is one that recorded no contents.
    """
    shown_as = shown_as or folder
    present = listing(folder)
    if not present:
        return []
    card = _card(folder)
    if card is None:
        raise SatPluginError(
            f"{shown_as} already holds files that are not an exported dataset (for example {present[0]}); "
            "choose an empty or new folder. Nothing was changed."
        )
    contents = card.get(CONTENTS_KEY)
    if not isinstance(contents, list):
        raise SatPluginError(
            f"{shown_as} holds a dataset exported by an older version, which did not record its files, so they "
            "cannot be told from yours; delete or move that folder, or choose another one. Nothing was changed."
        )
    written = {str(c) for c in contents}
    return [entry for entry in present if entry not in written and not _belongs_to(entry, written)]


def _belongs_to(entry: str, written: set) -> bool:
    """Files that others put next to ours and that go with them: GDAL's side-cars, SQLite's
    journals of an open GeoPackage (QGIS keeps ``index.gpkg`` open once it is on the map),
    and the folder-view files of macOS and Windows."""
    name = entry.rsplit("/", 1)[-1]
    if name in OS_FILES:
        return True
    for suffix in (SIDECAR, *SQLITE_SIDECARS):
        if entry.endswith(suffix) and entry[: -len(suffix)] in written:
            return True
    return False


def _refuse_foreign(folder: Path, shown_as: Path) -> None:
    foreign = foreign_entries(folder, shown_as)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise SatPluginError(
            f"{shown_as} holds {foreign[0]}{more}, which the export there did not write; move it out or choose "
            "another folder. Nothing was changed."
        )


def check_target(target) -> None:
    """Refuse, before any work, a target that is a file, cannot be written, or holds other files."""
    target = resolved(target)
    check_parent_folder(target)
    if target.exists():
        if not target.is_dir():
            raise SatPluginError(f"{target} exists and is a file; choose a folder for the dataset.")
        if is_mount_point(target):
            raise SatPluginError(
                f"{target} is the root of a volume of its own (a mount point), which the export cannot replace "
                f"as a whole; choose a folder inside it, such as {target / 'dataset'}. Nothing was changed."
            )
        _refuse_foreign(target, target)


def is_mount_point(folder: Path) -> bool:
    """A volume's root: a disk, a USB stick, a network share, a bind mount (a Docker volume).

    The dataset is staged beside the target and renamed onto it, and no folder can be
    renamed onto a mount point (EBUSY), or across volumes. ``os.path.ismount`` misses a
    bind mount of a folder of the same file system; Linux lists those in mountinfo.
    """
    if os.path.ismount(folder):
        return True
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
            points = [line.split(" ")[4] for line in info if line.count(" ") >= 4]
    except OSError:
        return False
    # mountinfo writes a space, tab, newline and backslash in a path as an octal escape.
    unescaped = {re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point) for point in points}
    return str(folder) in unescaped


def _leftover_pattern(target: Path, kind: str) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(target.name)}\.{kind}-{_TOKEN}$")


def prepare_target(target) -> None:
    """Clean up after killed runs, then :func:`check_target`; call while holding :func:`export_lock`.

    A run killed while writing leaves its staging folder (removed). One killed between
    the two renames of the commit leaves the previous export as ``.old-``: put back when
    the target is missing, else removed (the new export is in place).
    """
    target = resolved(target)
    parent = target.parent
    if parent.is_dir():
        remove_leftovers(parent, _leftover_pattern(target, "partial"))
        old = _leftover_pattern(target, "old")
        if not target.exists():
            for entry in sorted(parent.iterdir()):
                if old.match(entry.name) and entry.is_dir() and not entry.is_symlink():
                    os.replace(entry, target)
                    break
        remove_leftovers(parent, old)
    check_target(target)


class StagedFolder:
    """``with StagedFolder(target) as temp``: write into ``temp``; on success it becomes ``target``.

    Use it under :func:`export_lock`, after :func:`prepare_target`.
    """

    def __init__(self, target):
        self.target = resolved(target)
        token = uuid.uuid4().hex[:8]
        self.temp = self.target.with_name(f".{self.target.name}.partial-{token}")
        self.old = self.target.with_name(f".{self.target.name}.old-{token}")

    def __enter__(self) -> Path:
        try:
            self.temp.mkdir()
        except OSError as exc:
            raise self._error(exc) from exc
        return self.temp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._commit()
            except BaseException as failure:
                error = self._error(failure) if isinstance(failure, OSError) else None
                shutil.rmtree(self.temp, ignore_errors=True)
                if error is None:
                    raise
                raise error from failure
            return False
        # Named before the staging folder goes: it is what fills a full disk (see atomic.user_error_for).
        error = user_error_for(exc, self.target.parent, LOST)
        shutil.rmtree(self.temp, ignore_errors=True)
        if error is not None:
            raise error from exc
        return False

    def _commit(self) -> None:
        replaced = self.target.exists()
        if replaced:
            # Moved aside first, then checked: a file saved into the old export while this
            # one ran goes back with it, not into the bin.
            os.replace(self.target, self.old)
            try:
                _refuse_foreign(self.old, self.target)
            except SatPluginError:
                os.replace(self.old, self.target)
                raise
        try:
            os.replace(self.temp, self.target)
        except BaseException:
            if replaced:
                os.replace(self.old, self.target)
            raise
        if replaced:
            shutil.rmtree(self.old, ignore_errors=True)

    def _error(self, exc: BaseException) -> SatPluginError:
        return user_error_for(exc, self.target.parent, LOST) or SatPluginError(
            f"Cannot write the dataset at {self.target}: {getattr(exc, 'strerror', None) or exc}. {LOST}"
        )
