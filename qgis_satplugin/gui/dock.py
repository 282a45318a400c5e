"""The "Sentinel-2 ML datasets" dock: the five steps in order, each one Processing algorithm.

The dock holds no processing logic. Each page fills its algorithm's parameters from
the map, the dock runs it through :class:`AlgorithmRunner` (a background task with
progress and cancel), and each step's outputs become the next step's inputs:

    search footprints ──► download PRODUCTS
    download folder   ──► export IMAGES, super-resolve INPUT; first image ──► ground-truth grid
    ground truth      ──► export LABELS
"""
from qgis.core import QgsProcessingException, QgsProject
from qgis.gui import QgsAuthConfigSelect, QgsDockWidget, QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolBox,
    QVBoxLayout,
    QWidget,
)

from . import messages
from ...processing_algs.base import current_engine
from .algorithm_task import AlgorithmRunner, python_command
from .project_choices import ProjectChoices
from .step_download import DownloadPage
from .step_export import ExportPage
from .step_ground_truth import GroundTruthPage
from .step_page import StepInputError
from .step_search import SearchPage
from .step_superres import SuperResolvePage
from .workspace import Workspace, default_folder

TITLE = "Sentinel-2 ML datasets"


def _scrolled(page):
    """Pages are taller than a dock often is: let them scroll instead of squeezing."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # the form fits the dock's width
    area.setFrameShape(QScrollArea.NoFrame)
    area.setWidget(page)
    return area


class SatPluginDock(QgsDockWidget):
    def __init__(self, iface, parent=None, offer_engine=None):
        super().__init__(TITLE, parent)
        self.setObjectName("SatPluginDock")  # QGIS saves dock positions by object name
        self.iface = iface
        self.offer_engine = offer_engine  # the plugin's message bar with Install engine…
        self.choices = ProjectChoices()
        self.runner = AlgorithmRunner(self)

        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        self._show_default_folder()
        self.auth = QgsAuthConfigSelect()
        self.auth.setToolTip("Copernicus Data Space / Sentinel Hub account, from the QGIS authentication "
                             "manager; the project stores only its id.")
        self.choices.bind("workspace/folder", self.folder)
        self.choices.bind("workspace/authcfg", self.auth)
        workspace = Workspace(self.folder, self.auth, on_default_folder=self._default_folder_used)

        self.search = SearchPage(iface, workspace, self.choices)
        self.download = DownloadPage(iface, workspace, self.choices, self.search.table)
        self.ground_truth = GroundTruthPage(iface, workspace, self.choices)
        self.export = ExportPage(iface, workspace, self.choices)
        self.superres = SuperResolvePage(iface, workspace, self.choices)
        self.pages = [self.search, self.download, self.ground_truth, self.export, self.superres]

        self.steps = QToolBox()
        for number, page in enumerate(self.pages, start=1):
            self.steps.addItem(_scrolled(page), f"{number} · {page.TITLE}")
            page.run_requested.connect(self.run_step)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self._wire_chain()
        self.runner.started.connect(self._started)
        self.runner.progressChanged.connect(lambda value: self.progress.setValue(int(round(value))))
        self.runner.finished.connect(self._finished)
        self._layout()

        project = QgsProject.instance()
        project.layerWillBeRemoved.connect(self.search.table.forget_layer)
        # The default folder follows the project's home: saving, opening or clearing a project moves it.
        self._home_signals = (project.homePathChanged, project.projectSaved)
        for signal in self._home_signals:
            signal.connect(self._show_default_folder)
        self.choices.restore()

    # --- the work folder -----------------------------------------------------------------
    def _show_default_folder(self):
        """The empty work folder field names the folder the steps will use instead."""
        folder = default_folder()
        self.folder.lineEdit().setPlaceholderText(f"Default: {folder}")
        self.folder.setToolTip(f"Where every step writes. Empty: {folder}")

    def _default_folder_used(self, folder):
        messages.info(self.iface, f"No work folder set: the outputs are written to {folder}. "
                                  "Choose a work folder at the top of the dock to change it.")

    def _layout(self):
        header = QFormLayout()
        header.addRow("Work folder", self.folder)
        header.addRow("Account", self.auth)
        running = QHBoxLayout()
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(header)
        layout.addWidget(self.steps, 1)
        layout.addLayout(running)
        layout.addWidget(self.status)
        self.setWidget(body)

    def _wire_chain(self):
        self.search.products_ready.connect(self.download.use_products)
        self.download.series_ready.connect(self.export.use_images_folder)
        self.download.series_ready.connect(self.superres.use_input_folder)
        self.download.images_added.connect(self.ground_truth.use_reference)
        self.ground_truth.labels_ready.connect(self.export.use_labels)

    # --- running a step ------------------------------------------------------------------
    def run_step(self, page):
        if self.runner.is_running():
            messages.warning(self.iface, "A step is still running: wait for it to finish or cancel it.")
            return
        if not self._engine_ready(page):
            return
        try:
            parameters = page.parameters()
            page.prepare()
        except StepInputError as exc:
            messages.warning(self.iface, f"{page.TITLE}: {exc}")
            return
        # The same call in the Python console repeats the step: the dock adds nothing to it.
        messages.log(python_command(page.ALGORITHM, parameters))
        self._page = page
        self.runner.run(page.ALGORITHM, parameters, on_success=page.show_results)

    def _engine_ready(self, page) -> bool:
        """Without an engine a step stops here, before its parameters make any folder, with the
        plugin's message bar that offers Install engine… (not a long error that hides it)."""
        try:
            current_engine()
        except QgsProcessingException as exc:
            if self.offer_engine is not None:
                self.offer_engine()
            else:
                messages.warning(self.iface, f"{page.TITLE}: {exc}")
            return False
        return True

    def _started(self, name):
        self.progress.setValue(0)
        self.status.setText(f"Running {name}…")
        self.cancel_button.setEnabled(True)
        for page in self.pages:
            page.run_button.setEnabled(False)

    def _finished(self, outcome):
        self.cancel_button.setEnabled(False)
        for page in self.pages:
            page.run_button.setEnabled(True)
        title = self._page.TITLE
        if outcome.status == "success":
            self.progress.setValue(100)
            self.status.setText(f"{title}: {outcome.summary}")
            messages.success(self.iface, f"{title}: {outcome.summary}", outcome.log)
            # Results that ran but are probably not what the user meant (one class per parcel):
            # the algorithm says so in its log, the message bar must say it too.
            for text in self._page.warnings(outcome.results):
                messages.warning(self.iface, f"{title}: {text}")
            return
        self._page.after_failure()
        if outcome.status == "canceled":
            self.progress.setValue(0)
            self.status.setText(f"{title}: canceled.")
            messages.warning(self.iface, f"{title} was canceled; nothing partial was kept.")
        else:
            self.progress.setValue(0)
            self.status.setText(f"{title} failed: {outcome.error}")
            messages.error(self.iface, f"{title} failed: {outcome.error}", outcome.log)

    def shutdown(self):
        """Before the plugin unloads: stop a running step, let go of the project's signals."""
        self.runner.cancel()
        self.choices.disconnect_project()
        connections = [(QgsProject.instance().layerWillBeRemoved, self.search.table.forget_layer)]
        connections += [(signal, self._show_default_folder) for signal in self._home_signals]
        for signal, slot in connections:
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        self.export.disconnect_project()
        self.superres.disconnect_project()
        if self.iface is not None:
            try:
                self.iface.currentLayerChanged.disconnect(self.ground_truth.follow_active_layer)
            except (TypeError, RuntimeError):
                pass

