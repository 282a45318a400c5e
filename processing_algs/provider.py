"""The ``satplugin`` Processing provider."""
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICON
from .download_products import DownloadProducts
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
        for algorithm in (SearchProducts(), DownloadProducts(), RasterizeGroundTruth(), ExportPatches(), SuperResolve()):
            self.addAlgorithm(algorithm)

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802 (QGIS API)
        # Every raster this provider writes is a GeoTIFF.
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self):  # noqa: N802 (QGIS API)
        # Every vector this provider writes is a GeoPackage.
        return ["gpkg"]
