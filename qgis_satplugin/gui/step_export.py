"""Step 4 · Export: satplugin:exportpatches of the downloaded series and the ground truth."""
from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QLineEdit

from .layer_checklist import RasterLayerChecklist
from .layer_styles import style_splits
from .map_outputs import add_vector
from .param_widgets import definition, enum_combo, number_spin
from .step_page import StepInputError, StepPage

ALGORITHM = "satplugin:exportpatches"


def folder_widget(tooltip):
    widget = QgsFileWidget()
    widget.setStorageMode(QgsFileWidget.GetDirectory)
    widget.setToolTip(tooltip)
    return widget


class ExportPage(StepPage):
    ALGORITHM = ALGORITHM
    TITLE = "Export patches"
    KEY = "export"

    def __init__(self, iface, workspace, choices, parent=None):
        super().__init__(iface, workspace, choices, parent)
        self.images = self.add_row("Download folder", folder_widget("The folder 'Download products' wrote."), "images")
        self.image_layers = self.add_row("or rasters", RasterLayerChecklist())
        self.image_layers.setToolTip("One raster per date, when no download folder is given.")
        self.labels = self.add_row("Labels", RasterLayerChecklist())
        self.labels.setToolTip("Outputs of 'Rasterize ground truth' (class, parcel id, conflict...).")
        self.patch_size = self.add_row("Patch size (px)", number_spin(ALGORITHM, "PATCH_SIZE"), "patch_size")
        self.min_labelled = self.add_row("Min labelled share", number_spin(ALGORITHM, "MIN_LABELLED"), "min_labelled")
        self.min_labelled.setSingleStep(0.05)
        self.max_cloud = self.add_row("Max cloud %", number_spin(ALGORITHM, "MAX_CLOUD"), "max_cloud")
        self.band_resolution = self.add_row("Band resolution", enum_combo(ALGORITHM, "BAND_RESOLUTION"), "band_resolution")
        self.format = self.add_row("Format", enum_combo(ALGORITHM, "FORMAT"), "format")
        self.block = self.add_row("Split block (px)", number_spin(ALGORITHM, "SPLIT_BLOCK_SIZE"), "block")
        self.ratios = self.add_row("Splits train,val,test", QLineEdit(definition(ALGORITHM, "SPLIT_RATIOS").defaultValue()), "ratios")
        self.seed = self.add_row("Seed", number_spin(ALGORITHM, "SEED"), "seed")

    def use_images_folder(self, folder):
        self.images.setFilePath(folder)

    def use_labels(self, layers):
        self.labels.check_only(layers)

    def disconnect_project(self):
        self.image_layers.disconnect_project()
        self.labels.disconnect_project()

    def parameters(self):
        folder = self.images.filePath().strip()
        images = [folder] if folder else self.image_layers.checked_paths()
        if not images:
            raise StepInputError("Give the download folder, or check the rasters to export (one per date).")
        return {
            "IMAGES": images,
            "LABELS": self.labels.checked_paths(),
            "PATCH_SIZE": self.patch_size.value(),
            "MIN_LABELLED": self.min_labelled.value(),
            "MAX_CLOUD": self.max_cloud.value(),
            "BAND_RESOLUTION": self.band_resolution.currentIndex(),
            "FORMAT": self.format.currentIndex(),
            "SPLIT_BLOCK_SIZE": self.block.value(),
            "SPLIT_RATIOS": self.ratios.text().strip(),
            "SEED": self.seed.value(),
            "OUTPUT_FOLDER": self.workspace.new_path("dataset"),
        }

    def show_results(self, results):
        folder = Path(results["OUTPUT_FOLDER"])
        if results.get("INDEX"):
            style_splits(add_vector(results["INDEX"], "samples", "samples by split", f"Dataset {folder.name}"))
        return f"{int(results['SAMPLE_COUNT'])} samples written to {folder}."
