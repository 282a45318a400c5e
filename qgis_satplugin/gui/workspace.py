"""Where the dock's steps write: one folder per project, a fresh name per run.

Every run gets new file names (a time stamp), so a layer already on the map never has
its file replaced under it (Windows refuses that, and QGIS would show stale data).
"""
import time
from pathlib import Path

from qgis.core import QgsProcessingUtils, QgsProject


def default_folder() -> Path:
    """Next to the project file when it is saved, else QGIS's temporary Processing folder."""
    home = QgsProject.instance().homePath()
    return Path(home) / "satplugin_outputs" if home else Path(QgsProcessingUtils.tempFolder()) / "satplugin_outputs"


class Workspace:
    """The work folder and the credentials the dock's steps share."""

    def __init__(self, folder_widget, auth_widget):
        self.folder_widget = folder_widget
        self.auth_widget = auth_widget

    def folder(self) -> Path:
        text = self.folder_widget.filePath().strip()
        folder = Path(text) if text else default_folder()
        folder.mkdir(parents=True, exist_ok=True)
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
