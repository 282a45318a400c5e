"""The search results as a table tied to the footprints layer.

Selecting rows selects those footprints and zooms the map to them (and a selection
made on the map selects the rows). The first column's check boxes say which products
to download: they start as the search's own choice (``selected`` = 1).
"""
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

# (header, field, format) of each column after the check box.
COLUMNS = [
    ("Date (UTC)", "datetime", lambda v: str(v)[:16].replace("T", " ")),
    ("Tile", "mgrs_tile", str),
    ("Cloud %", "cloud", lambda v: f"{float(v):.1f}"),
    ("AOI cover %", "aoi_cover", lambda v: f"{float(v):.1f}"),
    ("AOI cloud %", "aoi_cloud", lambda v: f"{float(v):.1f}"),
    ("Rank", "rank", str),
    ("Product", "product_id", str),
]
FID_ROLE = Qt.UserRole


def _text(value, fmt):
    if value is None or str(value) == "NULL":
        return ""
    try:
        return fmt(value)
    except (TypeError, ValueError):
        return str(value)


class ResultsTable(QTableWidget):
    checkedChanged = pyqtSignal()  # noqa: N815 (Qt naming)

    def __init__(self, iface, parent=None):
        super().__init__(0, len(COLUMNS) + 1, parent)
        self.iface = iface
        self.layer = None
        self._syncing = False
        self.setHorizontalHeaderLabels(["Get"] + [header for header, _, _ in COLUMNS])
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.itemSelectionChanged.connect(self._rows_selected)
        self.itemChanged.connect(lambda item: item.column() == 0 and self.checkedChanged.emit())

    def show_layer(self, layer):
        """Fill the table from a footprints layer, best rank first."""
        if self.layer is not None:
            try:
                self.layer.selectionChanged.disconnect(self._layer_selection_changed)
            except (TypeError, RuntimeError):
                pass  # the previous layer was removed from the project
        self.layer = layer
        features = sorted(layer.getFeatures(), key=lambda f: (f["rank"] if str(f["rank"]) != "NULL" else 1e9, f.id()))
        self.blockSignals(True)
        self.setRowCount(len(features))
        for row, feature in enumerate(features):
            check = QTableWidgetItem()
            check.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            check.setCheckState(Qt.Checked if feature["selected"] == 1 else Qt.Unchecked)
            check.setData(FID_ROLE, feature.id())
            self.setItem(row, 0, check)
            for column, (_, field, fmt) in enumerate(COLUMNS, start=1):
                value = feature[field] if layer.fields().lookupField(field) >= 0 else None
                self.setItem(row, column, QTableWidgetItem(_text(value, fmt)))
        self.blockSignals(False)
        layer.selectionChanged.connect(self._layer_selection_changed)
        self.checkedChanged.emit()

    def forget_layer(self, layer_id):
        """The footprints layer is leaving the project: empty the table before it goes."""
        if self.layer is not None and self.layer.id() == layer_id:
            self.layer.selectionChanged.disconnect(self._layer_selection_changed)
            self.layer = None
            self.setRowCount(0)
            self.checkedChanged.emit()

    def feature_id(self, row):
        return self.item(row, 0).data(FID_ROLE)

    def checked_feature_ids(self):
        return [self.feature_id(row) for row in range(self.rowCount()) if self.item(row, 0).checkState() == Qt.Checked]

    def set_checked(self, feature_ids):
        wanted = set(feature_ids)
        for row in range(self.rowCount()):
            self.item(row, 0).setCheckState(Qt.Checked if self.feature_id(row) in wanted else Qt.Unchecked)

    def select_rows(self, rows):
        """Select whole rows, as a user's click and ctrl-click would."""
        self.clearSelection()
        model, selection = self.model(), self.selectionModel()
        for row in rows:
            selection.select(model.index(row, 0), selection.Select | selection.Rows)

    # --- table <-> layer ---------------------------------------------------------------
    def _rows_selected(self):
        if self._syncing or self.layer is None:
            return
        rows = sorted({index.row() for index in self.selectionModel().selectedRows()})
        ids = [self.feature_id(row) for row in rows]
        self._syncing = True
        try:
            self.layer.selectByIds(ids)
        finally:
            self._syncing = False
        if ids:
            canvas = self.iface.mapCanvas()
            canvas.zoomToFeatureIds(self.layer, ids)
            canvas.refresh()

    def _layer_selection_changed(self, *_):
        if self._syncing:
            return
        selected = set(self.layer.selectedFeatureIds())
        self._syncing = True
        try:
            self.clearSelection()
            model, selection = self.model(), self.selectionModel()
            for row in range(self.rowCount()):
                if self.feature_id(row) in selected:
                    selection.select(model.index(row, 0), selection.Select | selection.Rows)
        finally:
            self._syncing = False
