"""Step 2 · Download: satplugin:downloadproducts of the products checked in the search table."""
import json
from pathlib import Path

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QLabel

from .layer_styles import style_true_colour
from .map_outputs import add_raster
from .param_widgets import bool_check, enum_combo, number_spin
from .step_page import StepInputError, StepPage

ALGORITHM = "satplugin:downloadproducts"


class DownloadPage(StepPage):
    ALGORITHM = ALGORITHM
    TITLE = "Download products"
    KEY = "download"

    series_ready = pyqtSignal(str)  # the output folder
    images_added = pyqtSignal(list)  # the image layers, by date

    def __init__(self, iface, workspace, choices, results_table, parent=None):
        super().__init__(iface, workspace, choices, parent)
        self.results_table = results_table
        self.endpoints = {}
        self.products = QgsMapLayerComboBox()
        self.products.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.add_row("Products layer", self.products, "products")
        self.checked_label = QLabel()
        self.checked_label.setWordWrap(True)
        self.form.addRow(self.checked_label)
        self.bands = self.add_row("Bands", enum_combo(ALGORITHM, "BANDS"), "bands")
        self.pixel_size = self.add_row("Pixel size (m)", number_spin(ALGORITHM, "PIXEL_SIZE"), "pixel_size")
        self.masks = self.add_row("", bool_check(ALGORITHM, "INCLUDE_MASKS"), "masks")
        self.harmonize = self.add_row("", bool_check(ALGORITHM, "HARMONIZE"), "harmonize")
        self.concurrent = self.add_row("Parallel requests", number_spin(ALGORITHM, "MAX_CONCURRENT"), "concurrent")
        results_table.checkedChanged.connect(self._describe_choice)
        self.products.layerChanged.connect(self._describe_choice)
        self._describe_choice()

    def use_products(self, layer, endpoints):
        """The search's footprints (and, for Sentinel Hub, its endpoints) feed this step."""
        self.endpoints = dict(endpoints)
        self.products.setLayer(layer)

    def _from_results_table(self):
        layer = self.products.currentLayer()
        return layer is not None and layer is self.results_table.layer

    def _describe_choice(self, *_):
        if self._from_results_table():
            count = len(self.results_table.checked_feature_ids())
            self.checked_label.setText(f"{count} product(s) checked in the search results will be downloaded.")
        else:
            self.checked_label.setText("The layer's selected features, else those with selected = 1, else all.")

    def parameters(self):
        layer = self.products.currentLayer()
        if layer is None:
            raise StepInputError("Choose the products layer (run the search first).")
        if self._from_results_table() and not self.results_table.checked_feature_ids():
            raise StepInputError("Check at least one product in the search results.")
        return {
            "PRODUCTS": layer.id(),
            "BANDS": [self.bands.currentIndex()],
            "PIXEL_SIZE": self.pixel_size.value(),
            "INCLUDE_MASKS": self.masks.isChecked(),
            "HARMONIZE": self.harmonize.isChecked(),
            "MAX_CONCURRENT": self.concurrent.value(),
            "AUTHCFG": self.workspace.authcfg(),
            **self.endpoints,
            "OUTPUT_FOLDER": self.workspace.new_path("series"),
        }

    def prepare(self):
        # The algorithm downloads the layer's selected features: make the selection the
        # checked rows, exactly what a user would select on the map.
        if self._from_results_table():
            self.products.currentLayer().selectByIds(self.results_table.checked_feature_ids())

    def show_results(self, results):
        folder = Path(results["OUTPUT_FOLDER"])
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        images = sorted((f for f in manifest["files"] if f["kind"] == "image"), key=lambda f: f["path"])
        layers = []
        for index, entry in enumerate(images):
            # Every date on the map, only the first one shown: stacked true-colour
            # rasters would hide each other anyway.
            layer = add_raster(str(folder / entry["path"]), Path(entry["path"]).stem, f"Sentinel-2 {folder.name}", index == 0)
            style_true_colour(layer)
            layers.append(layer)
        self.series_ready.emit(str(folder))
        self.images_added.emit(layers)
        return f"{int(results['DATE_COUNT'])} date(s) downloaded to {folder.name} ({int(results['FILES_WRITTEN'])} files written)."
