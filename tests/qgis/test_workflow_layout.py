"""The shipped .model3 workflows open in the modeler laid out as the data flows, not piled at (0, 0).

A component's position in a model is its centre; its box is that centre ± half its size.
"Left of" means the whole box is left of the other box: an arrow between them runs left to right.
"""
import importlib.util
from itertools import combinations

import pytest
from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingModelChildParameterSource as Source

from tests.conftest import ROOT
from satplugin.qgis_satplugin.core.resources import resource_path

WORKFLOWS = resource_path("workflows")
MODEL_NAMES = ("ground_truth", "search_download", "dataset_from_fields")


def load(name):
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(WORKFLOWS / f"{name}.model3"))
    return model


def box(component):
    """(left, top, right, bottom) of a component in the modeler's scene."""
    x, y = component.position().x(), component.position().y()
    w, h = component.size().width(), component.size().height()
    return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def left_of(a, b):
    return box(a)[2] < box(b)[0]


def components(model):
    """Every component the modeler draws, by a readable name (comments are drawn only when they have text)."""
    found = {f"input {name}": p for name, p in model.parameterComponents().items()}
    for child_id, child in model.childAlgorithms().items():
        found[f"algorithm {child_id}"] = child
        found.update({f"output {name}": output for name, output in child.modelOutputs().items()})
    assert not [name for name, c in found.items() if c.comment().description()], "a comment with text needs a place too"
    return found


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_workflow_reads_left_to_right_and_nothing_overlaps(name, satplugin_provider):
    model = load(name)
    inputs = model.parameterComponents()
    children = model.childAlgorithms()
    for child_id, child in children.items():
        for parameter, sources in child.parameterSources().items():
            for source in sources:
                if source.source() == Source.ModelParameter:
                    assert left_of(inputs[source.parameterName()], child), (name, child_id, parameter)
                elif source.source() == Source.ChildOutput:
                    assert left_of(children[source.outputChildId()], child), (name, child_id, parameter)
        for output_name, output in child.modelOutputs().items():
            assert left_of(child, output), (name, output_name)
    drawn = components(model)
    overlapping = [
        (a, b) for (a, ca), (b, cb) in combinations(drawn.items(), 2)
        if box(ca)[0] < box(cb)[2] and box(cb)[0] < box(ca)[2] and box(ca)[1] < box(cb)[3] and box(cb)[1] < box(ca)[3]
    ]
    assert overlapping == []


def test_the_dataset_workflow_has_one_column_per_step(satplugin_provider):
    model = load("dataset_from_fields")
    assert {p.position().x() for p in model.parameterComponents().values()} == {0.0}
    columns = {child_id: child.position().x() for child_id, child in model.childAlgorithms().items()}
    # search and rasterize read only the inputs; download reads search; export reads both.
    assert columns == {"search": 300.0, "rasterize": 300.0, "download": 600.0, "export": 900.0}
    for child in model.childAlgorithms().values():
        for output in child.modelOutputs().values():
            assert output.position().x() == child.position().x() + 300.0
    # The inputs are stacked one row each in the order the script adds them: where, then when, then how.
    order = ["backend", "service_url", "fields", "class_field", "start_date", "end_date", "max_products",
             "patch_size", "format"]
    assert sorted(order) == sorted(model.parameterComponents())
    assert [model.parameterComponent(n).position().y() for n in order] == [75.0 * row for row in range(len(order))]
    # An algorithm's only output sits level with it: a straight arrow.
    download = model.childAlgorithm("download")
    assert download.modelOutput("series").position().y() == download.position().y()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_shipped_workflow_is_what_the_script_writes(name, satplugin_provider, tmp_path):
    spec = importlib.util.spec_from_file_location("make_workflow_models", ROOT / "scripts" / "make_workflow_models.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    build = dict(script.MODELS)[name]
    written = tmp_path / f"{name}.model3"
    assert script.lay_out(build()).toFile(str(written))
    shipped = (WORKFLOWS / f"{name}.model3").read_text(encoding="utf-8")
    assert script.canonical_xml(written.read_text(encoding="utf-8")) == shipped
