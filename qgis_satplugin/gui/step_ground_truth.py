"""Step 3 · Ground truth: satplugin:rasterizegroundtruth of a polygon layer from the map."""
import re
from pathlib import Path

from qgis.core import QgsFieldProxyModel, QgsMapLayerProxyModel, QgsProcessingFeatureSourceDefinition
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QVariant, pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox

from ...processing_algs.rasterize_ground_truth import class_count_warning
from .aoi_picker import is_polygon_layer
from .layer_styles import class_table_of, style_classes, style_conflicts
from .map_outputs import OUTPUT_PROPERTY, add_raster
from .param_widgets import number_spin
from .step_page import StepInputError, StepPage

ALGORITHM = "satplugin:rasterizegroundtruth"

# The algorithm takes integer classes as they are and maps text classes to 1..K.
CLASS_FIELD_TYPES = (QVariant.String, QVariant.Int, QVariant.UInt, QVariant.LongLong, QVariant.ULongLong)
# How parcel layers name their class: class, crop, code (CODE_CULTU in France's RPG), label,
# category, type, land use / land cover, culture, EuroCrops' HCAT codes.
CLASS_NAME_HINTS = ("class", "crop", "code", "label", "categor", "type", "landuse", "landcover", "lulc", "cultu", "hcat")


def guess_class_field(fields) -> str:
    """The first text or integer field whose name looks like a class, or '' when none does.

    Not simply the first field: that is usually ``fid``, which makes every parcel its own
    class, and the run would succeed and look fine on the map. With no guess the user
    must choose the field before the step runs.
    """
    for field in fields:
        if field.type() not in CLASS_FIELD_TYPES:
            continue
        name = field.name().lower()
        # Words of the name ("EC_hcat_c" -> ec, hcat, c) and the name without separators
        # ("land_cover" -> landcover); a hint must start a word, so "postcode" is no "code".
        words = re.split(r"[^a-z0-9]+", name) + [re.sub(r"[^a-z0-9]", "", name)]
        if any(word.startswith(hint) for word in words for hint in CLASS_NAME_HINTS):
            return field.name()
    return ""


