"""Step 1 · Search: satplugin:searchproducts over the area picked on the map."""
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QDate, pyqtSignal
from qgis.PyQt.QtWidgets import QDateEdit, QLineEdit

from .aoi_picker import AoiPicker
from .map_outputs import add_vector
from .param_widgets import bool_check, enum_combo, number_spin
from .results_table import ResultsTable
from .step_page import StepInputError, StepPage

ALGORITHM = "satplugin:searchproducts"
SENTINEL_HUB_BACKENDS = (0, 1)  # their download goes to the same service as their search


def _date_edit(date):
    edit = QDateEdit(date)
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    return edit


class SearchPage(StepPage):
    ALGORITHM = ALGORITHM
    TITLE = "Search products"
    KEY = "search"

    # The footprints layer, and the endpoints its download must use ({} for STAC/local).
    products_ready = pyqtSignal(object, dict)

    def __init__(self, iface, workspace, choices, parent=None):
        super().__init__(iface, workspace, choices, parent)
        self.backend = self.add_row("Backend", enum_combo(ALGORITHM, "BACKEND"), "backend")
        self.service_url = self.add_row("Service URL / folder", QLineEdit(), "service_url")
        self.service_url.setPlaceholderText("the backend's default; a folder for the local backend")
        self.aoi = AoiPicker(iface)
        self.form.addRow("Area", self.aoi)
        choices.bind_value(f"{self.KEY}/aoi", self.aoi.text, self.aoi.set_text, self.aoi.changed)
        today = QDate.currentDate()
        self.start = self.add_row("Start date", _date_edit(today.addMonths(-3)), "start")
        self.end = self.add_row("End date", _date_edit(today), "end")
        self.collection = self.add_row("Collection", enum_combo(ALGORITHM, "COLLECTION"), "collection")
        self.max_cloud = self.add_row("Max cloud %", number_spin(ALGORITHM, "MAX_CLOUD"), "max_cloud")
        self.min_coverage = self.add_row("Min AOI cover %", number_spin(ALGORITHM, "MIN_AOI_COVERAGE"), "min_coverage")
        self.max_products = self.add_row("Products (0: all)", number_spin(ALGORITHM, "MAX_PRODUCTS", maximum=10000), "max_products")
        self.strategy = self.add_row("Strategy", enum_combo(ALGORITHM, "STRATEGY"), "strategy")
        self.aoi_cloud = self.add_row("", bool_check(ALGORITHM, "AOI_CLOUD"), "aoi_cloud")
        self.table = ResultsTable(iface)
        self.table.setMinimumHeight(140)
        self.body.addWidget(self.table)
        # Reopening the project shows its last search again.
        choices.bind_value(f"{self.KEY}/footprints", self._footprints_id, self._show_footprints_id, self.products_ready)

    def parameters(self):
        aoi = self.aoi.parameters()
        if not aoi:
            raise StepInputError("Set the area of interest first: map extent, active polygons, or draw a rectangle.")
        if self.start.date() > self.end.date():
            raise StepInputError("The start date is after the end date.")
        return {
            "BACKEND": self.backend.currentIndex(),
            "SERVICE_URL": self.service_url.text().strip(),
            "AUTHCFG": self.workspace.authcfg(),
            **aoi,
            "START_DATE": self.start.date().toString("yyyy-MM-dd"),
            "END_DATE": self.end.date().toString("yyyy-MM-dd"),
            "COLLECTION": self.collection.currentIndex(),
            "MAX_CLOUD": self.max_cloud.value(),
            "MIN_AOI_COVERAGE": self.min_coverage.value(),
            "MAX_PRODUCTS": self.max_products.value(),
            "STRATEGY": self.strategy.currentIndex(),
            "AOI_CLOUD": self.aoi_cloud.isChecked(),
            "OUTPUT": self.workspace.new_path("products", ".gpkg"),
        }

    def endpoints(self):
        if self.backend.currentIndex() in SENTINEL_HUB_BACKENDS and self.service_url.text().strip():
            return {"SERVICE_URL": self.service_url.text().strip()}
        return {}

    def show_results(self, results):
        name = f"Products {self.start.date().toString('yyyy-MM-dd')} – {self.end.date().toString('yyyy-MM-dd')}"
        layer = add_vector(results["OUTPUT"], "products", name, "Sentinel-2 search")
        self.table.show_layer(layer)
        self.products_ready.emit(layer, self.endpoints())
        return f"{int(results['PRODUCT_COUNT'])} products found, {int(results['SELECTED_COUNT'])} chosen for download."

    def _footprints_id(self):
        return self.table.layer.id() if self.table.layer is not None else ""

    def _show_footprints_id(self, layer_id):
        layer = QgsProject.instance().mapLayer(layer_id)
        if layer is not None:
            self.table.show_layer(layer)
            self.products_ready.emit(layer, self.endpoints())
