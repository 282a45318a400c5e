"""satplugin:downloadproducts — the search's products, clipped and co-registered on one grid."""

from qgis.core import (
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..qgis_satplugin.core.area import Area
from ..qgis_satplugin.core.download.options import DownloadOptions
from ..qgis_satplugin.core.download.product_list import as_products, check_references
from ..qgis_satplugin.core.http.limits import DOWNLOAD_RUN_DEADLINE_S
from ..qgis_satplugin.core.options import engine_checks
from ..qgis_satplugin.core.sentinel2 import L1C_BANDS
from .base import SatPluginAlgorithm, core_errors, options_help
from .qgis_inputs import (
    WGS84,
    add_network_parameters,
    aoi_geometry_4326,
    area_wkt,
    credentials_from_authcfg,
    grid_of_raster_layer,
    network_options,
    raster_layer,
)

PRESETS = [("rgbn_10m", "Preset: 10 m RGBN (B02 B03 B04 B08)"), ("l2a_all", "Preset: all L2A bands"), ("l1c_all", "Preset: all L1C bands")]
BAND_CHOICES = [key for key, _ in PRESETS] + list(L1C_BANDS)
BAND_LABELS = [label for _, label in PRESETS] + list(L1C_BANDS)

# The options this algorithm's parameters set, for the help built from the options' own descriptions.
PARAMETER_OF = {
    "bands": "BANDS",
    "pixel_size": "PIXEL_SIZE",
    "reference_grid": "REFERENCE",
    "include_masks": "INCLUDE_MASKS",
    "harmonize": "HARMONIZE",
    "max_concurrent": "MAX_CONCURRENT",
    "service_url": "SERVICE_URL",
    "token_url": "TOKEN_URL",
    "request_deadline": "REQUEST_DEADLINE",
    "run_deadline": "RUN_DEADLINE",
    "output_folder": "OUTPUT_FOLDER",
}
PARAMETER_HELP = options_help(DownloadOptions, PARAMETER_OF)

HELP = f"""<p>Downloads the products chosen by "Search products": every date clipped to the area of
interest, all chosen bands on one pixel grid, with cloud masks. The output folder is what
"Export patches" and "Super-resolve" read.</p>
<p><b>Products</b>: the PRODUCTS layer's selected features if any, else those with selected = 1, else
all. <b>Area</b>: AOI_LAYER or AOI; without either, the union of the products' footprints (which
the search clipped to its AOI).</p>
<p><b>Grid</b>: REFERENCE as-is, else one made from the area at PIXEL_SIZE. Reflectance is resampled
bilinearly, masks by nearest neighbour.</p>
<p><b>Backends</b> follow each product's search backend: the Sentinel Hub Process API (an evalscript
generated from the band list, UINT16, large areas split into requests of at most 2500 x 2500 px
and stitched), STAC COGs (HTTP range reads of just the window needed, reprojected), or local
SAFE/COG files. AUTHCFG, SERVICE_URL and TOKEN_URL as in the search.</p>
<p><b>What a product list may say</b>: the Sentinel Hub address comes from SERVICE_URL or the
documented default of the product's backend, never from the GeoPackage; a product stored with another
address is refused (give that address in SERVICE_URL if you trust it). A STAC product's files must be
http(s) URLs, a local product's files must lie inside the product; anything else is refused before
any file is read.</p>
<p><b>Files that cannot be read</b> are refused before the download starts: Earth Search's L1C files are
in a requester-pays S3 bucket (search L1C with CDSE or Sentinel Hub instead). Planetary Computer files
are read with SAS tokens fetched from its token API as needed, sent only to Azure Blob Storage, and
never written to the output or the log.</p>
<p><b>Cancel</b> stops within seconds; the complete files are kept, and a rerun resumes from them.</p>
{PARAMETER_HELP}
<p><b>Example</b> (command line):<br/>
<code>qgis_process run satplugin:downloadproducts -- PRODUCTS=products.gpkg BANDS=0 PIXEL_SIZE=10
INCLUDE_MASKS=true HARMONIZE=true OUTPUT_FOLDER=series/</code></p>"""


class DownloadProducts(SatPluginAlgorithm):
    NAME = "downloadproducts"
    DISPLAY_NAME = "Download products"
    GROUP = "download"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(
            QgsProcessingParameterVectorLayer("PRODUCTS", "Products (from Search products)", [QgsProcessing.TypeVectorPolygon])
        )
        self.addParameter(QgsProcessingParameterExtent("AOI", "Area of interest (extent)", optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource("AOI_LAYER", "Area of interest (polygons)", [QgsProcessing.TypeVectorPolygon], optional=True)
        )
        self.addParameter(QgsProcessingParameterEnum("BANDS", "Bands", BAND_LABELS, allowMultiple=True, defaultValue=[0]))
        self.addParameter(
            QgsProcessingParameterNumber("PIXEL_SIZE", "Pixel size (m)", QgsProcessingParameterNumber.Double, 10.0, minValue=0.5)
        )
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Reference raster (grid taken as-is)", optional=True))
        self.addParameter(QgsProcessingParameterBoolean("INCLUDE_MASKS", "Include cloud masks", defaultValue=True))
        self.addParameter(QgsProcessingParameterBoolean("HARMONIZE", "Remove the baseline 04.00 offset", defaultValue=True))
        self.addParameter(
            QgsProcessingParameterNumber("MAX_CONCURRENT", "Parallel requests", QgsProcessingParameterNumber.Integer, 4, minValue=1, maxValue=16)
        )
        self.addParameter(QgsProcessingParameterAuthConfig("AUTHCFG", "Credentials (authentication config)", optional=True))
        for name, label in (("SERVICE_URL", "Service URL"), ("TOKEN_URL", "Token URL")):
            parameter = QgsProcessingParameterString(name, label, optional=True)
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        add_network_parameters(self, DOWNLOAD_RUN_DEADLINE_S)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputString("MANIFEST", "Manifest (JSON)"))
        self.addOutput(QgsProcessingOutputNumber("DATE_COUNT", "Dates written"))
        self.addOutput(QgsProcessingOutputNumber("FILES_WRITTEN", "Files written by this run"))
        self.addOutput(QgsProcessingOutputNumber("FILES_SKIPPED", "Files already complete (resumed)"))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        """Read the products layer here, in QGIS's main thread: it is a project layer the map may be
        drawing, and a run from the toolbox or the panel calls processAlgorithm in a worker thread.
        Errors wait for processAlgorithm, which raises them with their own message."""
        try:
            layer = self.parameterAsVectorLayer(parameters, "PRODUCTS", context)
            if layer is None:
                raise QgsProcessingException("PRODUCTS is not a readable layer; give the output of 'Search products'.")
            rows = _product_rows(layer)
            footprints = None
            if not (parameters.get("AOI") or parameters.get("AOI_LAYER")):
                footprints = _footprints_union_4326(layer, context)
            self._products = (rows, footprints)
        except QgsProcessingException as exc:
            self._products = exc
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        if isinstance(self._products, Exception):
            raise self._products
        rows, footprints = self._products
        feedback.pushInfo(f"{len(rows)} product(s) to download.")
        service_url = self.parameterAsString(parameters, "SERVICE_URL", context) or None
        with core_errors():
            # Before any request: the layer is a data file anyone could have edited (the engine checks too).
            if engine_checks():
                check_references(as_products(rows), service_url)
        aoi = footprints if footprints is not None else aoi_geometry_4326(self, parameters, context)
        reference = raster_layer(self, parameters, "REFERENCE", context)
        bands = tuple(BAND_CHOICES[i] for i in self.parameterAsEnums(parameters, "BANDS", context))
        network = network_options(self, parameters, context)
        with core_errors():
            options = DownloadOptions(
                products=rows,
                area=Area(area_wkt(aoi), "EPSG:4326"),
                output_folder=self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                bands=bands,
                pixel_size=self.parameterAsDouble(parameters, "PIXEL_SIZE", context),
                reference_grid=grid_of_raster_layer(reference) if reference is not None else None,
                include_masks=self.parameterAsBoolean(parameters, "INCLUDE_MASKS", context),
                harmonize=self.parameterAsBoolean(parameters, "HARMONIZE", context),
                max_concurrent=self.parameterAsInt(parameters, "MAX_CONCURRENT", context),
                service_url=service_url,
                token_url=self.parameterAsString(parameters, "TOKEN_URL", context) or None,
                request_deadline=network["request_deadline"],
                run_deadline=network["run_deadline"],
            )
        # The secret stays out of the options: it is the run's own argument.
        credentials = credentials_from_authcfg(self.parameterAsString(parameters, "AUTHCFG", context))
        result = self.run_step("download", options, feedback, credentials=credentials)
        return {
            "OUTPUT_FOLDER": result["output_folder"],
            "MANIFEST": result["manifest_path"],
            "DATE_COUNT": len(result["dates"]),
            "FILES_WRITTEN": len(result["written"]),
            "FILES_SKIPPED": len(result["skipped"]),
        }


def _product_rows(layer):
    """Rows for the core: the layer's selection if any, else selected = 1, else all.

    Reading through QGIS works for any provider (a GeoPackage, a temporary layer in a
    model); the core turns the rows into products.
    """
    features = list(layer.getSelectedFeatures()) if layer.selectedFeatureCount() else list(layer.getFeatures())
    names = layer.fields().names()
    if "product_id" not in names or "download" not in names:
        raise QgsProcessingException("PRODUCTS has no product_id/download fields: give the output of 'Search products'.")
    rows = []
    for feature in features:
        row = {name: (None if feature[name] is None or str(feature[name]) == "NULL" else feature[name]) for name in names}
        row["geometry"] = None  # the download fetches the options' area; a record holds no footprint
        rows.append(row)
    if not layer.selectedFeatureCount() and any(_is_selected(r) for r in rows):
        rows = [r for r in rows if _is_selected(r)]
    if not rows:
        raise QgsProcessingException("PRODUCTS is empty: the search found nothing to download.")
    return rows


def _is_selected(row) -> bool:
    try:
        return bool(int(row.get("selected") or 0))
    except (TypeError, ValueError):
        return False


def _footprints_union_4326(layer, context):
    geometries = [f.geometry().makeValid() for f in layer.getFeatures() if f.hasGeometry()]
    if not geometries:
        raise QgsProcessingException("Give AOI or AOI_LAYER: the products have no footprints to take the area from.")
    union = QgsGeometry.unaryUnion(geometries)
    union.transform(QgsCoordinateTransform(layer.crs(), WGS84, context.transformContext()))
    return union
