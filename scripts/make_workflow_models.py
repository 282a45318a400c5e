"""Regenerate the shipped .model3 workflows in qgis_satplugin/core/resources/workflows/ from code.

Run: .venv/bin/python scripts/make_workflow_models.py
Writing the models from code keeps them in step with the algorithms' parameter names.
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Qt writes an element's XML attributes in hash order, which differs from element to
# element and with the hash seed: rewrite them in one order, so that a regenerated file
# differs from the shipped one only where the model does.
ATTRIBUTE_ORDER = ("name", "value", "type")
_TAG = re.compile(r'<(\w+)((?: \w+="[^"]*")+)(/?)>')
_ATTRIBUTE = re.compile(r' (\w+)="([^"]*)"')


def canonical_xml(text: str) -> str:
    def reorder(tag):
        attributes = dict(_ATTRIBUTE.findall(tag.group(2)))
        order = sorted(attributes, key=lambda k: (ATTRIBUTE_ORDER.index(k) if k in ATTRIBUTE_ORDER else len(ATTRIBUTE_ORDER), k))
        return f"<{tag.group(1)}" + "".join(f' {k}="{attributes[k]}"' for k in order) + f"{tag.group(3)}>"

    return _TAG.sub(reorder, text)


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


def build_dataset_model():
    """Fields and a season in, a training dataset out: search → download → rasterize → export."""
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
        QgsProcessingParameterField,
        QgsProcessingParameterNumber,
        QgsProcessingParameterString,
    )

    from satplugin.processing_algs.export_patches import FORMATS
    from satplugin.processing_algs.search_products import BACKENDS

    model = QgsProcessingModelAlgorithm("Training dataset from fields", "satplugin", "satplugin")
    model.setHelpContent(
        {
            "ALG_DESC": "Searches the best dates over the field polygons, downloads them (all L2A bands + SCL) onto "
            "one 10 m grid, rasterizes the fields' classes and ids onto the same lattice, and exports patches "
            "with spatially blocked splits.",
            "ALG_CREATOR": "satplugin",
        }
    )
    for parameter in (
        QgsProcessingParameterEnum("backend", "Backend", [label for _, label in BACKENDS], defaultValue=2),
        QgsProcessingParameterString("service_url", "Service URL (or the local folder)", optional=True),
        QgsProcessingParameterFeatureSource("fields", "Field polygons", [QgsProcessing.TypeVectorPolygon]),
        QgsProcessingParameterField("class_field", "Class field", parentLayerParameterName="fields"),
        QgsProcessingParameterDateTime("start_date", "Start date", QgsProcessingParameterDateTime.Date),
        QgsProcessingParameterDateTime("end_date", "End date", QgsProcessingParameterDateTime.Date),
        QgsProcessingParameterNumber("max_products", "Dates to keep", QgsProcessingParameterNumber.Integer, 6, minValue=1),
        QgsProcessingParameterNumber("patch_size", "Patch size (pixels)", QgsProcessingParameterNumber.Integer, 64, minValue=2),
        QgsProcessingParameterEnum("format", "Format", [label for _, label in FORMATS], defaultValue=0),
    ):
        model.addModelParameter(parameter, QgsProcessingModelParameter(parameter.name()))

    def child(alg_id, child_id, description, sources, outputs=()):
        step = QgsProcessingModelChildAlgorithm(alg_id)
        step.setChildId(child_id)
        step.setDescription(description)
        for name, source in sources:
            step.addParameterSources(name, source if isinstance(source, list) else [source])
        exposed = {}
        for name, child_output, text in outputs:
            output = QgsProcessingModelOutput(name, text)
            output.setChildId(child_id)
            output.setChildOutputName(child_output)
            exposed[name] = output
        step.setModelOutputs(exposed)
        model.addChildAlgorithm(step)

    child("satplugin:searchproducts", "search", "Search products", [
        ("BACKEND", Source.fromModelParameter("backend")),
        ("SERVICE_URL", Source.fromModelParameter("service_url")),
        ("AOI_LAYER", Source.fromModelParameter("fields")),
        ("START_DATE", Source.fromModelParameter("start_date")),
        ("END_DATE", Source.fromModelParameter("end_date")),
        ("MAX_PRODUCTS", Source.fromModelParameter("max_products")),
        ("STRATEGY", Source.fromStaticValue(1)),
        ("MAX_CLOUD", Source.fromStaticValue(50.0)),
        ("AOI_CLOUD", Source.fromStaticValue(True)),
    ], [("products", "OUTPUT", "Product footprints")])
    child("satplugin:downloadproducts", "download", "Download products", [
        ("PRODUCTS", Source.fromChildOutput("search", "OUTPUT")),
        ("AOI_LAYER", Source.fromModelParameter("fields")),
        ("SERVICE_URL", Source.fromModelParameter("service_url")),
        ("BANDS", Source.fromStaticValue([1])),
    ], [("series", "OUTPUT_FOLDER", "Downloaded time series")])
    child("satplugin:rasterizegroundtruth", "rasterize", "Rasterize ground truth", [
        ("INPUT", Source.fromModelParameter("fields")),
        ("CLASS_FIELD", Source.fromModelParameter("class_field")),
        ("PIXEL_SIZE", Source.fromStaticValue(10.0)),
    ], [("class_raster", "OUTPUT_CLASS", "Class raster"), ("id_raster", "OUTPUT_ID", "Parcel id raster")])
    child("satplugin:exportpatches", "export", "Export patches", [
        ("IMAGES", Source.fromChildOutput("download", "OUTPUT_FOLDER")),
        ("LABELS", [Source.fromChildOutput("rasterize", "OUTPUT_CLASS"), Source.fromChildOutput("rasterize", "OUTPUT_ID")]),
        ("PATCH_SIZE", Source.fromModelParameter("patch_size")),
        ("FORMAT", Source.fromModelParameter("format")),
        ("MAX_CLOUD", Source.fromStaticValue(30.0)),
    ], [("dataset", "OUTPUT_FOLDER", "Dataset folder")])
    return model


# A component is 200 x 30 px in the modeler and its position is its centre: columns 100 px
# apart leave room for the arrows, rows 45 px apart for the links' labels.
COLUMN_STEP = 300.0
ROW_STEP = 75.0


def lay_out(model):
    """Place every component left to right as the data flows, instead of all at (0, 0).

    Column 0 holds the model's inputs, in the order they were added; an algorithm goes
    one column right of the rightmost input or algorithm it reads, and each output one
    column right of its algorithm. In its column a component sits level with the mean
    height of what feeds it, pushed down just enough to clear the one above, so a chain
    reads as a straight line and nothing overlaps.
    """
    from qgis.core import QgsProcessingModelChildParameterSource as Source
    from qgis.PyQt.QtCore import QPointF

    params = [d.name() for d in model.parameterDefinitions() if d.name() in model.parameterComponents()]
    children = model.childAlgorithms()
    feeds = {}  # child id, or (child id, output name) -> the ("param", name) / ("child", id) it reads
    for child_id, child in children.items():
        sources = [s for group in child.parameterSources().values() for s in group]
        feeds[child_id] = {("param", s.parameterName()) for s in sources if s.source() == Source.ModelParameter}
        feeds[child_id] |= {("child", s.outputChildId()) for s in sources if s.source() == Source.ChildOutput}
        feeds[child_id] |= {("child", d.childId) for d in child.dependencies()}

    column = {("param", name): 0 for name in params}
    while len(column) < len(params) + len(children):
        ready = [c for c in children if ("child", c) not in column and all(f in column for f in feeds[c])]
        if not ready:
            raise ValueError(f"{model.name()}: the child algorithms depend on each other in a cycle")
        for child_id in ready:
            column[("child", child_id)] = 1 + max((column[f] for f in feeds[child_id]), default=0)
    for child_id, child in children.items():
        for name in child.modelOutputs():
            column[("output", child_id, name)] = column[("child", child_id)] + 1
            feeds[(child_id, name)] = {("child", child_id)}

    height = {("param", name): row * ROW_STEP for row, name in enumerate(params)}
    for col in range(1, max(column.values()) + 1):
        wanted = []
        for key in sorted(k for k, c in column.items() if c == col):
            sources = feeds[key[1]] if key[0] == "child" else feeds[key[1:]]
            wanted.append((sum(height[f] for f in sorted(sources)) / len(sources) if sources else 0.0, key))
        below = None
        for y, key in sorted(wanted):
            height[key] = y if below is None else max(y, below + ROW_STEP)
            below = height[key]

    def at(key):
        return QPointF(column[key] * COLUMN_STEP, height[key])

    for name in params:
        component = model.parameterComponent(name)
        component.setPosition(at(("param", name)))
        model.setParameterComponent(component)
    for child_id in children:
        child = model.childAlgorithm(child_id)
        child.setPosition(at(("child", child_id)))
        outputs = child.modelOutputs()
        for name, output in outputs.items():
            output.setPosition(at(("output", child_id, name)))
        child.setModelOutputs(outputs)
        model.setChildAlgorithm(child)
    return model


MODELS = (
    ("ground_truth", build_ground_truth_model),
    ("search_download", build_search_download_model),
    ("dataset_from_fields", build_dataset_model),
)


def main():
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, str(ROOT))
    from tests.plugin_link import link_plugin_package

    link_plugin_package()
    import satplugin
    from satplugin.qgis_satplugin.core.resources import resource_path

    plugin = satplugin.classFactory(None)
    plugin.initProcessing()
    folder = resource_path("workflows")
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS:
        target = folder / f"{name}.model3"
        if not lay_out(build()).toFile(str(target)):
            sys.exit(f"could not write {target}")
        target.write_text(canonical_xml(target.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {target}")
    plugin.unload()
    app.exitQgis()


if __name__ == "__main__":
    main()
