"""satplugin:superresolve — ONNX super-resolution of revisits, tiled, georeferenced."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..qgis_satplugin.core.superres import DEFAULT_MODEL, PROVIDER_CHOICES, super_resolve
from .base import SatPluginAlgorithm
from .qgis_inputs import image_series_input

PROVIDER_LABELS = ["Auto (best available)", "CPU", "CUDA", "TensorRT", "DirectML", "CoreML"]

HELP = f"""<p>Fuses Sentinel-2 revisits into a sharper image with an ONNX model, on the GPU when
there is one and on the CPU otherwise, tile by tile, into a GeoTIFF with exactly the input's
extent and CRS at the input pixel size divided by the model's scale.</p>
<p><b>INPUT</b>: a "Download products" folder, or one raster per revisit on one grid (dates from
the ACQUISITION_DATETIME tag or the file name). Revisits are ordered as the model was trained
(clearest first, from the SCL/CLM masks beside the images, or chronological); dates above
MAX_CLOUD % cloud are skipped. Pixels a revisit cannot supply (cloud, no data) are filled from the
next revisit in that order.</p>
<p><b>MODEL</b>: a .onnx file carrying the plugin's model contract in its metadata (bands, scale,
revisits, normalisation, output bands and units); checked at load with a clear error. Empty: the
shipped default, {DEFAULT_MODEL.name} (x2, B02 B03 B04 B08; see qgis_satplugin/core/resources/superres/).
<b>PROVIDER</b>: auto picks CUDA, DirectML or CoreML when one works here, else the CPU; a GPU
provider that fails to load falls back to the CPU with a message. The log says which one ran.</p>
<p><b>TILE_SIZE</b> and <b>OVERLAP</b> (input pixels): tiles are blended with raised-cosine
windows that sum to one, and a margin of each tile as wide as the model's receptive field (from
its metadata; OVERLAP/4 when it does not say) is discarded, so with OVERLAP above twice the
receptive field the result does not depend on the tiling: no seams, and no dark borders at the
raster edges (which are padded by reflection). The log warns when OVERLAP is too small.
<b>BATCH_SIZE</b>: tiles per inference call (0, the default: 1 on the CPU, where it is fastest,
4 on a GPU). Memory holds one row of tiles, whatever the raster's
size.</p>
<p><b>OUTPUT</b> is written under a temporary name and renamed when complete: a failure, a full disk
or a cancel keeps a previous file. An OUTPUT that is one of the inputs, lies in the download
folder, or is an existing folder is refused before any work.</p>
<p><b>Example</b> (command line):<br/>
<code>qgis_process run satplugin:superresolve -- INPUT=series PROVIDER=0 TILE_SIZE=256 OVERLAP=32
OUTPUT=sr_5m.tif</code></p>"""


class SuperResolve(SatPluginAlgorithm):
    NAME = "superresolve"
    DISPLAY_NAME = "Super-resolve"
    GROUP = "superresolution"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUT", "Revisits: a download folder, or one raster per revisit", QgsProcessing.TypeFile
            )
        )
        self.addParameter(
            QgsProcessingParameterFile("MODEL", "ONNX model (empty: the shipped default)", extension="onnx", optional=True)
        )
        self.addParameter(QgsProcessingParameterEnum("PROVIDER", "Execution provider", PROVIDER_LABELS, defaultValue=0))
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(QgsProcessingParameterNumber("TILE_SIZE", "Tile size (input pixels)", integer, 256, minValue=8))
        self.addParameter(QgsProcessingParameterNumber("OVERLAP", "Tile overlap (input pixels)", integer, 32, minValue=0))
        self.addParameter(
            QgsProcessingParameterNumber("BATCH_SIZE", "Tiles per batch (0: 1 on the CPU, 4 on a GPU)", integer, 0, minValue=0)
        )
        self.addParameter(
            QgsProcessingParameterNumber("MAX_CLOUD", "Skip revisits above this cloud share (%)",
                                         QgsProcessingParameterNumber.Double, 50.0, minValue=0.0, maxValue=100.0)
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Super-resolved raster"))
        self.addOutput(QgsProcessingOutputString("PROVIDER_USED", "Execution provider that ran"))
        self.addOutput(QgsProcessingOutputNumber("REVISITS_USED", "Revisits fed to the model"))
        self.addOutput(QgsProcessingOutputNumber("SCALE", "Upsampling factor"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        result = self.run_core(
            super_resolve,
            feedback,
            inputs=image_series_input(self, parameters, "INPUT", context),
            output=self.parameterAsOutputLayer(parameters, "OUTPUT", context),
            model=self.parameterAsFile(parameters, "MODEL", context) or None,
            provider=PROVIDER_CHOICES[self.parameterAsEnum(parameters, "PROVIDER", context)],
            tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
            overlap=self.parameterAsInt(parameters, "OVERLAP", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            max_cloud=self.parameterAsDouble(parameters, "MAX_CLOUD", context),
        )
        return {
            "OUTPUT": str(result.output),
            "PROVIDER_USED": result.provider,
            "REVISITS_USED": len(result.revisits),
            "SCALE": result.scale,
        }
