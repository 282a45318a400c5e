"""satplugin:superresolve — ONNX super-resolution of revisits, tiled, georeferenced."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..qgis_satplugin.core.superres.options import SuperResolveOptions
from ..qgis_satplugin.core.superres.session import PROVIDER_CHOICES
from .base import SatPluginAlgorithm, core_errors, options_help
from .qgis_inputs import add_scheduler_parameter, image_series_input, scheduler_option

PROVIDER_LABELS = ["Auto (best available)", "CPU", "CUDA", "TensorRT", "DirectML", "CoreML"]

# The options this algorithm's parameters set, for the help built from the options' own descriptions.
PARAMETER_OF = {
    "inputs": "INPUT",
    "model": "MODEL",
    "provider": "PROVIDER",
    "tile_size": "TILE_SIZE",
    "overlap": "OVERLAP",
    "batch_size": "BATCH_SIZE",
    "max_cloud": "MAX_CLOUD",
    "preserve_reflectance": "PRESERVE_REFLECTANCE",
    "dask_scheduler": "DASK_SCHEDULER",
    "output": "OUTPUT",
}
# Where the plugin keeps the shipped model (the engine's options cannot know the plugin's layout).
WHERE_MODELS_ARE = " The shipped models are in qgis_satplugin/core/resources/superres/."
PARAMETER_HELP = options_help(SuperResolveOptions, PARAMETER_OF, {"model": WHERE_MODELS_ARE})

HELP = f"""<p>Fuses Sentinel-2 revisits into a sharper image with an ONNX model, on the GPU when
there is one and on the CPU otherwise, tile by tile, into a GeoTIFF with exactly the input's
extent and CRS at the input pixel size divided by the model's scale.</p>
{PARAMETER_HELP}
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
        self.addParameter(QgsProcessingParameterBoolean("PRESERVE_REFLECTANCE",
                                                        "Preserve reflectance (degraded back, the output equals the input)",
                                                        defaultValue=True))
        add_scheduler_parameter(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Super-resolved raster"))
        self.addOutput(QgsProcessingOutputString("PROVIDER_USED", "Execution provider that ran"))
        self.addOutput(QgsProcessingOutputNumber("REVISITS_USED", "Revisits fed to the model"))
        self.addOutput(QgsProcessingOutputNumber(
            "IMAGES_USED", "Distinct images among them (fewer when the model takes more revisits than there are)"))
        self.addOutput(QgsProcessingOutputNumber("SCALE", "Upsampling factor"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        with core_errors():
            options = SuperResolveOptions(
                inputs=image_series_input(self, parameters, "INPUT", context),
                output=self.parameterAsOutputLayer(parameters, "OUTPUT", context),
                model=self.parameterAsFile(parameters, "MODEL", context) or None,
                provider=PROVIDER_CHOICES[self.parameterAsEnum(parameters, "PROVIDER", context)],
                tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
                overlap=self.parameterAsInt(parameters, "OVERLAP", context),
                batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
                max_cloud=self.parameterAsDouble(parameters, "MAX_CLOUD", context),
                preserve_reflectance=self.parameterAsBoolean(parameters, "PRESERVE_REFLECTANCE", context),
                dask_scheduler=scheduler_option(self, parameters, context),
            )
        result = self.run_step("superres", options, feedback)
        return {
            "OUTPUT": result["output"],
            "PROVIDER_USED": result["provider"],
            "REVISITS_USED": len(result["revisits"]),
            "IMAGES_USED": len({revisit["path"] for revisit in result["revisits"]}),
            "SCALE": result["scale"],
        }
