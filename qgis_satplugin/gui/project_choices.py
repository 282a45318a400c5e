"""The dock's choices, saved in the project file (scope "satplugin"), one entry per widget.

Each bound widget is written when it changes and read back when a project is opened,
so a project remembers its area, dates, fields and folders. Only plain values are
stored: a layer as its id, credentials as the authentication config id (the secret
stays in QGIS's encrypted authentication database).
"""
from qgis.core import QgsProject
from qgis.gui import QgsAuthConfigSelect, QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QDate, Qt
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDateEdit, QDoubleSpinBox, QLineEdit, QSpinBox

SCOPE = "satplugin"


def _adapter(widget):
    """(read as text, write from text, change signal) for a widget type."""
    # Subclasses first: QgsMapLayerComboBox and QgsFieldComboBox are QComboBoxes.
    if isinstance(widget, QgsMapLayerComboBox):
        def set_layer(text):
            layer = QgsProject.instance().mapLayer(text)
            if layer is not None:
                widget.setLayer(layer)
        return (lambda: widget.currentLayer().id() if widget.currentLayer() else ""), set_layer, widget.layerChanged
    if isinstance(widget, QgsFieldComboBox):
        return widget.currentField, widget.setField, widget.fieldChanged
    if isinstance(widget, QComboBox):
        def set_index(text):
            if text.isdigit() and int(text) < widget.count():
                widget.setCurrentIndex(int(text))
        return (lambda: str(widget.currentIndex())), set_index, widget.currentIndexChanged
    if isinstance(widget, QSpinBox):
        return (lambda: str(widget.value())), (lambda text: widget.setValue(int(float(text)))), widget.valueChanged
    if isinstance(widget, QDoubleSpinBox):
        return (lambda: repr(widget.value())), (lambda text: widget.setValue(float(text))), widget.valueChanged
    if isinstance(widget, QCheckBox):
        return (lambda: "1" if widget.isChecked() else "0"), (lambda text: widget.setChecked(text == "1")), widget.toggled
    if isinstance(widget, QDateEdit):
        def set_date(text):
            date = QDate.fromString(text, Qt.ISODate)
            if date.isValid():
                widget.setDate(date)
        return (lambda: widget.date().toString(Qt.ISODate)), set_date, widget.dateChanged
    if isinstance(widget, QLineEdit):
        return widget.text, widget.setText, widget.textChanged
    if isinstance(widget, QgsFileWidget):
        return widget.filePath, widget.setFilePath, widget.fileChanged
    if isinstance(widget, QgsAuthConfigSelect):
        return widget.configId, widget.setConfigId, widget.selectedConfigIdChanged
    raise TypeError(f"No project setting adapter for {type(widget).__name__}")


class ProjectChoices:
    """Binds widgets to project entries ``satplugin/<key>``, and restores them when a project is read."""

    def __init__(self):
        self._bound = {}  # key -> (read, write)
        self._restoring = False
        # While a project loads its layers, layer combos pick the first layer that
        # arrives; saving that would overwrite the entry just read from the file.
        self._reading = False
        project = QgsProject.instance()
        self._connections = [
            (project.cleared, self._read_over),
            (project.loadingLayer, self._read_started),
            (project.readProject, self._read_done),
        ]
        for signal, slot in self._connections:
            signal.connect(slot)

    def disconnect_project(self):
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass

    def _read_started(self, *_):
        self._reading = True

    def _read_over(self, *_):
        self._reading = False

    def _read_done(self, *_):
        self._reading = False
        self.restore()

    def bind(self, key, widget):
        read, write, changed = _adapter(widget)
        self._bound[key] = (read, write)
        changed.connect(lambda *_: self.save(key))

    def bind_value(self, key, read, write, changed):
        """A composite widget (the AOI picker) that reads and writes its own text."""
        self._bound[key] = (read, write)
        changed.connect(lambda *_: self.save(key))

    def save(self, key):
        # Restoring sets widgets, which would write the same values back and mark the
        # freshly opened project as modified.
        if self._restoring or self._reading:
            return
        read, _ = self._bound[key]
        QgsProject.instance().writeEntry(SCOPE, key, read())

    def restore(self):
        """Set every bound widget from the project; keys the project lacks keep their value."""
        project = QgsProject.instance()
        self._restoring = True
        try:
            for key, (_, write) in self._bound.items():
                text, found = project.readEntry(SCOPE, key, "")
                if found:
                    write(text)
        finally:
            self._restoring = False

    def stored(self, key):
        text, found = QgsProject.instance().readEntry(SCOPE, key, "")
        return text if found else None
