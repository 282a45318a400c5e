"""Where the dock's steps write: one folder per project, a fresh name per run.

Every run gets new file names (a time stamp), so a layer already on the map never has
its file replaced under it (Windows refuses that, and QGIS would show stale data).
"""
import time
from pathlib import Path

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QStandardPaths

from .step_page import StepInputError

PROJECT_SUBFOLDER = "satplugin_outputs"  # next to a saved project
USER_SUBFOLDER = "satplugin"  # in the user's documents when the project is not saved yet


def default_folder() -> Path:
    """The folder the steps write to when the dock's work folder is empty.

    Next to the project file when the project is saved (the outputs travel with it);
    otherwise ``satplugin`` in the user's Documents folder, or in the home folder when
    there is no Documents folder. Never QGIS's temporary Processing folder: QGIS deletes
    that when it exits, and the downloaded series and datasets with it.
    """
    home = QgsProject.instance().homePath()
    if home:
        return Path(home) / PROJECT_SUBFOLDER
    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    # Servers and fresh accounts often have no ~/Documents: do not create one just for us.
    base = Path(documents) if documents and Path(documents).is_dir() else Path.home()
    return base / USER_SUBFOLDER


class Workspace:
    """The work folder and the credentials the dock's steps share.

    ``on_default_folder(folder)`` is called the first time the steps fall back to a
    given default folder, so the dock can say where the outputs went.
    """

    def __init__(self, folder_widget, auth_widget, on_default_folder=None):
        self.folder_widget = folder_widget
        self.auth_widget = auth_widget
        self.on_default_folder = on_default_folder
        self._announced = None

    def folder(self) -> Path:
        text = self.folder_widget.filePath().strip()
        folder = Path(text) if text else default_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StepInputError(
                f"The work folder {folder} cannot be created ({exc.strerror or exc}): choose another one at the top of the dock."
            ) from exc
        if not text and folder != self._announced:
            self._announced = folder
            if self.on_default_folder is not None:
                self.on_default_folder(folder)
        return folder

    def new_path(self, stem, suffix="") -> str:
        """``<folder>/<stem>_<YYYYmmdd-HHMMSS>[-n]<suffix>`` that does not exist yet."""
        folder, stamp = self.folder(), time.strftime("%Y%m%d-%H%M%S")
        candidate, n = folder / f"{stem}_{stamp}{suffix}", 1
        while candidate.exists():
            n += 1
            candidate = folder / f"{stem}_{stamp}-{n}{suffix}"
        return str(candidate)

    def authcfg(self) -> str:
        return self.auth_widget.configId() or ""
