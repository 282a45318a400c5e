"""Step 5 · Super-resolve: satplugin:superresolve of the downloaded revisits."""
from pathlib import Path

from qgis.gui import QgsFileWidget

from .layer_checklist import RasterLayerChecklist
from .layer_styles import style_true_colour
from .map_outputs import add_raster
from .param_widgets import enum_combo, number_spin
from .step_export import folder_widget
from .step_page import StepInputError, StepPage

ALGORITHM = "satplugin:superresolve"


class SuperResolvePage(StepPage):
    ALGORITHM = ALGORITHM
    TITLE = "Super-resolve"
    KEY = "superres"

    def __init__(self, iface, workspace, choices, parent=None):
        super().__init__(iface, workspace, choices, parent)
        self.input = self.add_row("Download folder", folder_widget("The folder 'Download products' wrote."), "input")
        self.input_layers = self.add_row("or rasters", RasterLayerChecklist())
        self.input_layers.setToolTip("One raster per revisit on one grid, when no download folder is given.")
        self.model = QgsFileWidget()
        self.model.setFilter("ONNX models (*.onnx)")
        self.model.setToolTip("Empty: the shipped default model.")
        self.add_row("Model", self.model, "model")
        self.provider = self.add_row("Run on", enum_combo(ALGORITHM, "PROVIDER"), "provider")
        self.max_cloud = self.add_row("Max cloud % per revisit", number_spin(ALGORITHM, "MAX_CLOUD"), "max_cloud")
        self.tile_size = self.add_row("Tile size (px)", number_spin(ALGORITHM, "TILE_SIZE"), "tile_size")

    def use_input_folder(self, folder):
        self.input.setFilePath(folder)

    def disconnect_project(self):
        self.input_layers.disconnect_project()

    def parameters(self):
        folder = self.input.filePath().strip()
        inputs = [folder] if folder else self.input_layers.checked_paths()
        if not inputs:
            raise StepInputError("Give the download folder, or check the revisits to fuse.")
        return {
            "INPUT": inputs,
            "MODEL": self.model.filePath().strip() or None,
            "PROVIDER": self.provider.currentIndex(),
            "MAX_CLOUD": self.max_cloud.value(),
            "TILE_SIZE": self.tile_size.value(),
            "OUTPUT": self.workspace.new_path("superres", ".tif"),
        }

    def show_results(self, results):
        layer = add_raster(results["OUTPUT"], Path(results["OUTPUT"]).stem, "Super-resolved")
        style_true_colour(layer)
        return f"x{int(results['SCALE'])} from {revisits_said(results)}, run on {results['PROVIDER_USED']}."


def revisits_said(results) -> str:
    """What the model was fed, in words: a date repeated to fill its inputs is one image, not several."""
    fed, images = int(results["REVISITS_USED"]), int(results["IMAGES_USED"])
    if images < fed:
        return f"{images} image(s), repeated to fill the model's {fed} revisit inputs"
    return f"{fed} revisit(s)"
