"""The dock run as it opens: the class field it picks, the folder it writes to when none is set,
the warning when the classes look like ids, and the log line that replays a step.

Every step here is the ground-truth step on a small polygon layer (no reference raster: the
grid is the polygons' UTM zone), so each run takes well under a second.
"""
import ast
import hashlib
from pathlib import Path

import pytest
from qgis.core import (
    Qgis,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from satplugin.processing_algs.rasterize_ground_truth import class_count_warning
from satplugin.qgis_satplugin.gui.messages import TITLE as BAR_TITLE
from satplugin.qgis_satplugin.gui.step_ground_truth import guess_class_field
from tests.qgis.test_dock import dock, fields_layer, messages, run_step, satplugin_log  # noqa: F401 (fixtures)
from tests.servers import s2_world

GT_TITLE = "Rasterize ground truth"


def bar(text):
    """A message as pytest-qgis's message bar keeps it: the title, a colon, the text."""
    return f"{BAR_TITLE}:{text}"


def fields_of(*columns):
    fields = QgsFields()
    for name, kind in columns:
        fields.append(QgsField(name, kind))
    return fields


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # France's RPG: a parcel number first, the crop code later.
        ([("fid", QVariant.LongLong), ("ID_PARCEL", QVariant.String), ("CODE_CULTU", QVariant.String)], "CODE_CULTU"),
        # "postcode" does not start with "code"; a double field cannot hold classes.
        ([("fid", QVariant.LongLong), ("postcode", QVariant.String), ("class_prob", QVariant.Double),
          ("crop_type", QVariant.String)], "crop_type"),
        ([("fid", QVariant.LongLong), ("EC_trans_n", QVariant.String), ("EC_hcat_c", QVariant.LongLong)], "EC_hcat_c"),
        ([("fid", QVariant.LongLong), ("land_cover", QVariant.Int)], "land_cover"),
        # Nothing looks like a class: no guess, the user chooses.
        ([("fid", QVariant.LongLong), ("owner", QVariant.String), ("area", QVariant.Double)], ""),
    ],
)
def test_the_class_field_guess_is_a_class_like_text_or_integer_field(columns, expected):
    assert guess_class_field(fields_of(*columns)) == expected


def write_gpkg(layer, path):
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    error = QgsVectorFileWriter.writeAsVectorFormatV2(layer, str(path), QgsProject.instance().transformContext(), options)
    assert error[0] == QgsVectorFileWriter.NoError, error
    on_disk = QgsVectorLayer(f"{path}|layername={path.stem}", path.stem, "ogr")
    assert on_disk.isValid()
    QgsProject.instance().addMapLayer(on_disk)
    return on_disk


def test_the_class_field_is_never_fid_and_empty_when_nothing_looks_like_a_class(dock, qgis_iface, tmp_path):
    gt = dock.ground_truth
    # A GeoPackage lists its fid first: the old default, one class per parcel.
    parcels = write_gpkg(fields_layer(), tmp_path / "parcels.gpkg")
    assert parcels.fields().names()[0] == "fid"
    gt.polygons.setLayer(parcels)
    assert gt.class_field.currentField() == "code"

    owners = QgsVectorLayer("Polygon?crs=EPSG:32633&field=owner:string&field=area:double&field=pid:integer", "owners", "memory")
    QgsProject.instance().addMapLayer(owners)
    gt.polygons.setLayer(owners)
    assert gt.class_field.currentField() == ""
    outcomes = []
    dock.runner.finished.connect(outcomes.append)
    gt.run_button.click()
    assert outcomes == [] and not dock.runner.is_running()
    assert messages(qgis_iface, Qgis.Warning) == [
        bar(f"{GT_TITLE}: Choose the class field: the field that holds each polygon's class (crop, land cover).")]


