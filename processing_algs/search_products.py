"""satplugin:searchproducts — find and rank Sentinel-2 products for an area and season."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ..qgis_satplugin.core.area import Area
from ..qgis_satplugin.core.http.limits import DEFAULT_REQUEST_DEADLINE_S, DEFAULT_RUN_DEADLINE_S
from ..qgis_satplugin.core.search.options import SearchOptions, check_footprints_path
from ..qgis_satplugin.core.search.ranking import W_CLOUD, W_COVER, W_TIME
from .base import SatPluginAlgorithm, core_errors
from .qgis_inputs import add_network_parameters, aoi_geometry_4326, area_wkt, credentials_from_authcfg, network_options
from .styles import save_footprint_style

# (key, label): the keys are what the core takes; the order is the public enum order.
BACKENDS = [
    ("cdse", "Copernicus Data Space Ecosystem (Sentinel Hub Catalog API, free account)"),
    ("sentinelhub", "Sentinel Hub (commercial account)"),
    ("earth_search", "STAC API (Earth Search v1 by default; no account)"),
    ("local", "Local folder of products (SERVICE_URL = the folder)"),
    ("planetary_computer", "Microsoft Planetary Computer (STAC API, L2A; files signed with its SAS tokens; no account)"),
]
COLLECTIONS = ["L2A", "L1C"]
STRATEGIES = [
    ("all", "Every date, ranked by the share of the AOI that is clear"),
    ("even", "Best MAX_PRODUCTS dates spread evenly over the season"),
    ("cloud", "Every date, ranked by least cloud"),
]
LAYER = "products"
# The options' descriptions, where the help repeats them.
OPTION_HELP = dict(SearchOptions.help_lines())

HELP = f"""<p>Searches Sentinel-2 L1C or L2A products over an area of interest and a season, and ranks
them by how useful they are: cloud (over the scene, or over the AOI itself with AOI_CLOUD), the share
of the AOI each one covers, and their spread in time. The output GeoPackage is what
"Download products" reads.</p>
<p><b>Backends</b>: Copernicus Data Space Ecosystem and Sentinel Hub (Catalog API; client id and
secret in the QGIS authentication config AUTHCFG, Basic method: user name = client id, password =
client secret; outside QGIS the environment variables SH_CLIENT_ID and SH_CLIENT_SECRET), a STAC
API (Earth Search v1 by default, no account: L2A from its current collection sentinel-2-c1-l2a and
from the legacy sentinel-2-l2a for dates Collection 1 lacks; its L1C files are in a requester-pays S3
bucket the plugin cannot read, so search L1C with CDSE or Sentinel Hub to download it), Microsoft
Planetary Computer (L2A; its files are read with short-lived SAS tokens that are never stored), or
a local folder of .SAFE folders/zips and COG folders, found at any depth (the folder goes in
SERVICE_URL). Items are judged by what they say they are: another mission or level is left out and
counted in the log, even when a server answers with more than the collection asked for. SERVICE_URL
and TOKEN_URL override endpoints; requests that carry credentials never follow a redirect, so both
must be the services' own addresses.</p>
<p><b>Network limits</b> (advanced): REQUEST_DEADLINE {OPTION_HELP["request_deadline"]}, default
{DEFAULT_REQUEST_DEADLINE_S:g} s; RUN_DEADLINE {OPTION_HELP["run_deadline"]}, default
{DEFAULT_RUN_DEADLINE_S:g} s. Every wait a server asks for is logged before it starts, one that would
pass a deadline is refused with a message, and Cancel stops a wait or a stalled request within a second.
Answers are capped (64 MiB for JSON), and a STAC item's files are only http(s) URLs.</p>
<p><b>AOI</b>: AOI_LAYER polygons (only the selected ones when the layer has a selection) or the AOI
extent. END_DATE is {OPTION_HELP["end"]}.</p>
<p><b>Dates, not tiles</b>: the tiles of one overpass (same acq_group) are ranked, chosen and counted
together, as the download mosaics them into one image per date; MAX_PRODUCTS counts dates, and
MIN_AOI_COVERAGE applies to what a date's tiles cover together. A date's cloud is its tiles' cloud (over
the AOI when measured, else the scene's) weighted by how much of the AOI each covers.</p>
<p><b>Strategies</b>: <i>every date, ranked by the share of the AOI that is clear</i> = AOI coverage %
× (1 − cloud % / 100), then least cloud, then date (the default); <i>spread evenly</i>: MAX_PRODUCTS
target dates at the centres of equal bins of the season; each takes the unchosen date with the lowest
cost = {W_TIME:g} × |days from target| / bin width + {W_CLOUD:g} × cloud % / 100 + {W_COVER:g} × (100 −
AOI coverage %) / 100; or <i>every date, ranked by least cloud</i>, then AOI coverage, then date.
Reprocessed duplicates of one acquisition collapse to the newest baseline.</p>
<p>Per product: product id, datetime (UTC), platform, MGRS tile, relative orbit, processing baseline,
collection, scene cloud %, AOI coverage %, AOI cloud %, rank, selected, backend, the download
references (JSON: files, and whether the provider already removed the baseline 04.00 offset) and
acq_group (date_orbit: tiles of one overpass share it, and share a rank). Footprints are the
data footprints clipped to the AOI, styled by cloud %. No product gives a valid empty layer.</p>
<p><b>Example</b> (command line):<br/>
<code>qgis_process run satplugin:searchproducts -- BACKEND=2 AOI="13.9,14.1,45.9,46.1 [EPSG:4326]"
START_DATE=2023-04-01 END_DATE=2023-09-30 COLLECTION=0 MAX_CLOUD=40 MIN_AOI_COVERAGE=90 MAX_PRODUCTS=6
STRATEGY=1 OUTPUT=products.gpkg</code></p>"""


class SearchProducts(SatPluginAlgorithm):
    NAME = "searchproducts"
    DISPLAY_NAME = "Search products"
    GROUP = "search"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(QgsProcessingParameterEnum("BACKEND", "Backend", [label for _, label in BACKENDS], defaultValue=2))
        for name, label in (("SERVICE_URL", "Service URL (or the local folder)"), ("TOKEN_URL", "Token URL")):
            parameter = QgsProcessingParameterString(name, label, optional=True)
            if name == "TOKEN_URL":
                parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterAuthConfig("AUTHCFG", "Credentials (authentication config)", optional=True))
        self.addParameter(QgsProcessingParameterExtent("AOI", "Area of interest (extent)", optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource("AOI_LAYER", "Area of interest (polygons)", [QgsProcessing.TypeVectorPolygon], optional=True)
        )
        self.addParameter(QgsProcessingParameterDateTime("START_DATE", "Start date", QgsProcessingParameterDateTime.Date))
        self.addParameter(QgsProcessingParameterDateTime("END_DATE", "End date (inclusive)", QgsProcessingParameterDateTime.Date))
        self.addParameter(QgsProcessingParameterEnum("COLLECTION", "Collection", COLLECTIONS, defaultValue=0))
        self.addParameter(
            QgsProcessingParameterNumber("MAX_CLOUD", "Maximum cloud (%)", QgsProcessingParameterNumber.Double, 100.0, minValue=0, maxValue=100)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_AOI_COVERAGE", "Minimum AOI coverage (%)", QgsProcessingParameterNumber.Double, 0.0, minValue=0, maxValue=100
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber("MAX_PRODUCTS", "Dates to select (0: all)", QgsProcessingParameterNumber.Integer, 10, minValue=0)
        )
        self.addParameter(QgsProcessingParameterEnum("STRATEGY", "Strategy", [label for _, label in STRATEGIES], defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean("AOI_CLOUD", "Measure cloud over the AOI (from SCL)", defaultValue=False))
        add_network_parameters(self, DEFAULT_RUN_DEADLINE_S)
        self.addParameter(
            QgsProcessingParameterVectorDestination("OUTPUT", "Product footprints", QgsProcessing.TypeVectorPolygon)
        )
        self.addOutput(QgsProcessingOutputNumber("PRODUCT_COUNT", "Products found"))
        self.addOutput(QgsProcessingOutputNumber("SELECTED_COUNT", "Products selected"))
        self.addOutput(QgsProcessingOutputNumber("SELECTED_DATES", "Dates selected (a date's tiles count once)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        backend = BACKENDS[self.parameterAsEnum(parameters, "BACKEND", context)][0]
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not output.lower().endswith(".gpkg"):
            raise QgsProcessingException(f"OUTPUT must be a GeoPackage (.gpkg) file, got {output}.")
        with core_errors():
            check_footprints_path(output)  # before the search: a long search must not be lost to a read-only folder
        start = self.parameterAsDateTime(parameters, "START_DATE", context).date()
        end = self.parameterAsDateTime(parameters, "END_DATE", context).date()
        if not start.isValid() or not end.isValid():
            raise QgsProcessingException("START_DATE and END_DATE must be dates (YYYY-MM-DD).")
        service_url = self.parameterAsString(parameters, "SERVICE_URL", context) or None
        if backend == "local" and not service_url:
            raise QgsProcessingException("The local backend needs the folder of products in SERVICE_URL.")
        area = Area(area_wkt(aoi_geometry_4326(self, parameters, context)))
        # Read from the QGIS authentication database now and passed in memory: never an option.
        credentials = credentials_from_authcfg(self.parameterAsString(parameters, "AUTHCFG", context))
        with core_errors():
            options = SearchOptions(
                area=area,
                start=start.toPyDate().isoformat(),
                end=end.toPyDate().isoformat(),
                backend=backend,
                collection=COLLECTIONS[self.parameterAsEnum(parameters, "COLLECTION", context)],
                max_cloud=self.parameterAsDouble(parameters, "MAX_CLOUD", context),
                min_aoi_coverage=self.parameterAsDouble(parameters, "MIN_AOI_COVERAGE", context),
                max_products=self.parameterAsInt(parameters, "MAX_PRODUCTS", context),
                strategy=STRATEGIES[self.parameterAsEnum(parameters, "STRATEGY", context)][0],
                service_url=service_url,
                token_url=self.parameterAsString(parameters, "TOKEN_URL", context) or None,
                aoi_cloud=self.parameterAsBoolean(parameters, "AOI_CLOUD", context),
                footprints=output,
                **network_options(self, parameters, context),
            )
        result = self.run_step("search", options, feedback, credentials=credentials)
        if not result["product_count"]:
            feedback.reportError(
                "No product matches: widen the dates, raise MAX_CLOUD or lower MIN_AOI_COVERAGE. "
                "The output is a valid empty layer.",
                False,
            )
        problem = save_footprint_style(output, LAYER)
        if problem:
            feedback.pushWarning(f"The footprints were written but their style was not stored: {problem}")
        return {
            "OUTPUT": output,
            "PRODUCT_COUNT": result["product_count"],
            "SELECTED_COUNT": result["selected_count"],
            "SELECTED_DATES": result["selected_dates"],
        }
