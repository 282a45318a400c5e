"""satplugin:rasterizegroundtruth — polygons to class, id, coverage, conflict and distance rasters."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterExpression,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRectangle,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..qgis_satplugin.core.grid import PixelGrid, snapped_grid, transform_bounds, utm_grid_for_bounds
from ..qgis_satplugin.core.ground_truth.options import GroundTruthOptions, OutputPaths
from .base import (
    SatPluginAlgorithm,
    check_outputs_against_inputs,
    core_errors,
    crs_string,
    layer_file,
)
from .polygon_input import PolygonLayerInput, layer_field_name, remove_geopackage
from .qgis_inputs import grid_of_raster_layer, raster_layer

INTEGER_TYPES = (QVariant.Int, QVariant.UInt, QVariant.LongLong, QVariant.ULongLong)

HELP_TEMPLATE = """<p>Burns ground-truth polygons onto a pixel grid with <b>exact</b> per-pixel coverage.</p>
<p>Each pixel goes to the polygon that covers the largest share of it (ties: lowest parcel id,
then lowest class), and is labelled when that share is at least MIN_COVERAGE. Holes and
multipolygons are honoured, invalid geometries are repaired (and counted in the log), polygons in
another CRS are reprojected, and polygons crossing the grid edge are clipped.</p>
<p><b>Grid</b>: REFERENCE raster if given (its CRS, transform and size exactly); else EXTENT +
TARGET_CRS + PIXEL_SIZE; else the polygons' extent in their UTM zone. Without a reference the
origin snaps to the Sentinel-2 60 m grid, so 10, 20 and 60 m bands align. PIXEL_SIZE may be 10, 5,
2.5 or any value.</p>
{classes}
{outputs}
<p><b>Example</b> (command line):<br/>
<code>qgis_process run satplugin:rasterizegroundtruth -- INPUT=fields.gpkg CLASS_FIELD=crop
PIXEL_SIZE=10 MIN_COVERAGE=0.5 OUTPUT_CLASS=class.tif OUTPUT_COVERAGE=coverage.tif
OUTPUT_CONFLICT=conflict.tif OUTPUT_CLASS_TABLE=classes.csv</code></p>"""

# Output parameter -> OutputPaths field (the raster outputs' parameters are also in RASTER_OUTPUTS).
OUTPUT_FIELDS = {
    "OUTPUT_CLASS": "class_raster",
    "OUTPUT_ID": "id_raster",
    "OUTPUT_COVERAGE": "coverage_raster",
    "OUTPUT_CONFLICT": "conflict_raster",
    "OUTPUT_DISTANCE": "distance_raster",
    "OUTPUT_CLASS_TABLE": "class_table",
}


def _help() -> str:
    """HELP with the classes and outputs described where the options describe them."""
    described = dict(GroundTruthOptions.help_lines())
    output_help = dict(OutputPaths.help_lines())
    classes = (
        f"<p><b>Classes</b>: CLASS_FIELD holds {described['class_values']}. "
        f"CLASS_NAME_FIELD {described['class_names']}.</p>"
    )
    outputs = "<p><b>Outputs</b> (each optional; skipped ones cost nothing): " + ", ".join(
        f"{name} ({output_help[attr]})" for name, attr in OUTPUT_FIELDS.items()
    ) + ".</p>"
    return HELP_TEMPLATE.replace("{classes}", classes).replace("{outputs}", outputs)


HELP = _help()


class RasterizeGroundTruth(PolygonLayerInput, SatPluginAlgorithm):
    NAME = "rasterizegroundtruth"
    DISPLAY_NAME = "Rasterize ground truth"
    GROUP = "groundtruth"
    HELP = HELP

    RASTER_OUTPUTS = {
        "OUTPUT_CLASS": ("class_raster", "Class raster", True),
        "OUTPUT_ID": ("id_raster", "Parcel id raster", False),
        "OUTPUT_COVERAGE": ("coverage_raster", "Coverage fraction raster", False),
        "OUTPUT_CONFLICT": ("conflict_raster", "Conflict mask raster", False),
        "OUTPUT_DISTANCE": ("distance_raster", "Distance to parcel edge raster (m)", False),
    }

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(
            QgsProcessingParameterFeatureSource("INPUT", "Ground-truth polygons", [QgsProcessing.TypeVectorPolygon])
        )
        self.addParameter(QgsProcessingParameterField("CLASS_FIELD", "Class field (integer or text)", parentLayerParameterName="INPUT"))
        self.addParameter(
            QgsProcessingParameterField(
                "ID_FIELD",
                "Parcel id field (integer; default: feature id)",
                parentLayerParameterName="INPUT",
                type=QgsProcessingParameterField.Numeric,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "CLASS_NAME_FIELD", "Class name field (for the class table)", parentLayerParameterName="INPUT", optional=True
            )
        )
        self.addParameter(QgsProcessingParameterExpression("FILTER", "Filter expression", parentLayerParameterName="INPUT", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Reference raster (grid taken as-is)", optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Grid extent", optional=True))
        self.addParameter(QgsProcessingParameterCrs("TARGET_CRS", "Grid CRS (default: UTM zone of the extent)", optional=True))
        self.addParameter(
            QgsProcessingParameterNumber("PIXEL_SIZE", "Pixel size (grid units)", QgsProcessingParameterNumber.Double, 10.0, minValue=0.0001)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_COVERAGE", "Minimum share of a pixel to label it", QgsProcessingParameterNumber.Double, 0.5, minValue=0.0, maxValue=1.0
            )
        )
        for name, (_, label, by_default) in self.RASTER_OUTPUTS.items():
            self.addParameter(QgsProcessingParameterRasterDestination(name, label, optional=True, createByDefault=by_default))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_CLASS_TABLE", "Class table", "CSV files (*.csv);;JSON files (*.json)", optional=True, createByDefault=False
            )
        )
        for name, label in (
            ("LABELLED_PIXELS", "Labelled pixels"),
            ("CLASSES", "Classes"),
            ("RASTERIZED_FEATURES", "Polygons on the grid"),
            ("REPAIRED_GEOMETRIES", "Repaired geometries"),
            ("CONFLICT_PIXELS", "Pixels with a conflict"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None:
            raise QgsProcessingException("INPUT is not a readable vector layer.")
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PolygonGeometry:
            raise QgsProcessingException("INPUT must be a polygon layer.")
        fields = source.fields()
        class_field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        id_field = self.parameterAsString(parameters, "ID_FIELD", context)
        name_field = self.parameterAsString(parameters, "CLASS_NAME_FIELD", context)
        class_field, id_field, name_field = (
            layer_field_name(fields, label, name)
            for label, name in (("CLASS_FIELD", class_field), ("ID_FIELD", id_field), ("CLASS_NAME_FIELD", name_field))
        )
        if id_field and fields.field(id_field).type() not in INTEGER_TYPES:
            raise QgsProcessingException(f"ID_FIELD: '{id_field}' is not an integer field.")
        outputs = OutputPaths(
            **{
                attr: (self.parameterAsOutputLayer(parameters, name, context) or None)
                for name, (attr, _, _) in self.RASTER_OUTPUTS.items()
            },
            class_table=self.parameterAsFileOutput(parameters, "OUTPUT_CLASS_TABLE", context) or None,
        )
        check_outputs_against_inputs(
            {name: getattr(outputs, attr) for name, (attr, _, _) in self.RASTER_OUTPUTS.items()}
            | {"OUTPUT_CLASS_TABLE": outputs.class_table},
            {
                "INPUT": layer_file(self.parameterAsVectorLayer(parameters, "INPUT", context)),
                "REFERENCE": layer_file(raster_layer(self, parameters, "REFERENCE", context)),
            },
        )

        polygons_file, extent, temporary = self.polygons_for_engine(source, parameters, context, feedback, class_field,
                                                                     id_field, name_field)
        inline = {"polygons": (), "class_values": (), "polygons_file": polygons_file}
        try:
            grid = self._grid(parameters, context, source, extent)
            feedback.pushInfo(f"Grid: {grid.width} x {grid.height} pixels of {grid.pixel_width:g} x {grid.pixel_height:g} in {grid.crs}.")
            with core_errors():
                options = GroundTruthOptions(
                    **inline,
                    source_crs=crs_string(source.sourceCrs()),
                    grid=grid,
                    outputs=outputs,
                    min_coverage=self.parameterAsDouble(parameters, "MIN_COVERAGE", context),
                )
            result = self.run_step("ground_truth", options, feedback)
        finally:
            if temporary:
                remove_geopackage(temporary)
        warning = class_count_warning(result["n_classes"], result["n_features"], class_field)
        if warning:
            feedback.reportError(warning, False)
        results = {name: getattr(outputs, attr) for name, (attr, _, _) in self.RASTER_OUTPUTS.items() if getattr(outputs, attr)}
        if outputs.class_table:
            results["OUTPUT_CLASS_TABLE"] = outputs.class_table
        results.update(
            LABELLED_PIXELS=result["labelled_pixels"],
            CLASSES=result["n_classes"],
            RASTERIZED_FEATURES=result["n_rasterized"],
            REPAIRED_GEOMETRIES=result["n_repaired"],
            CONFLICT_PIXELS=sum(result["conflict_pixels"].values()),
        )
        return results

    def _grid(self, parameters, context, source, extent) -> PixelGrid:
        reference = raster_layer(self, parameters, "REFERENCE", context)
        pixel_size = self.parameterAsDouble(parameters, "PIXEL_SIZE", context)
        with core_errors():
            if reference is not None:
                return grid_of_raster_layer(reference).check_size("REFERENCE raster")
            target_crs = self.parameterAsCrs(parameters, "TARGET_CRS", context)
            if parameters.get("EXTENT"):
                if target_crs.isValid():
                    rect = self.parameterAsExtent(parameters, "EXTENT", context, target_crs)
                    return snapped_grid(_bounds(rect), crs_string(target_crs), pixel_size)
                rect = self.parameterAsExtent(parameters, "EXTENT", context)
                rect_crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
                if not rect_crs.isValid():
                    rect_crs = context.project().crs() if context.project() else source.sourceCrs()
                return utm_grid_for_bounds(_bounds(rect), crs_string(rect_crs), pixel_size)
            if extent.isEmpty() or extent.isNull():
                raise QgsProcessingException("The polygons have no extent; all geometries are empty.")
            if target_crs.isValid():
                bounds = transform_bounds(_bounds(extent), crs_string(source.sourceCrs()), crs_string(target_crs))
                return snapped_grid(bounds, crs_string(target_crs), pixel_size)
            return utm_grid_for_bounds(_bounds(extent), crs_string(source.sourceCrs()), pixel_size)


# Fewer polygons than this may well each have a class of their own (a selection of a few fields).
ID_LIKE_MIN_POLYGONS = 10


def class_count_warning(n_classes: int, n_features: int, class_field: str):
    """A warning when the class field looks like an id (one class per polygon) or is too fine."""
    if n_features >= ID_LIKE_MIN_POLYGONS and n_classes == n_features:
        return (
            f"CLASS_FIELD '{class_field}' gives every one of the {n_features} polygons its own class; "
            "it looks like an id field. Choose the field that holds the crop or land-cover class."
        )
    if n_classes > 255:
        return (
            f"CLASS_FIELD '{class_field}' has {n_classes} classes, more than 255: the class raster is 16-bit, "
            "and most models expect far fewer classes. Check that this is the class field you meant."
        )
    return None


def _bounds(rect: QgsRectangle):
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
