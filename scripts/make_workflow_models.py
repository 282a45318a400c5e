"""Regenerate the shipped .model3 workflows in models/workflows/ from code.

Run: .venv/bin/python scripts/make_workflow_models.py
Writing the models from code keeps them in step with the algorithms' parameter names.
"""
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def build_ground_truth_model():
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource as Source,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterField,
        QgsProcessingParameterNumber,
    )

    model = QgsProcessingModelAlgorithm("Ground truth rasters", "satplugin", "satplugin")
    model.setHelpContent(
        {
            "ALG_DESC": "Rasterizes field polygons onto a Sentinel-2-aligned UTM grid: class, parcel id, "
            "coverage and conflict rasters plus a class table. Later steps (search, download, export) "
            "chain onto these outputs.",
            "ALG_CREATOR": "satplugin",
        }
    )
    for parameter in (
        QgsProcessingParameterFeatureSource("polygons", "Field polygons", [QgsProcessing.TypeVectorPolygon]),
        QgsProcessingParameterField("class_field", "Class field", parentLayerParameterName="polygons"),
        QgsProcessingParameterNumber("pixel_size", "Pixel size (m)", QgsProcessingParameterNumber.Double, 10.0),
    ):
        model.addModelParameter(parameter, QgsProcessingModelParameter(parameter.name()))

    child = QgsProcessingModelChildAlgorithm("satplugin:rasterizegroundtruth")
    child.setChildId("rasterize")
    child.setDescription("Rasterize ground truth")
    child.addParameterSources("INPUT", [Source.fromModelParameter("polygons")])
    child.addParameterSources("CLASS_FIELD", [Source.fromModelParameter("class_field")])
    child.addParameterSources("PIXEL_SIZE", [Source.fromModelParameter("pixel_size")])
    child.addParameterSources("MIN_COVERAGE", [Source.fromStaticValue(0.5)])
    outputs = {}
    for name, child_output, description in (
        ("class_raster", "OUTPUT_CLASS", "Class raster"),
        ("coverage_raster", "OUTPUT_COVERAGE", "Coverage raster"),
        ("conflict_raster", "OUTPUT_CONFLICT", "Conflict raster"),
        ("class_table", "OUTPUT_CLASS_TABLE", "Class table"),
    ):
        output = QgsProcessingModelOutput(name, description)
        output.setChildId("rasterize")
        output.setChildOutputName(child_output)
        outputs[name] = output
    child.setModelOutputs(outputs)
    model.addChildAlgorithm(child)
    return model


def main():
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    link_parent = Path(tempfile.mkdtemp())
    (link_parent / "satplugin").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(link_parent))
    import satplugin

    plugin = satplugin.classFactory(None)
    plugin.initProcessing()
    target = ROOT / "models" / "workflows" / "ground_truth.model3"
    target.parent.mkdir(parents=True, exist_ok=True)
    model = build_ground_truth_model()
    if not model.toFile(str(target)):
        sys.exit(f"could not write {target}")
    print(f"wrote {target}")
    plugin.unload()
    app.exitQgis()


if __name__ == "__main__":
    main()
