"""QGIS-side inputs several algorithms share: the area of interest, the credentials, the network limits, input rasters.

Secrets are read from the QGIS authentication database at run time and handed to the
core in memory only; parameters (and so saved models) hold just the authcfg id.
"""
import json
import math

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..qgis_satplugin.core.grid import PixelGrid
from ..qgis_satplugin.core.http.limits import DEFAULT_REQUEST_DEADLINE_S
from ..qgis_satplugin.core.http.credentials import Credentials
from .base import core_errors, crs_string
from .raster_sidecars import no_new_sidecars

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
# Decimals of the WKT an Area is given as: 17 reads back as the very same coordinates.
EXACT_WKT_DECIMALS = 17


def area_wkt(geometry) -> str:
    """A QgsGeometry as the WKT of an Area: 2D (QGIS writes "PolygonZ", which GEOS does not read), exact."""
    flat = QgsGeometry(geometry)
    flat.get().dropZValue()
    flat.get().dropMValue()
    return flat.asWkt(EXACT_WKT_DECIMALS)


def aoi_geometry_4326(algorithm, parameters, context, extent_name="AOI", layer_name="AOI_LAYER"):
    """The AOI as a QgsGeometry in EPSG:4326 (:func:`area_wkt` makes it an Area's WKT).

    A polygon layer wins over an extent; of a layer with a selection, only the selected
    features count, as users expect from the map.
    """
    if parameters.get(layer_name):
        layer = algorithm.parameterAsVectorLayer(parameters, layer_name, context)
        if layer is not None and layer.selectedFeatureCount() > 0:
            features, crs = layer.getSelectedFeatures(), layer.crs()
        else:
            source = algorithm.parameterAsSource(parameters, layer_name, context)
            if source is None:
                raise QgsProcessingException(f"{layer_name} is not a readable polygon layer.")
            features, crs = source.getFeatures(), source.sourceCrs()
        # One invalid polygon (a bow-tie) would make the whole union empty: repair first.
        geometries = [f.geometry().makeValid() for f in features if f.hasGeometry()]
        if not geometries:
            raise QgsProcessingException(f"{layer_name} has no polygon: the area of interest is empty.")
        union = QgsGeometry.unaryUnion(geometries)
        transform = QgsCoordinateTransform(crs, WGS84, context.transformContext())
        union.transform(transform)
    elif parameters.get(extent_name):
        union = algorithm.parameterAsExtentGeometry(parameters, extent_name, context, WGS84)
    else:
        raise QgsProcessingException(f"Give the area of interest: {extent_name} (an extent) or {layer_name} (polygons).")
    if union is None or union.isEmpty():
        raise QgsProcessingException("The area of interest is empty.")
    box = union.boundingBox()
    if not all(math.isfinite(v) for v in (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())):
        raise QgsProcessingException("The area of interest has no valid coordinates (check its extent and CRS).")
    return union


def credentials_from_authcfg(authcfg):
    """Client id and secret from a QGIS authentication config (Basic or OAuth2), or None."""
    if not authcfg:
        return None
    config = QgsAuthMethodConfig()
    manager = QgsApplication.authManager()
    if not manager.loadAuthenticationConfig(authcfg, config, True) or not config.isValid(True):
        raise QgsProcessingException(
            f"The authentication config '{authcfg}' could not be read: check that it exists in "
            "Settings > Options > Authentication and that the master password was entered."
        )
    client_id, secret = config.config("username"), config.config("password")
    if config.method() == "OAuth2":
        oauth = json.loads(config.config("oauth2config") or "{}")
        client_id, secret = oauth.get("clientId", ""), oauth.get("clientSecret", "")
    if not client_id or not secret:
        raise QgsProcessingException(
            f"The authentication config '{authcfg}' has no client id and secret: use the Basic method "
            "with the OAuth client id as user name and the client secret as password."
        )
    return Credentials(client_id, secret)


