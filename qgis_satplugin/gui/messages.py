"""Where the dock tells the user things: the message bar for the headline, the log panel for details."""
from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "satplugin"
TITLE = "Sentinel-2 ML datasets"


def log(text, level=Qgis.Info):
    QgsMessageLog.logMessage(text, LOG_TAG, level)


def error(iface, message, details=""):
    """A failure: one line in the message bar, the whole story (algorithm log) in the log panel."""
    log(f"{message}\n{details}".strip(), Qgis.Critical)
    if iface is not None:
        iface.messageBar().pushCritical(TITLE, f"{message} (details in the log panel, tab '{LOG_TAG}')")


def info(iface, message):
    """Something worth knowing that needs no action (where outputs go): log and a passing note."""
    log(message, Qgis.Info)
    if iface is not None:
        iface.messageBar().pushInfo(TITLE, message)


def warning(iface, message):
    log(message, Qgis.Warning)
    if iface is not None:
        iface.messageBar().pushWarning(TITLE, message)


def success(iface, message, details=""):
    log(f"{message}\n{details}".strip(), Qgis.Info)
    if iface is not None:
        iface.messageBar().pushSuccess(TITLE, message)
