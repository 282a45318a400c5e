"""The area of interest, taken from the map: the canvas extent, polygons, or a drawn rectangle.

The picker holds either an extent (in the canvas CRS, as Processing's extent text
"xmin,xmax,ymin,ymax [CRS]") or a polygon layer. For a layer the algorithms themselves
honour the selection (only the selected features when there are some), so the
picker passes the layer and the selection made on the map does the rest.
"""
from qgis.core import QgsMapLayerType, QgsProject, QgsRectangle, QgsWkbTypes
from qgis.gui import QgsMapToolExtent
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

EXTENT_PREFIX = "extent:"
LAYER_PREFIX = "layer:"


def extent_text(rect: QgsRectangle, crs) -> str:
    """Processing's extent notation; 10 significant digits keep centimetres in UTM."""
    values = (rect.xMinimum(), rect.xMaximum(), rect.yMinimum(), rect.yMaximum())
    return ",".join(f"{v:.10g}" for v in values) + f" [{crs.authid()}]"


def is_polygon_layer(layer) -> bool:
    return (
        layer is not None
        and layer.type() == QgsMapLayerType.VectorLayer
        and QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PolygonGeometry
    )


class AoiPicker(QWidget):
    changed = pyqtSignal()

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.iface = iface
        self._value = ""  # "extent:<text>" or "layer:<id>"
        self._tool = None
        self._previous_tool = None
        self.summary = QLabel("No area yet: use the map extent, the selected polygons, or draw one.")
        self.summary.setWordWrap(True)
        self.canvas_button = QPushButton("Map view")
        self.canvas_button.setToolTip("The area shown in the map canvas now.")
        self.layer_button = QPushButton("Polygons")
        self.layer_button.setToolTip("The active polygon layer: its selected features, or all of them when none is selected.")
        self.draw_button = QPushButton("Draw…")
        self.draw_button.setToolTip("Drag a rectangle on the map.")
        buttons = QHBoxLayout()
        for button in (self.canvas_button, self.layer_button, self.draw_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.summary)
        self.canvas_button.clicked.connect(self.use_canvas_extent)
        self.layer_button.clicked.connect(self.use_active_layer)
        self.draw_button.clicked.connect(self.start_drawing)

    # --- the three sources -------------------------------------------------------------
    def use_canvas_extent(self):
        canvas = self.iface.mapCanvas()
        self.set_extent(canvas.extent(), canvas.mapSettings().destinationCrs())

    def use_active_layer(self):
        layer = self.iface.activeLayer()
        if not is_polygon_layer(layer):
            from .messages import warning

            warning(self.iface, "Make a polygon layer active (click it in the Layers panel) to use it as the area.")
            return
        self.set_text(LAYER_PREFIX + layer.id())

    def start_drawing(self):
        canvas = self.iface.mapCanvas()
        self._previous_tool = canvas.mapTool()
        self._tool = QgsMapToolExtent(canvas)
        self._tool.extentChanged.connect(self._drawn)
        canvas.setMapTool(self._tool)

    def drawing_tool(self):
        return self._tool

    def _drawn(self, rect):
        canvas = self.iface.mapCanvas()
        if rect.isEmpty():
            return  # a click without a drag: keep waiting for a rectangle
        self.set_extent(rect, canvas.mapSettings().destinationCrs())
        canvas.unsetMapTool(self._tool)
        if self._previous_tool is not None:
            canvas.setMapTool(self._previous_tool)

    # --- value -----------------------------------------------------------------------
    def set_extent(self, rect, crs):
        self.set_text(EXTENT_PREFIX + extent_text(rect, crs))

    def text(self) -> str:
        return self._value

    def set_text(self, value):
        self._value = value or ""
        self.summary.setText(self.describe())
        self.changed.emit()

    def layer(self):
        if self._value.startswith(LAYER_PREFIX):
            return QgsProject.instance().mapLayer(self._value[len(LAYER_PREFIX):])
        return None

    def describe(self) -> str:
        if self._value.startswith(EXTENT_PREFIX):
            # Spaces after the commas let the label wrap in a narrow dock.
            return f"Extent {self._value[len(EXTENT_PREFIX):].replace(',', ', ')}"
        if self._value.startswith(LAYER_PREFIX):
            layer = self.layer()
            if layer is None:
                return "The polygon layer chosen as the area is no longer in the project."
            selected = layer.selectedFeatureCount()
            which = f"{selected} selected" if selected else f"all {layer.featureCount()}"
            return f"Polygons of '{layer.name()}' ({which} features)"
        return "No area yet: use the map extent, the selected polygons, or draw one."

    def parameters(self) -> dict:
        """{"AOI": extent text} or {"AOI_LAYER": layer id}; empty when no area is set."""
        if self._value.startswith(EXTENT_PREFIX):
            return {"AOI": self._value[len(EXTENT_PREFIX):]}
        layer = self.layer()
        if layer is not None:
            return {"AOI_LAYER": layer.id()}
        return {}