def squares_layer(n, class_of):
    """``n`` 20 m squares in rows of 25 inside the test AOI, feature i of class ``class_of(i)``."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=crop_code:integer", "squares", "memory")
    x0, y0 = s2_world.AOI_UTM[0], s2_world.AOI_UTM[1]
    features = []
    for i in range(n):
        x, y = x0 + 40 * (i % 25), y0 + 40 * (i // 25)
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x, y, x + 20, y + 20)))
        feature.setAttributes([class_of(i)])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_classes_that_look_like_ids_or_exceed_255_are_warned_in_the_bar_and_the_log(dock, qgis_iface, satplugin_log):
    gt = dock.ground_truth
    # A sensible class field: 3 classes over 4 parcels, no warning.
    gt.polygons.setLayer(fields_layer())
    gt.class_field.setField("code")
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    assert outcome.results["CLASSES"] == 3
    assert "3 classes from 4 polygons" in dock.status.text()
    assert messages(qgis_iface, Qgis.Warning) == []

    # The parcel id as class field: 4 polygons with 4 classes may be a few fields of 4 crops, no warning;
    # 12 polygons with 12 classes look like ids.
    gt.class_field.setField("pid")
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    assert outcome.results["CLASSES"] == 4 and messages(qgis_iface, Qgis.Warning) == []
    gt.polygons.setLayer(squares_layer(12, lambda i: 100 + i))
    gt.class_field.setField("crop_code")
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    assert outcome.results["CLASSES"] == 12
    one_per_parcel = class_count_warning(12, 12, "crop_code")
    assert "gives every one of the 12 polygons its own class; it looks like an id field" in one_per_parcel
    assert messages(qgis_iface, Qgis.Warning) == [bar(f"{GT_TITLE}: {one_per_parcel}")]

    # 260 classes over 520 squares: not one per parcel, but more than a byte holds.
    gt.polygons.setLayer(squares_layer(520, lambda i: 1 + i // 2))
    assert gt.class_field.currentField() == "crop_code"
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    assert outcome.results["CLASSES"] == 260
    too_many = class_count_warning(260, 520, "crop_code")
    assert "more than 255" in too_many
    assert messages(qgis_iface, Qgis.Warning) == [bar(f"{GT_TITLE}: {one_per_parcel}"), bar(f"{GT_TITLE}: {too_many}")]
    # The log panel has each warning at Warning level, and the algorithm's own log has it too.
    warnings = [text for level, text in satplugin_log if level == Qgis.Warning]
    assert warnings == [f"{GT_TITLE}: {one_per_parcel}", f"{GT_TITLE}: {too_many}"]
    assert too_many in outcome.log


def test_a_failed_ground_truth_leaves_no_empty_run_folder(dock, qgis_iface, tmp_path):
    """The page makes the run's folder for the outputs; a run that fails (a NULL class) writes nothing
    into it, and the folder goes again. A folder something was written into stays."""
    gt = dock.ground_truth
    dock.folder.setFilePath(str(tmp_path / "work"))
    layer = squares_layer(3, lambda i: None if i == 1 else 5)
    gt.polygons.setLayer(layer)
    gt.class_field.setField("crop_code")
    outcome = run_step(dock, gt)
    assert outcome.status == "failed" and "no class value (NULL)" in outcome.error
    assert list((tmp_path / "work").iterdir()) == []
    gt.polygons.setLayer(squares_layer(3, lambda i: 5))
    gt.class_field.setField("crop_code")
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    (folder,) = (tmp_path / "work").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["class.tif", "classes.csv", "conflict.tif", "parcel_id.tif"]


def test_with_no_work_folder_the_outputs_go_to_a_lasting_folder_and_the_dock_says_where(
        dock, qgis_iface, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))  # no user-dirs.dirs: ~/Documents
    dock.folder.setFilePath("")
    dock._show_default_folder()  # as when the dock opens with this home (set after it was built)
    expected = home / "Documents" / "satplugin"
    assert dock.folder.lineEdit().placeholderText() == f"Default: {expected}"

    gt = dock.ground_truth
    gt.polygons.setLayer(fields_layer())
    gt.class_field.setField("code")
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    written = Path(outcome.results["OUTPUT_CLASS"])
    assert written.parent.parent == expected and written.is_file()
    said = (f"No work folder set: the outputs are written to {expected}. "
            "Choose a work folder at the top of the dock to change it.")
    assert messages(qgis_iface, Qgis.Info) == [bar(said)]
    assert run_step(dock, gt).status == "success"
    assert messages(qgis_iface, Qgis.Info) == [bar(said)]  # said once, not on every run

    # A home without a Documents folder: the home folder itself.
    bare_home = tmp_path / "bare_home"
    bare_home.mkdir()
    monkeypatch.setenv("HOME", str(bare_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(bare_home / ".config"))
    dock._show_default_folder()
    assert dock.folder.lineEdit().placeholderText() == f"Default: {bare_home / 'satplugin'}"

    # Once the project is saved, next to it; the dock follows the save.
    project_file = tmp_path / "fields" / "fields.qgs"
    project_file.parent.mkdir()
    assert QgsProject.instance().write(str(project_file))
    beside = project_file.parent / "satplugin_outputs"
    assert dock.folder.lineEdit().placeholderText() == f"Default: {beside}"
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    assert Path(outcome.results["OUTPUT_CLASS"]).parent.parent == beside
    assert messages(qgis_iface, Qgis.Info)[-1] == bar(said.replace(str(expected), str(beside)))


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_the_logged_command_replays_the_step_in_the_python_console(dock, tmp_path, satplugin_log):
    import processing
    import qgis.core

    parcels = write_gpkg(fields_layer(), tmp_path / "parcels.gpkg")
    gt = dock.ground_truth
    gt.polygons.setLayer(parcels)
    gt.class_field.setField("code")
    gt.name_field.setField("crop")
    gt.id_field.setField("pid")
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    (line,) = [text for _, text in satplugin_log if text.startswith("processing.run(")]
    call = ast.parse(line, mode="eval").body
    arguments = ast.literal_eval(call.args[1])  # every value a plain literal: the layer as its source
    assert call.args[0].value == "satplugin:rasterizegroundtruth"
    assert arguments["INPUT"] == parcels.source() == f"{tmp_path / 'parcels.gpkg'}|layername=parcels"
    assert (arguments["CLASS_FIELD"], arguments["CLASS_NAME_FIELD"], arguments["ID_FIELD"]) == ("code", "crop", "pid")

    outputs = ("OUTPUT_CLASS", "OUTPUT_ID", "OUTPUT_CONFLICT", "OUTPUT_CLASS_TABLE")
    first = {name: sha256(outcome.results[name]) for name in outputs}
    # Pasted into the console after the outputs are gone (layers removed, files deleted).
    QgsProject.instance().removeMapLayers([l.id() for l in QgsProject.instance().mapLayers().values()
                                           if l.source().startswith(str(Path(outcome.results["OUTPUT_CLASS"]).parent))])
    for name in outputs:
        Path(outcome.results[name]).unlink()
    console = {"processing": processing, **vars(qgis.core)}  # the QGIS console's namespace
    again = eval(line, console)  # noqa: S307 (the line under test)
    assert {name: again[name] for name in outputs} == {name: outcome.results[name] for name in outputs}
    assert {name: sha256(again[name]) for name in outputs} == first
    assert again["CLASSES"] == outcome.results["CLASSES"] == 3
