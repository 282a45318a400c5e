"""What every step of the dock shares: a form, a Run button, and the contract with the dock.

A page only turns its widgets into the parameters of its algorithm (``parameters``)
and shows the algorithm's results on the map (``show_results``). Running, progress,
cancel and messages belong to the dock, the same for every step.
"""
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QPushButton, QVBoxLayout, QWidget


class StepInputError(Exception):
    """Something the user must fill in or fix before the step can run; the text says what."""


class StepPage(QWidget):
    ALGORITHM = ""  # the Processing algorithm this page runs
    TITLE = ""
    KEY = ""  # prefix of this page's entries in the project

    run_requested = pyqtSignal(object)  # the page

    def __init__(self, iface, workspace, choices, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.workspace = workspace
        self.choices = choices
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        # A dock is narrow: a field that does not fit beside its label goes below it.
        self.form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        self.run_button = QPushButton(f"Run: {self.TITLE}")
        self.run_button.setToolTip(f"Runs satplugin:{self.ALGORITHM.split(':')[-1]} in the background with these values.")
        self.run_button.clicked.connect(lambda: self.run_requested.emit(self))
        self.body = QVBoxLayout(self)
        self.body.addLayout(self.form)
        self.body.addWidget(self.run_button)

    def add_row(self, label, widget, key=None):
        """A labelled row; with ``key`` the widget's value is kept in the project."""
        if isinstance(widget, QComboBox):
            # Long option labels ("STAC API (Earth Search v1 ...)") must not set the
            # width of the whole dock: elide them, the popup shows them whole.
            widget.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            widget.setMinimumContentsLength(8)
        if label:
            self.form.addRow(label, widget)
        else:
            self.form.addRow(widget)  # a check box carries its own text: the whole row
        if key is not None:
            self.choices.bind(f"{self.KEY}/{key}", widget)
        return widget

    def parameters(self) -> dict:
        """The algorithm's parameters from the widgets; raises StepInputError when incomplete."""
        raise NotImplementedError

    def prepare(self):
        """Changes to the map the algorithm relies on (e.g. a selection), made just before it runs."""

    def show_results(self, results) -> str:
        """Add the outputs to the map; return a one-line summary for the message bar."""
        raise NotImplementedError

    def warnings(self, results) -> list:
        """Sentences for the message bar about a run that succeeded but looks wrong; none by default."""
        return []

    def after_failure(self):
        """A run that failed or was canceled: undo what ``parameters`` made for it; nothing by default."""
