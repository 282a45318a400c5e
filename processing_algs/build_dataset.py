"""satplugin:builddataset — a dataset over every MGRS tile the polygons touch, in one run."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExpression,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..qgis_satplugin.core.region.options import BuildDatasetOptions
from .base import SatPluginAlgorithm, core_errors, options_help
from .download_products import BAND_CHOICES, BAND_LABELS
from .export_patches import FORMATS
from .polygon_input import PolygonLayerInput, layer_field_name, remove_geopackage
from .qgis_inputs import add_scheduler_parameter, number_parameter, scheduler_option, split_ratios_value
from .search_products import BACKENDS, COLLECTIONS, STRATEGIES

# The options this algorithm's parameters set, for the help built from the options' own descriptions.
PARAMETER_OF = {
    "polygons": "INPUT + CLASS_FIELD + ID_FIELD (+ FILTER)", "start": "START_DATE", "end": "END_DATE",
    "backend": "BACKEND", "service_url": "SERVICE_URL", "collection": "COLLECTION", "max_cloud": "MAX_CLOUD",
    "max_products": "MAX_PRODUCTS", "strategy": "STRATEGY", "bands": "BANDS", "pixel_size": "PIXEL_SIZE",
    "patch_size": "PATCH_SIZE", "stride": "STRIDE", "format": "FORMAT", "patch_max_cloud": "PATCH_MAX_CLOUD",
    "min_dates": "MIN_DATES", "max_dates": "MAX_DATES", "split_ratios": "SPLIT_RATIOS",
    "split_block_m": "SPLIT_BLOCK_M", "seed": "SEED", "dask_scheduler": "DASK_SCHEDULER",
    "output_folder": "OUTPUT_FOLDER",
}
HELP = f"""<p>Builds one dataset over a whole region: it searches once, then for every MGRS tile the
polygons touch downloads the products onto a grid in that tile's own UTM zone, rasterizes the
polygons there and exports patches; a merged index, card and STAC collection cover the region.
The splits are decided once for the region, polygon by polygon, so no polygon is in two splits,
across tile borders too. Each tile is one task: with DASK_SCHEDULER on a Dask cluster, and the
result is the same bytes. A rerun into the same folder skips the tiles already complete; a tile
that fails is named in the log and the card, and the others still make the dataset.</p>
{options_help(BuildDatasetOptions, PARAMETER_OF, last=("output_folder",))}
<p><b>Example</b> (command line):<br/>
<code>qgis_process run satplugin:builddataset -- INPUT=fields.gpkg CLASS_FIELD=crop BACKEND=3
SERVICE_URL=products START_DATE=2023-04-01 END_DATE=2023-09-30 PATCH_SIZE=64 DASK_SCHEDULER=local:2
OUTPUT_FOLDER=region_dataset</code></p>"""


class BuildDataset(PolygonLayerInput, SatPluginAlgorithm):
    NAME = "builddataset"
    DISPLAY_NAME = "Build a dataset over a region"
    GROUP = "export"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(QgsProcessingParameterFeatureSource("INPUT", "Polygons (field parcels or areas)",
                                                              [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField("CLASS_FIELD", "Class field", parentLayerParameterName="INPUT"))
        self.addParameter(QgsProcessingParameterField("ID_FIELD", "Parcel id field (integer)", parentLayerParameterName="INPUT",
                                                      type=QgsProcessingParameterField.Numeric, optional=True))
        self.addParameter(QgsProcessingParameterExpression("FILTER", "Filter (expression)", parentLayerParameterName="INPUT",
                                                           optional=True))
        self.addParameter(QgsProcessingParameterString("START_DATE", "Season start (YYYY-MM-DD)"))
        self.addParameter(QgsProcessingParameterString("END_DATE", "Season end (YYYY-MM-DD)"))
        self.addParameter(QgsProcessingParameterEnum("BACKEND", "Backend", [label for _, label in BACKENDS], defaultValue=3))
        self.addParameter(QgsProcessingParameterString("SERVICE_URL", "Service URL (or the local folder of products)"))
        self.addParameter(QgsProcessingParameterEnum("COLLECTION", "Collection", COLLECTIONS, defaultValue=0))
        double, integer = QgsProcessingParameterNumber.Double, QgsProcessingParameterNumber.Integer
        for name, label, kind, default, low, high in (
            ("MAX_CLOUD", "Maximum scene cloud (%)", double, 50.0, 0, 100),
            ("MAX_PRODUCTS", "Dates to select (0: all)", integer, 0, 0, None),
        ):
            self.addParameter(number_parameter(name, label, kind, default, low, high))
        self.addParameter(QgsProcessingParameterEnum("STRATEGY", "Strategy", [label for _, label in STRATEGIES], defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum("BANDS", "Bands", BAND_LABELS, allowMultiple=True, defaultValue=[0]))
        for name, label, kind, default, low, high in (
            ("PIXEL_SIZE", "Pixel size (m)", double, 10.0, 0.5, None),
            ("PATCH_SIZE", "Patch size (pixels)", integer, 64, 2, None),
            ("STRIDE", "Stride (pixels; 0: the patch size)", integer, 0, 0, None),
        ):
            self.addParameter(number_parameter(name, label, kind, default, low, high))
        self.addParameter(QgsProcessingParameterEnum("FORMAT", "Format", [label for _, label in FORMATS], defaultValue=0))
        for name, label, kind, default, low, high in (
            ("PATCH_MAX_CLOUD", "Maximum cloud per patch and date (%)", double, 100.0, 0, 100),
            ("MIN_DATES", "Minimum dates per sample", integer, 1, 1, None),
            ("MAX_DATES", "Maximum dates per sample (0: no maximum)", integer, 0, 0, None),
            ("SPLIT_BLOCK_M", "Split block size (m)", double, 5120.0, 1.0, None),
        ):
            self.addParameter(number_parameter(name, label, kind, default, low, high))
        self.addParameter(QgsProcessingParameterString("SPLIT_RATIOS", "Split ratios train,val,test", defaultValue="0.7,0.15,0.15"))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Seed", integer, 0))
        add_scheduler_parameter(self)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Dataset folder"))
        self.addOutput(QgsProcessingOutputNumber("SAMPLE_COUNT", "Samples written"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Tiles in the dataset"))
        self.addOutput(QgsProcessingOutputNumber("FAILED_TILES", "Tiles that failed"))
        self.addOutput(QgsProcessingOutputFile("INDEX", "Sample index of the region (GeoPackage)"))
        self.addOutput(QgsProcessingOutputFile("DATASET_CARD", "Dataset card (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None or QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PolygonGeometry:
            raise QgsProcessingException("INPUT must be a readable polygon layer.")
        class_field = layer_field_name(source.fields(), "CLASS_FIELD", self.parameterAsString(parameters, "CLASS_FIELD", context))
        id_field = layer_field_name(source.fields(), "ID_FIELD", self.parameterAsString(parameters, "ID_FIELD", context))
        backend = BACKENDS[self.parameterAsEnum(parameters, "BACKEND", context)][0]
        polygons_file, _, temporary = self.polygons_for_engine(source, parameters, context, feedback, class_field,
                                                               id_field, None)
        try:
            with core_errors():
                options = BuildDatasetOptions(
                    polygons=polygons_file,
                    output_folder=self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                    start=self.parameterAsString(parameters, "START_DATE", context),
                    end=self.parameterAsString(parameters, "END_DATE", context),
                    service_url=self.parameterAsString(parameters, "SERVICE_URL", context),
                    backend=backend,
                    collection=COLLECTIONS[self.parameterAsEnum(parameters, "COLLECTION", context)],
                    max_cloud=self.parameterAsDouble(parameters, "MAX_CLOUD", context),
                    max_products=self.parameterAsInt(parameters, "MAX_PRODUCTS", context) or None,
                    strategy=STRATEGIES[self.parameterAsEnum(parameters, "STRATEGY", context)][0],
                    bands=tuple(BAND_CHOICES[i] for i in self.parameterAsEnums(parameters, "BANDS", context)),
                    pixel_size=self.parameterAsDouble(parameters, "PIXEL_SIZE", context),
                    patch_size=self.parameterAsInt(parameters, "PATCH_SIZE", context),
                    stride=self.parameterAsInt(parameters, "STRIDE", context) or None,
                    format=FORMATS[self.parameterAsEnum(parameters, "FORMAT", context)][0],
                    patch_max_cloud=self.parameterAsDouble(parameters, "PATCH_MAX_CLOUD", context),
                    min_dates=self.parameterAsInt(parameters, "MIN_DATES", context),
                    max_dates=self.parameterAsInt(parameters, "MAX_DATES", context) or None,
                    split_ratios=split_ratios_value(self.parameterAsString(parameters, "SPLIT_RATIOS", context)),
                    split_block_m=self.parameterAsDouble(parameters, "SPLIT_BLOCK_M", context),
                    seed=self.parameterAsInt(parameters, "SEED", context),
                    dask_scheduler=scheduler_option(self, parameters, context),
                )
            result = self.run_step("build_dataset", options, feedback)
        finally:
            if temporary:
                remove_geopackage(temporary)
        for failure in result["failures"]:
            feedback.reportError(f"Tile {failure['tile']} failed: {failure['error']}", False)
        return {
            "OUTPUT_FOLDER": result["output_folder"],
            "SAMPLE_COUNT": result["n_samples"],
            "TILE_COUNT": len(result["tiles"]),
            "FAILED_TILES": len(result["failures"]),
            "INDEX": result["files"]["index"],
            "DATASET_CARD": result["files"]["card_json"],
        }

