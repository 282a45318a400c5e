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


def build_search_download_model():
    """Search products, then download the selected ones onto one grid."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource as Source,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterDateTime,
        QgsProcessingParameterEnum,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterNumber,
        QgsProcessingParameterString,
    )

    from satplugin.processing_algs.search_products import BACKENDS

    model = QgsProcessingModelAlgorithm("Search and download", "satplugin", "satplugin")
    model.setHelpContent(
        {
            "ALG_DESC": "Searches Sentinel-2 L2A products over the AOI polygons and the season, keeps the best "
            "MAX_PRODUCTS spread evenly in time, and downloads them (10 m RGBN + SCL) onto one grid.",
            "ALG_CREATOR": "satplugin",
        }
    )
    for parameter in (
        QgsProcessingParameterEnum("backend", "Backend", [label for _, label in BACKENDS], defaultValue=2),
        QgsProcessingParameterString("service_url", "Service URL (or the local folder)", optional=True),
        QgsProcessingParameterFeatureSource("aoi", "Area of interest (polygons)", [QgsProcessing.TypeVectorPolygon]),
        QgsProcessingParameterDateTime("start_date", "Start date", QgsProcessingParameterDateTime.Date),
        QgsProcessingParameterDateTime("end_date", "End date", QgsProcessingParameterDateTime.Date),
        QgsProcessingParameterNumber("max_products", "Dates to keep", QgsProcessingParameterNumber.Integer, 6, minValue=1),
        QgsProcessingParameterNumber("max_cloud", "Maximum cloud (%)", QgsProcessingParameterNumber.Double, 50.0),
    ):
        model.addModelParameter(parameter, QgsProcessingModelParameter(parameter.name()))

    search = QgsProcessingModelChildAlgorithm("satplugin:searchproducts")
    search.setChildId("search")
    search.setDescription("Search products")
    for name, source in (
        ("BACKEND", Source.fromModelParameter("backend")),
        ("SERVICE_URL", Source.fromModelParameter("service_url")),
        ("AOI_LAYER", Source.fromModelParameter("aoi")),
        ("START_DATE", Source.fromModelParameter("start_date")),
        ("END_DATE", Source.fromModelParameter("end_date")),
        ("MAX_PRODUCTS", Source.fromModelParameter("max_products")),
        ("MAX_CLOUD", Source.fromModelParameter("max_cloud")),
        ("STRATEGY", Source.fromStaticValue(1)),
        ("COLLECTION", Source.fromStaticValue(0)),
    ):
        search.addParameterSources(name, [source])
    products = QgsProcessingModelOutput("products", "Product footprints")
    products.setChildId("search")
    products.setChildOutputName("OUTPUT")
    search.setModelOutputs({"products": products})
    model.addChildAlgorithm(search)

    download = QgsProcessingModelChildAlgorithm("satplugin:downloadproducts")
    download.setChildId("download")
    download.setDescription("Download products")
    for name, source in (
        ("PRODUCTS", Source.fromChildOutput("search", "OUTPUT")),
        ("AOI_LAYER", Source.fromModelParameter("aoi")),
        ("SERVICE_URL", Source.fromModelParameter("service_url")),
        ("BANDS", Source.fromStaticValue([0])),
        ("INCLUDE_MASKS", Source.fromStaticValue(True)),
        ("HARMONIZE", Source.fromStaticValue(True)),
    ):
        download.addParameterSources(name, [source])
    series = QgsProcessingModelOutput("series", "Downloaded time series (folder)")
    series.setChildId("download")
    series.setChildOutputName("OUTPUT_FOLDER")
    download.setModelOutputs({"series": series})
    download.setDependencies([])
    model.addChildAlgorithm(download)
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
    folder = ROOT / "models" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in (("ground_truth", build_ground_truth_model), ("search_download", build_search_download_model)):
        target = folder / f"{name}.model3"
        if not build().toFile(str(target)):
            sys.exit(f"could not write {target}")
        print(f"wrote {target}")
    plugin.unload()
    app.exitQgis()


if __name__ == "__main__":
    main()
