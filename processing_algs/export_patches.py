"""satplugin:exportpatches — patches and per-location time series, ready for ML code."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..qgis_satplugin.core.area import Area
from ..qgis_satplugin.core.export.label_rasters import labels_by_kind
from ..qgis_satplugin.core.export.options import STAC_COLLECTION_ID, ExportOptions, SplitArea
from .base import SatPluginAlgorithm, core_errors, crs_string, options_help
from .qgis_inputs import (
    add_scheduler_parameter,
    area_wkt,
    first_band_description,
    image_series_input,
    number_parameter,
    raster_layers,
    scheduler_option,
    split_ratios_value,
)

FORMATS = [
    ("npz", "npz: one file per sample, arrays [T, C, H, W] + dates + labels"),
    ("zarr", "zarr: one chunked store for the whole dataset"),
    ("geotiff", "GeoTIFF chips per date + label chips"),
    ("deepsatdata", "DeepSatData pickles (band names, doy, year, labels, ids, masks, ratios, distances)"),
]
BAND_RESOLUTIONS = [("resample", "All bands on one grid"), ("native", "Native resolution per group (10/20/60 m)"),
                    ("sharpened", "All bands at 10 m, the 20 m bands sharpened (shipped model)")]

# The parameter that sets each option, for the help built from the options' own descriptions.
PARAMETER_OF = {name: name.upper() for name, _ in ExportOptions.help_lines()}
PARAMETER_OF["split_areas"] = "SPLIT_LAYER + SPLIT_FIELD"
# What the parameter adds in QGIS to the option's description.
PARAMETER_NOTES = {
    "format": " The zarr store opens in xarray (xarray.open_zarr) with named dimensions and coordinates.",
    "split_areas": " Here: the SPLIT_LAYER polygons, in the layer's CRS, each with the split in its SPLIT_FIELD.",
}
PARAMETER_HELP = options_help(ExportOptions, PARAMETER_OF, PARAMETER_NOTES, last=("output_folder",))

HELP = f"""<p>Cuts imagery and ground truth into a dataset that ML code loads without glue: fixed-size
patches with their time series (images + labels + dates), spatially blocked train/val/test splits,
an index GeoPackage and a dataset card.</p>
{PARAMETER_HELP}
<p>Every export also writes index.gpkg (one row per sample: footprint, split, path, dates, class
histogram), dataset.json and dataset.md (sources and dates, bands, scale/offset, normalisation
statistics from the train split, grid and CRS, counts per class and split, attribution, and the
list of every file it wrote), a STAC catalog (collection.json and one item per sample in stac/:
footprint, dates, assets, ml-aoi:split, label extension) and croissant.json (MLCommons Croissant:
files, fields, splits).
<code>qgis_satplugin.core.export.torch_dataset.PatchDataset</code> reads every format;
<code>torchgeo_dataset.ExportedGeoDataset</code> serves it to TorchGeo samplers with its dates.</p>
<p><b>Example</b> (command line):<br/>
<code>qgis_process run satplugin:exportpatches -- IMAGES=series LABELS=class.tif LABELS=parcel_id.tif
PATCH_SIZE=64 MAX_CLOUD=20 MIN_LABELLED=0.1 FORMAT=0 SPLIT_RATIOS=0.7,0.15,0.15 SEED=0
OUTPUT_FOLDER=dataset</code></p>"""


class ExportPatches(SatPluginAlgorithm):
    NAME = "exportpatches"
    DISPLAY_NAME = "Export patches"
    GROUP = "export"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "IMAGES", "Images: a download folder, or one raster per date", QgsProcessing.TypeFile
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "LABELS", "Labels (outputs of Rasterize ground truth)", QgsProcessing.TypeRaster, optional=True
            )
        )
        integer = QgsProcessingParameterNumber.Integer
        double = QgsProcessingParameterNumber.Double
        for name, label, kind, default, low, high in (
            ("PATCH_SIZE", "Patch size (pixels)", integer, 64, 2, None),
            ("STRIDE", "Stride (pixels; 0: the patch size)", integer, 0, 0, None),
            ("LABEL_SCALE", "Label scale (labels k times finer)", integer, 1, 1, 16),
        ):
            self.addParameter(number_parameter(name, label, kind, default, low, high))
        self.addParameter(QgsProcessingParameterString("BANDS", "Bands (comma-separated; empty: all)", optional=True))
        self.addParameter(
            QgsProcessingParameterEnum("BAND_RESOLUTION", "Band resolution", [label for _, label in BAND_RESOLUTIONS], defaultValue=0)
        )
        for name, label, kind, default, low, high in (
            ("MIN_LABELLED", "Minimum share of labelled pixels", double, 0.0, 0.0, 1.0),
            ("MAX_CLOUD", "Maximum cloud per patch and date (%)", double, 100.0, 0.0, 100.0),
            ("MIN_DATES", "Minimum dates per sample", integer, 1, 1, None),
            ("MAX_DATES", "Maximum dates per sample (0: no maximum)", integer, 0, 0, None),
        ):
            self.addParameter(number_parameter(name, label, kind, default, low, high))
        self.addParameter(QgsProcessingParameterString("SEASON_START", "Season start (MM-DD)", optional=True))
        self.addParameter(QgsProcessingParameterString("SEASON_END", "Season end (MM-DD)", optional=True))
        self.addParameter(QgsProcessingParameterEnum("FORMAT", "Format", [label for _, label in FORMATS], defaultValue=0))
        self.addParameter(
            QgsProcessingParameterNumber("SPLIT_BLOCK_SIZE", "Split block size (pixels; 0: 8 patches)", integer, 0, minValue=0)
        )
        self.addParameter(QgsProcessingParameterString("SPLIT_RATIOS", "Split ratios train,val,test", defaultValue="0.7,0.15,0.15"))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Seed", integer, 0))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "SPLIT_LAYER", "Split polygons (optional)", [QgsProcessing.TypeVectorPolygon], optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "SPLIT_FIELD", "Split field (train/val/test)", parentLayerParameterName="SPLIT_LAYER", optional=True
            )
        )
        collection_id = QgsProcessingParameterString("STAC_COLLECTION_ID", "STAC collection id",
                                                     defaultValue=STAC_COLLECTION_ID)
        collection_id.setFlags(collection_id.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(collection_id)
        add_scheduler_parameter(self)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Dataset folder"))
        self.addOutput(QgsProcessingOutputNumber("SAMPLE_COUNT", "Samples written"))
        self.addOutput(QgsProcessingOutputFile("INDEX", "Sample index (GeoPackage)"))
        self.addOutput(QgsProcessingOutputFile("DATASET_CARD", "Dataset card (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        images = image_series_input(self, parameters, "IMAGES", context)
        labels = [layer.source() for layer in raster_layers(self, parameters, "LABELS", context)]
        split_layer = self._split_layer(parameters, context)
        with core_errors():
            options = ExportOptions(
                images=images if isinstance(images, str) else tuple(images),
                output_folder=self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                labels=labels_by_kind(labels, first_band_description) if labels else None,
                patch_size=self.parameterAsInt(parameters, "PATCH_SIZE", context),
                stride=self.parameterAsInt(parameters, "STRIDE", context) or None,
                label_scale=self.parameterAsInt(parameters, "LABEL_SCALE", context),
                bands=tuple(b.strip() for b in self.parameterAsString(parameters, "BANDS", context).split(",") if b.strip())
                or None,
                band_resolution=BAND_RESOLUTIONS[self.parameterAsEnum(parameters, "BAND_RESOLUTION", context)][0],
                min_labelled=self.parameterAsDouble(parameters, "MIN_LABELLED", context),
                max_cloud=self.parameterAsDouble(parameters, "MAX_CLOUD", context),
                min_dates=self.parameterAsInt(parameters, "MIN_DATES", context),
                max_dates=self.parameterAsInt(parameters, "MAX_DATES", context) or None,
                season_start=self.parameterAsString(parameters, "SEASON_START", context) or None,
                season_end=self.parameterAsString(parameters, "SEASON_END", context) or None,
                format=FORMATS[self.parameterAsEnum(parameters, "FORMAT", context)][0],
                split_block_size=self.parameterAsInt(parameters, "SPLIT_BLOCK_SIZE", context) or None,
                split_ratios=split_ratios_value(self.parameterAsString(parameters, "SPLIT_RATIOS", context)),
                seed=self.parameterAsInt(parameters, "SEED", context),
                split_areas=_split_areas(*split_layer) if split_layer else None,
                stac_collection_id=self.parameterAsString(parameters, "STAC_COLLECTION_ID", context).strip()
                or STAC_COLLECTION_ID,
                dask_scheduler=scheduler_option(self, parameters, context),
            )
        result = self.run_step("export", options, feedback)
        feedback.pushInfo(f"Samples per split: {result['samples_per_split']}; dropped: {result['dropped']}.")
        return {
            "OUTPUT_FOLDER": result["output_folder"],
            "SAMPLE_COUNT": result["n_samples"],
            "INDEX": result["files"].get("index", ""),
            "DATASET_CARD": result["files"].get("card_json", ""),
        }

    def _split_layer(self, parameters, context):
        """(SPLIT_LAYER's source, SPLIT_FIELD), or None without a split layer."""
        if not parameters.get("SPLIT_LAYER"):
            return None
        field = self.parameterAsString(parameters, "SPLIT_FIELD", context)
        if not field:
            raise QgsProcessingException("SPLIT_LAYER needs SPLIT_FIELD: the field holding train, val or test.")
        return self.parameterAsSource(parameters, "SPLIT_LAYER", context), field


def _split_areas(source, field) -> tuple:
    """Each polygon in the layer's own CRS with its split; the core reprojects them to the images' CRS."""
    crs = crs_string(source.sourceCrs())
    return tuple(
        SplitArea(Area(area_wkt(feature.geometry()), crs),
                  str(feature[field]).strip().lower())
        for feature in source.getFeatures()
    )
