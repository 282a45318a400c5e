"""A check list of the raster layers loaded in the project, kept up to date as layers come and go."""
from qgis.core import QgsMapLayerType, QgsProject
from qgis.gui import QgsCheckableComboBox
from qgis.PyQt.QtCore import Qt


class RasterLayerChecklist(QgsCheckableComboBox):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setDefaultText("none")
        project = QgsProject.instance()
        project.layersAdded.connect(self._refresh)
        project.layersRemoved.connect(self._refresh)
        self._refresh()

    def disconnect_project(self):
        project = QgsProject.instance()
        for signal in (project.layersAdded, project.layersRemoved):
            try:
                signal.disconnect(self._refresh)
            except (TypeError, RuntimeError):
                pass

    def _refresh(self, *_):
        checked = set(self.checkedItemsData())
        self.clear()
        for layer in QgsProject.instance().mapLayers().values():
            if layer.type() == QgsMapLayerType.RasterLayer:
                state = Qt.Checked if layer.id() in checked else Qt.Unchecked
                self.addItemWithCheckState(layer.name(), state, layer.id())

    def checked_layers(self):
        project = QgsProject.instance()
        return [layer for layer in map(project.mapLayer, self.checkedItemsData()) if layer is not None]

    def checked_paths(self):
        return [layer.source() for layer in self.checked_layers()]

    def check_only(self, layers):
        """Check exactly these layers (the previous step's outputs)."""
        self._refresh()
        wanted = {layer.id() for layer in layers}
        for index in range(self.count()):
            self.setItemCheckState(index, Qt.Checked if self.itemData(index) in wanted else Qt.Unchecked)
