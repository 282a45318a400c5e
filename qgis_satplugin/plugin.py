"""The QGIS plugin object: registers the Processing provider.

qgis_process calls ``classFactory(None)`` then ``initProcessing()``; QGIS Desktop only
calls ``initGui()``, which therefore calls ``initProcessing()`` itself.
"""
from qgis.core import QgsApplication


class SatPlugin:
    def __init__(self, iface):
        # iface is None under qgis_process: keep it, never touch it here.
        self.iface = iface
        self.provider = None

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

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
