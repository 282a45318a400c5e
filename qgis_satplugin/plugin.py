"""The QGIS plugin object: registers the Processing provider, and in QGIS Desktop the dock.

qgis_process calls ``classFactory(None)`` then ``initProcessing()``; QGIS Desktop only
calls ``initGui()``, which therefore calls ``initProcessing()`` itself. Only ``initGui``
and ``unload`` touch ``iface``, and ``unload`` only when ``initGui`` ran.
"""
from qgis.core import QgsApplication

MENU = "&Sentinel-2 ML datasets"
INSTALL_ENGINE_LABEL = "Install engine…"


class SatPlugin:
    def __init__(self, iface):
        # iface is None under qgis_process: keep it, never touch it here.
        self.iface = iface
        self.provider = None
        self.dock = None
        self.action = None
        self.engine_message = None  # the message bar's "no engine" item, while it shows

    def initProcessing(self):  # noqa: N802 (QGIS API)
        from ..processing_algs.provider import SatPluginProvider

        registry = QgsApplication.processingRegistry()
        if registry.providerById(SatPluginProvider.ID) is not None:
            # Re-adding an id that is already registered deletes the Python object.
            return
        self.provider = SatPluginProvider()
        registry.addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API)
        self.initProcessing()
        if self.iface is None or self.dock is not None:
            return  # no window to dock into, or already set up (a second initGui)
        # Imported here: the Qt widgets are not needed (nor wanted) under qgis_process.
        from qgis.PyQt.QtCore import Qt
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        from ..processing_algs.base import ICON
        from .gui.dock import TITLE, SatPluginDock

        window = self.iface.mainWindow()
        self.dock = SatPluginDock(self.iface, window, offer_engine=self.offer_engine)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.hide()  # shown from its action, then QGIS remembers where the user left it
        self.action = QAction(QIcon(str(ICON)), TITLE, window)
        self.action.setCheckable(True)
        self.action.setToolTip("Show the Sentinel-2 ML datasets panel: search, download, ground truth, export, super-resolve")
        self.action.triggered.connect(self._toggle_dock)
        # "Opened", not "visible": a dock tabbed behind another one is still open.
        self.dock.openedStateChanged.connect(self.action.setChecked)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToMenu(MENU, self.action)
        self.offer_engine()

    def offer_engine(self):
        """Without a usable engine, a message bar that says so, with Install engine… (the installer's dialog)."""
        from qgis.core import Qgis, QgsProcessingException
        from qgis.PyQt import sip
        from qgis.PyQt.QtWidgets import QPushButton

        from ..processing_algs.base import current_engine
        from .engine_env.locate import NOT_INSTALLED

        try:
            current_engine()
        except QgsProcessingException as exc:
            bar = self.iface.messageBar()
            if self.engine_message is not None and not sip.isdeleted(self.engine_message):
                bar.popWidget(self.engine_message)  # one such message at a time, however often a step asks
            text = str(exc)
            if text.startswith(NOT_INSTALLED):  # the usual first start: one line, the button and its dialog say the rest
                text = "its steps need an engine, not installed yet (about 250 MB)."
            message = bar.createMessage("Sentinel-2 ML datasets", text)
            button = QPushButton(INSTALL_ENGINE_LABEL, message)
            button.clicked.connect(self.open_installer)
            message.layout().addWidget(button)
            bar.pushWidget(message, Qgis.Warning)
            self.engine_message = message
            return message
        return None

    def open_installer(self):
        """The install algorithm's dialog: what, how big and where (its help), the wheelhouse, progress and Cancel.

        Once it is closed with an engine in place, the message bar goes.
        """
        import processing
        from qgis.core import QgsProcessingException

        from ..processing_algs.base import current_engine

        processing.execAlgorithmDialog("satplugin:installengine", {})
        try:
            current_engine()
        except QgsProcessingException:
            return
        if self.engine_message is not None:
            self.iface.messageBar().popWidget(self.engine_message)
            self.engine_message = None

    def _toggle_dock(self):
        # Hidden or tabbed behind another panel: bring it to the front; in front: close it.
        self.dock.toggleUserVisible()
        self.action.setChecked(not self.dock.isHidden())

    def unload(self):
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removePluginMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.action.deleteLater()
            self.dock = self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
