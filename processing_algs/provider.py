"""The ``satplugin`` Processing provider."""
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ENGINE_PYTHON_SETTING, ICON
from .build_dataset import BuildDataset
from .download_products import DownloadProducts
from .engine_algorithms import InstallEngine, RemoveEngine
from .export_patches import ExportPatches
from .rasterize_ground_truth import RasterizeGroundTruth
from .search_products import SearchProducts
from .super_resolve import SuperResolve


class SatPluginProvider(QgsProcessingProvider):
    ID = "satplugin"

    def id(self):
        return self.ID

    def name(self):
        return "Sentinel-2 ML datasets"

    def longName(self):  # noqa: N802 (QGIS API)
        return "Sentinel-2 ML datasets (search, download, ground truth, export, super-resolution)"

    def icon(self):
        return QIcon(str(ICON))

    def svgIconPath(self):  # noqa: N802 (QGIS API)
        return str(ICON)

    def loadAlgorithms(self):  # noqa: N802 (QGIS API)
        for algorithm in (SearchProducts(), DownloadProducts(), RasterizeGroundTruth(), ExportPatches(), SuperResolve(),
                          BuildDataset(), InstallEngine(), RemoveEngine()):
            self.addAlgorithm(algorithm)

    def load(self):
        """The provider's setting in Options > Processing > Providers, as GRASS and SAGA have theirs."""
        try:
            from processing.core.ProcessingConfig import ProcessingConfig, Setting
        except ImportError:  # Processing's Python plugin is not loaded: the environment variable still works
            return super().load()
        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(
            Setting(
                self.name(),
                ENGINE_PYTHON_SETTING,
                "Engine Python interpreter (empty: the managed engine from Install engine)",
                "",
                valuetype=Setting.FILE,
            )
        )
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        try:
            from processing.core.ProcessingConfig import ProcessingConfig
        except ImportError:
            return
        ProcessingConfig.removeSetting(ENGINE_PYTHON_SETTING)

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802 (QGIS API)
        # Every raster this provider writes is a GeoTIFF.
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self):  # noqa: N802 (QGIS API)
        # Every vector this provider writes is a GeoPackage.
        return ["gpkg"]