class GroundTruthPage(StepPage):
    ALGORITHM = ALGORITHM
    TITLE = "Rasterize ground truth"
    KEY = "groundtruth"

    labels_ready = pyqtSignal(list)  # the label layers, for the export

    def __init__(self, iface, workspace, choices, parent=None):
        super().__init__(iface, workspace, choices, parent)
        self._folder = None  # the last run's output folder (parameters() makes it)
        self.polygons = QgsMapLayerComboBox()
        self.polygons.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.add_row("Polygons", self.polygons, "layer")
        self.selected_only = self.add_row("", QCheckBox("Selected features only"), "selected_only")
        self.class_field = self.add_row("Class field", QgsFieldComboBox(), "class_field")
        self.class_field.setAllowEmptyFieldName(True)  # no good guess: empty, the user chooses
        self.class_field.setToolTip("The field holding each polygon's class (crop, land cover): integer or text.")
        self.name_field = self.add_row("Class names", QgsFieldComboBox(), "name_field")
        self.name_field.setAllowEmptyFieldName(True)
        self.id_field = self.add_row("Parcel id", QgsFieldComboBox(), "id_field")
        self.id_field.setAllowEmptyFieldName(True)
        self.id_field.setFilters(QgsFieldProxyModel.Int | QgsFieldProxyModel.LongLong)
        self.reference = QgsMapLayerComboBox()
        self.reference.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.reference.setAllowEmptyLayer(True)
        self.reference.setToolTip("The labels take this raster's grid exactly; empty: the polygons' UTM zone at the pixel size.")
        self.add_row("Grid of", self.reference, "reference")
        self.pixel_size = self.add_row("Pixel size", number_spin(ALGORITHM, "PIXEL_SIZE", decimals=3), "pixel_size")
        self.min_coverage = self.add_row("Min coverage", number_spin(ALGORITHM, "MIN_COVERAGE"), "min_coverage")
        self.min_coverage.setSingleStep(0.05)
        self.polygons.layerChanged.connect(self._fields_of)
        self._fields_of(self.polygons.currentLayer())
        if iface is not None:
            iface.currentLayerChanged.connect(self.follow_active_layer)
            self.follow_active_layer(iface.activeLayer())

    def follow_active_layer(self, layer):
        """Pre-fill with the polygon layer the user is working on (not one of the dock's outputs)."""
        if is_polygon_layer(layer) and not layer.customProperty(OUTPUT_PROPERTY):
            self.polygons.setLayer(layer)

    def use_reference(self, layers):
        if layers:
            self.reference.setLayer(layers[0])

    def _fields_of(self, layer):
        for combo in (self.class_field, self.name_field, self.id_field):
            combo.setLayer(layer)
        # A project being reopened sets its saved class field right after its layer.
        self.class_field.setField(guess_class_field(layer.fields()) if layer is not None else "")

    def parameters(self):
        layer = self.polygons.currentLayer()
        if layer is None:
            raise StepInputError("Choose the ground-truth polygon layer.")
        if not self.class_field.currentField():
            raise StepInputError("Choose the class field: the field that holds each polygon's class (crop, land cover).")
        folder = Path(self.workspace.new_path("ground_truth"))
        folder.mkdir(parents=True)  # the algorithm's outputs go into it: it must exist
        self._folder = folder
        reference = self.reference.currentLayer()
        # What the algorithm will read, to judge its class count when it is done.
        self._submitted = (self.class_field.currentField(),
                           layer.selectedFeatureCount() if self.selected_only.isChecked() else layer.featureCount())
        return {
            "INPUT": QgsProcessingFeatureSourceDefinition(layer.id(), self.selected_only.isChecked()),
            "CLASS_FIELD": self.class_field.currentField(),
            "CLASS_NAME_FIELD": self.name_field.currentField(),
            "ID_FIELD": self.id_field.currentField(),
            "REFERENCE": reference.source() if reference is not None else None,
            "PIXEL_SIZE": self.pixel_size.value(),
            "MIN_COVERAGE": self.min_coverage.value(),
            "OUTPUT_CLASS": str(folder / "class.tif"),
            "OUTPUT_ID": str(folder / "parcel_id.tif"),
            "OUTPUT_CONFLICT": str(folder / "conflict.tif"),
            "OUTPUT_CLASS_TABLE": str(folder / "classes.csv"),
        }

    def show_results(self, results):
        group = f"Ground truth {Path(results['OUTPUT_CLASS']).parent.name}"
        # Parcel ids matter to the export, not to the eye: loaded, but hidden.
        ids = add_raster(results["OUTPUT_ID"], "parcel id", group, visible=False)
        conflicts = add_raster(results["OUTPUT_CONFLICT"], "conflicts", group)
        style_conflicts(conflicts)
        classes = add_raster(results["OUTPUT_CLASS"], "classes", group)
        style_classes(classes, class_table_of(results["OUTPUT_CLASS"]))
        self.labels_ready.emit([classes, ids, conflicts])
        return (f"{int(results['LABELLED_PIXELS'])} pixels labelled in {int(results['CLASSES'])} classes "
                f"from {int(results['RASTERIZED_FEATURES'])} polygons; {int(results['CONFLICT_PIXELS'])} in conflict.")

    def after_failure(self):
        """The run's folder goes again when nothing was written into it (a failed run writes nothing)."""
        if self._folder is None:
            return
        try:
            self._folder.rmdir()  # only an empty folder: never anything of the user's
        except OSError:
            pass

    def warnings(self, results):
        class_field, n_features = self._submitted
        warning = class_count_warning(int(results["CLASSES"]), n_features, class_field)
        return [warning] if warning else []