def add_network_parameters(algorithm, run_deadline_s: float) -> None:
    """The advanced REQUEST_DEADLINE and RUN_DEADLINE parameters (seconds) of a networked algorithm.

    A server that trickles its answer never trips a socket timeout, so these bound the
    wall-clock time of one request (its retries and waits included) and of the whole run.
    """
    for name, label, default in (
        ("REQUEST_DEADLINE", "Longest time for one request, retries included (s)", DEFAULT_REQUEST_DEADLINE_S),
        ("RUN_DEADLINE", "Longest time for all the network work of the run (s)", run_deadline_s),
    ):
        parameter = QgsProcessingParameterNumber(name, label, QgsProcessingParameterNumber.Double, default, minValue=0.001)
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        algorithm.addParameter(parameter)


def add_scheduler_parameter(algorithm) -> None:
    """The advanced DASK_SCHEDULER parameter of a step that splits into tasks (empty: in the engine process)."""
    parameter = QgsProcessingParameterString("DASK_SCHEDULER", "Dask scheduler (empty, local:N or tcp://host:port)",
                                             optional=True)
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    algorithm.addParameter(parameter)


def scheduler_option(algorithm, parameters, context):
    """DASK_SCHEDULER as the steps' ``dask_scheduler`` option (None when empty)."""
    return algorithm.parameterAsString(parameters, "DASK_SCHEDULER", context).strip() or None


def network_options(algorithm, parameters, context) -> dict:
    """The network deadlines (options of the search and the download) from :func:`add_network_parameters`."""
    return {
        "request_deadline": algorithm.parameterAsDouble(parameters, "REQUEST_DEADLINE", context),
        "run_deadline": algorithm.parameterAsDouble(parameters, "RUN_DEADLINE", context),
    }


def raster_layer(algorithm, parameters, name, context):
    """``parameterAsRasterLayer``, without leaving ``<file>.aux.xml`` beside the user's raster (see .raster_sidecars)."""
    with no_new_sidecars([parameters.get(name)]):
        return algorithm.parameterAsRasterLayer(parameters, name, context)


def raster_layers(algorithm, parameters, name, context) -> list:
    """``parameterAsLayerList`` for rasters, without new sidecar files (see .raster_sidecars)."""
    with no_new_sidecars([parameters.get(name)]):
        return algorithm.parameterAsLayerList(parameters, name, context)


def grid_of_raster_layer(layer) -> PixelGrid:
    """A raster layer's grid exactly: its CRS, origin, pixel size and shape."""

    extent = layer.extent()
    with core_errors():
        return PixelGrid(
            crs_string(layer.crs()),
            extent.xMinimum(),
            extent.yMaximum(),
            extent.width() / layer.width(),
            extent.height() / layer.height(),
            layer.width(),
            layer.height(),
        )


RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2")


def image_series_input(algorithm, parameters, name, context):
    """A "download folder, or one raster per date" parameter as the core takes it.

    One entry that is not a raster file is the folder (read through its manifest);
    anything else is the list of raster paths.
    """
    images = algorithm.parameterAsFileList(parameters, name, context)
    if not images:
        raise QgsProcessingException(f"{name} is empty: give a download folder or one raster per date.")
    if len(images) == 1 and not images[0].lower().endswith(RASTER_SUFFIXES):
        return images[0]
    return images


def first_band_description(path) -> str:
    """A raster's first band description, read with QGIS's own GDAL bindings."""
    from osgeo import gdal

    dataset = gdal.Open(str(path))
    if dataset is None:
        raise QgsProcessingException(f"{path} cannot be read as a raster.")
    return (dataset.GetRasterBand(1).GetDescription() or "").strip()


def number_parameter(name, label, kind, default, low, high=None):
    """A number parameter with its bounds (``high`` None: no maximum)."""
    bounds = {"minValue": low} if high is None else {"minValue": low, "maxValue": high}
    return QgsProcessingParameterNumber(name, label, kind, default, **bounds)


def split_ratios_value(text):
    """SPLIT_RATIOS text ("0.7,0.15,0.15") as three numbers, or the error QGIS shows."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise QgsProcessingException(f"SPLIT_RATIOS must be three numbers like 0.7,0.15,0.15, got {text!r}.") from None
    if len(values) != 3:
        raise QgsProcessingException(f"SPLIT_RATIOS must be three numbers (train,val,test), got {text!r}.")
    return values
