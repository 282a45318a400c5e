"""The dock driven as a user would: map extent, search on a loopback STAC API, table, download,
ground truth, export, cancel, project persistence, and a screenshot for the README.

Servers: a STAC API emulator (tests/servers/stac_api.py) whose items point at COGs of the
synthetic world (tests/servers/s2_world.py) behind a range file server that can be slowed
down. Every step runs the real algorithm in a real QgsProcessingAlgRunnerTask.
"""
import ast
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsGraduatedSymbolRenderer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterMinMaxOrigin,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QDate, QPoint, Qt, QTimer
from qgis.PyQt.QtGui import QImage
from qgis.PyQt.QtTest import QTest
from pytest_qgis.utils import wait, wait_until

from tests.conftest import ROOT
from tests.qgis.conftest import stored_basic_auth
from tests.servers import s2_world
from tests.servers.download_checks import assert_only_complete_files
from tests.servers.files import RangeFileServer
from tests.servers.stac_api import StacApiServer

UTC = timezone.utc
# Three acquisitions of one tile and orbit; cloud as the STAC items report it.
ACQUISITIONS = [(datetime(2023, 5, 2, 10, 0, 31, tzinfo=UTC), 12.0, "05.09"),
                (datetime(2023, 6, 11, 10, 0, 31, tzinfo=UTC), 3.0, "05.09"),
                (datetime(2023, 7, 21, 10, 0, 31, tzinfo=UTC), 41.0, "05.09")]
UTM = QgsCoordinateReferenceSystem("EPSG:32633")
SCREENSHOT = ROOT / "docs" / "images" / "dock.png"


class SlowableFileServer(RangeFileServer):
    """A COG server whose every answer can be held back (``delay_s``): a slow network."""

    delay_s = 0.0

    def handle(self, req):
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().handle(req)


@pytest.fixture(scope="module")
def stac_world(tmp_path_factory):
    """A STAC API listing three COG products of the synthetic world, served over HTTP."""
    root = tmp_path_factory.mktemp("dock_cogs")
    with SlowableFileServer(root) as files:
        items = []
        for when, cloud, baseline in ACQUISITIONS:
            _, item = s2_world.make_cog_product(root, when=when, baseline=baseline, asset_base=files.url,
                                                bands=("B02", "B03", "B04", "B08", "SCL"))
            item["properties"]["eo:cloud_cover"] = cloud
            items.append(item)
        with StacApiServer(items) as stac:
            yield stac, files


@pytest.fixture
def dock(qgis_iface, qgis_canvas, qgis_new_project, satplugin_provider, tmp_path):
    from satplugin.qgis_satplugin.gui.dock import SatPluginDock

    qgis_iface.messageBar().clear_messages()
    widget = SatPluginDock(qgis_iface)
    widget.folder.setFilePath(str(tmp_path / "work"))
    widget.resize(480, 1000)
    widget.show()
    yield widget
    widget.runner.cancel()
    wait_until(lambda: not widget.runner.is_running(), timeout_milliseconds=10000)
    widget.shutdown()
    widget.deleteLater()


@pytest.fixture
def satplugin_log():
    """(level, text) of every message logged under the dock's tab while the test runs."""
    logged = []

    def keep(text, tag, level):
        if tag == "satplugin":
            logged.append((level, text))

    log = QgsApplication.messageLog()
    log.messageReceived.connect(keep)
    yield logged
    log.messageReceived.disconnect(keep)


def run_step(dock, page, timeout_s=120):
    """Click the page's Run button and let the event loop run until the task ends."""
    outcomes = []
    dock.runner.finished.connect(outcomes.append)
    try:
        page.run_button.click()
        assert wait_until(lambda: bool(outcomes), timeout_milliseconds=int(timeout_s * 1000)), "the task never ended"
    finally:
        dock.runner.finished.disconnect(outcomes.append)
    return outcomes[0]


def show_aoi_on_canvas(canvas):
    canvas.setDestinationCrs(UTM)
    canvas.setExtent(QgsRectangle(*s2_world.AOI_UTM))
    canvas.refresh()


def fill_search(dock, stac):
    search = dock.search
    search.backend.setCurrentIndex(2)  # STAC API
    search.service_url.setText(stac.url)
    search.start.setDate(QDate(2023, 4, 1))
    search.end.setDate(QDate(2023, 9, 30))
    search.max_cloud.setValue(50)
    search.max_products.setValue(0)
    search.aoi.canvas_button.click()


def fields_layer():
    """Four fields in the AOI (EPSG:32633), two of them overlapping: classes by code, named."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=code:integer&field=crop:string&field=pid:integer",
                           "fields", "memory")
    x0, y0 = s2_world.AOI_UTM[0], s2_world.AOI_UTM[1]
    rows = [  # (x offset, y offset, size m, code, name, pid)
        (700, 100, 400, 1, "wheat", 11),
        (1000, 400, 300, 2, "maize", 12),  # overlaps the wheat field: conflicts
        (200, 600, 300, 3, "sugar beet", 13),
        (900, 800, 250, 2, "maize", 14),
    ]
    features = []
    for dx, dy, size, code, name, pid in rows:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x0 + dx, y0 + dy, x0 + dx + size, y0 + dy + size)))
        feature.setAttributes([code, name, pid])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


def layers_named(prefix):
    return sorted((l for l in QgsProject.instance().mapLayers().values() if l.name().startswith(prefix)),
                  key=lambda l: l.name())


def node_visible(layer):
    return QgsProject.instance().layerTreeRoot().findLayer(layer.id()).isVisible()


def messages(iface, level):
    return iface.messageBar().get_messages(level)


def test_the_whole_chain_from_the_map(dock, stac_world, qgis_iface, qgis_canvas, satplugin_log):
    stac, _ = stac_world
    # 1 · Search, the area being what the map shows.
    show_aoi_on_canvas(qgis_canvas)
    fill_search(dock, stac)
    extent = qgis_canvas.extent()
    assert dock.search.aoi.parameters() == {
        "AOI": f"{extent.xMinimum():.10g},{extent.xMaximum():.10g},{extent.yMinimum():.10g},{extent.yMaximum():.10g} [EPSG:32633]"
    }
    outcome = run_step(dock, dock.search)
    assert outcome.status == "success", outcome.error
    assert outcome.results["PRODUCT_COUNT"] == 3
    assert len(stac.requests_to("/search")) >= 1
    (footprints,) = layers_named("Products 2023-04-01")
    renderer = footprints.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer) and renderer.classAttribute() == "cloud"
    assert [(r.lowerValue(), r.upperValue()) for r in renderer.ranges()] == [(0, 10), (10, 30), (30, 60), (60, 100)]
    assert any("Search products: 3 products found" in m for m in messages(qgis_iface, Qgis.Success))

    # The table: best first (least cloud), every product checked, linked to the layer.
    table = dock.search.table
    assert table.rowCount() == 3
    assert [table.item(r, 3).text() for r in range(3)] == ["3.0", "12.0", "41.0"]
    assert [table.item(r, 1).text()[:10] for r in range(3)] == ["2023-06-11", "2023-05-02", "2023-07-21"]
    assert len(table.checked_feature_ids()) == 3
    table.select_rows([0, 2])
    expected = {table.feature_id(0), table.feature_id(2)}
    assert set(footprints.selectedFeatureIds()) == expected
    chosen = QgsRectangle()
    chosen.setMinimal()
    for feature in footprints.getFeatures(list(expected)):
        chosen.combineExtentWith(feature.geometry().boundingBox())
    to_map = QgsCoordinateTransform(footprints.crs(), UTM, QgsProject.instance())
    assert qgis_canvas.extent().contains(to_map.transformBoundingBox(chosen))  # zoomed to the chosen footprints
    footprints.selectByIds([table.feature_id(1)])  # and a selection on the map selects the row
    assert [i.row() for i in table.selectionModel().selectedRows()] == [1]

    # 2 · Download the two checked products; the search output fed the step.
    assert dock.download.products.currentLayer() is footprints
    table.set_checked([table.feature_id(0), table.feature_id(2)])
    assert "2 product(s) checked" in dock.download.checked_label.text()
    outcome = run_step(dock, dock.download)
    assert outcome.status == "success", outcome.error
    assert outcome.results["DATE_COUNT"] == 2
    assert set(footprints.selectedFeatureIds()) == expected  # what the algorithm was given
    series = Path(outcome.results["OUTPUT_FOLDER"])
    manifest = assert_only_complete_files(series)
    assert sorted(f["datetime"][:10] for f in manifest["files"] if f["kind"] == "image") == ["2023-06-11", "2023-07-21"]
    images = layers_named("20230")
    assert [l.name() for l in images] == ["20230611T100031_S2B_T33TWM", "20230721T100031_S2B_T33TWM"]
    assert [node_visible(l) for l in images] == [True, False]
    for layer in images:
        renderer = layer.renderer()
        assert isinstance(renderer, QgsMultiBandColorRenderer)
        # Band order of the download is B02 B03 B04 B08: true colour is 3, 2, 1.
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)
        assert renderer.minMaxOrigin().limits() == QgsRasterMinMaxOrigin.CumulativeCut
        red = renderer.redContrastEnhancement()
        assert 0 < red.minimumValue() < red.maximumValue() < 10000
    # The download fed the next steps.
    assert dock.export.images.filePath() == str(series)
    assert dock.superres.input.filePath() == str(series)
    assert dock.ground_truth.reference.currentLayer() is images[0]

    # 3 · Ground truth from a polygon layer loaded on the map, chosen in the combo.
    fields = fields_layer()
    gt = dock.ground_truth
    gt.polygons.setLayer(fields)
    gt.class_field.setField("code")
    gt.name_field.setField("crop")
    gt.id_field.setField("pid")
    outcome = run_step(dock, gt)
    assert outcome.status == "success", outcome.error
    assert outcome.results["RASTERIZED_FEATURES"] == 4 and outcome.results["CONFLICT_PIXELS"] > 0
    (classes,) = layers_named("classes")
    (conflicts,) = layers_named("conflicts")
    (ids,) = layers_named("parcel id")
    assert (classes.width(), classes.height()) == (images[0].width(), images[0].height())  # the imagery's grid
    palette = classes.renderer()
    assert isinstance(palette, QgsPalettedRasterRenderer)
    assert [(c.value, c.label) for c in palette.classes()] == [(0, "background"), (1, "wheat"), (2, "maize"), (3, "sugar beet")]
    assert palette.classes()[0].color.alpha() == 0 and all(c.color.alpha() == 255 for c in palette.classes()[1:])
    assert len({c.color.name() for c in palette.classes()[1:]}) == 3
    marks = conflicts.renderer()
    assert isinstance(marks, QgsPalettedRasterRenderer)
    assert [(c.value, c.color.name(), c.color.alpha()) for c in marks.classes()] == [
        (0, "#000000", 0), (1, "#ff8c00", 255), (2, "#e31a1c", 255)]
    assert not node_visible(ids) and node_visible(classes) and node_visible(conflicts)
    assert sorted(dock.export.labels.checked_paths()) == sorted(l.source() for l in (classes, ids, conflicts))

    # 4 · Export the series with those labels.
    dock.export.patch_size.setValue(32)
    dock.export.block.setValue(32)
    outcome = run_step(dock, dock.export)
    assert outcome.status == "success", outcome.error
    dataset = Path(outcome.results["OUTPUT_FOLDER"])
    card = json.loads((dataset / "dataset.json").read_text())
    assert card["n_samples"] == outcome.results["SAMPLE_COUNT"] > 0
    assert card["bands"] == ["B02", "B03", "B04", "B08"] and len(card["dates"]) == 2
    assert card["band_resolution"] == "resample" and dock.export.parameters()["BAND_RESOLUTION"] == 0
    (samples,) = layers_named("samples by split")
    assert samples.featureCount() == outcome.results["SAMPLE_COUNT"]
    split_style = samples.renderer()
    assert isinstance(split_style, QgsCategorizedSymbolRenderer) and split_style.classAttribute() == "split"
    assert [c.value() for c in split_style.categories()] == ["train", "val", "test"]
    assert {f["split"] for f in samples.getFeatures()} <= {"train", "val", "test"}

    # 5 · Super-resolve the same series with the shipped model, on the CPU.
    dock.superres.provider.setCurrentIndex(1)
    outcome = run_step(dock, dock.superres)
    assert outcome.status == "success", outcome.error
    assert outcome.results["PROVIDER_USED"] == "CPU" and outcome.results["SCALE"] == 2
    (sharp,) = layers_named("superres_")
    assert (sharp.width(), sharp.height()) == (2 * images[0].width(), 2 * images[0].height())
    assert sharp.extent() == images[0].extent()
    renderer = sharp.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)
    assert renderer.minMaxOrigin().limits() == QgsRasterMinMaxOrigin.CumulativeCut
    assert messages(qgis_iface, Qgis.Critical) == []

    # Each step logged the Python call that repeats it, with every value a Python literal
    # (layers as their sources, not objects whose repr is not Python).
    calls = [ast.parse(text, mode="eval").body for _, text in satplugin_log if text.startswith("processing.run(")]
    assert [call.args[0].value for call in calls] == [
        "satplugin:searchproducts", "satplugin:downloadproducts", "satplugin:rasterizegroundtruth",
        "satplugin:exportpatches", "satplugin:superresolve"]
    arguments = [ast.literal_eval(call.args[1]) for call in calls]
    assert arguments[1]["PRODUCTS"] == footprints.source() and arguments[2]["INPUT"] == fields.source()
    assert (arguments[0]["START_DATE"], arguments[0]["END_DATE"]) == ("2023-04-01", "2023-09-30")
    assert arguments[2]["REFERENCE"] == images[0].source() and arguments[3]["IMAGES"] == [str(series)]


def test_cancel_mid_download_stops_quickly_and_keeps_nothing(dock, stac_world, qgis_canvas, qgis_iface):
    stac, files = stac_world
    show_aoi_on_canvas(qgis_canvas)
    fill_search(dock, stac)
    assert run_step(dock, dock.search).status == "success"
    outcomes, ticks = [], []
    dock.runner.finished.connect(outcomes.append)
    # The main thread must stay free while the task works: count timer ticks meanwhile.
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: ticks.append(time.monotonic()))
    heartbeat.start(50)
    files.delay_s = 0.4  # every HTTP answer takes 0.4 s: the download takes many seconds
    try:
        dock.download.concurrent.setValue(1)
        before = len(files.requests)
        dock.download.run_button.click()
        assert dock.cancel_button.isEnabled() and not dock.download.run_button.isEnabled()
        assert wait_until(lambda: len(files.requests) >= before + 3, timeout_milliseconds=30000)
        assert not outcomes and dock.runner.is_running()
        assert len(ticks) >= 10  # over a second of download, the event loop kept turning
        progress_before_cancel = dock.progress.value()
        asked = time.monotonic()
        dock.cancel_button.click()
        assert wait_until(lambda: bool(outcomes), timeout_milliseconds=10000)
        stopped_after = time.monotonic() - asked
    finally:
        files.delay_s = 0.0
        heartbeat.stop()
    assert outcomes[0].status == "canceled"
    assert stopped_after < 3.0
    assert dock.status.text() == "Download products: canceled." and dock.progress.value() == 0
    assert progress_before_cancel < 100
    assert any("canceled" in m for m in messages(qgis_iface, Qgis.Warning))
    assert messages(qgis_iface, Qgis.Critical) == []
    # No partial output: no image, no temporary file, nothing added to the map.
    written = sorted(Path(dock.folder.filePath()).glob("series_*"))
    assert len(written) <= 1
    for folder in written:
        assert not list(folder.glob("*.tif")) and not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert layers_named("20230") == []
    assert dock.cancel_button.isEnabled() is False and dock.download.run_button.isEnabled()


def test_area_from_the_selected_polygons_or_a_drawn_rectangle(dock, stac_world, qgis_iface, qgis_canvas):
    stac, _ = stac_world
    show_aoi_on_canvas(qgis_canvas)
    fill_search(dock, stac)
    fields = fields_layer()
    fields.selectByExpression('"crop" = \'maize\'')  # the two maize fields
    qgis_iface.setActiveLayer(fields)
    dock.search.aoi.layer_button.click()
    assert dock.search.aoi.parameters() == {"AOI_LAYER": fields.id()}
    assert dock.search.aoi.summary.text() == "Polygons of 'fields' (2 selected features)"
    outcome = run_step(dock, dock.search)
    assert outcome.status == "success", outcome.error
    # The algorithm took only the selected polygons: every footprint lies within them.
    (footprints,) = layers_named("Products")
    to_map = QgsCoordinateTransform(footprints.crs(), UTM, QgsProject.instance())
    maize = QgsRectangle()
    maize.setMinimal()
    for feature in fields.getSelectedFeatures():
        maize.combineExtentWith(feature.geometry().boundingBox())
    for feature in footprints.getFeatures():
        box = to_map.transformBoundingBox(feature.geometry().boundingBox())
        assert maize.buffered(1.0).contains(box) and box.width() > 0.9 * maize.width()

    # A rectangle dragged on the map with the extent tool, which then hands the map back.
    previous = qgis_canvas.mapTool()
    dock.search.aoi.draw_button.click()
    tool = dock.search.aoi.drawing_tool()
    assert qgis_canvas.mapTool() is tool
    viewport = qgis_canvas.viewport()
    QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, QPoint(100, 120))
    QTest.mouseMove(viewport, QPoint(300, 260))
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, QPoint(300, 260))
    corner_a = qgis_canvas.getCoordinateTransform().toMapCoordinates(100, 120)
    corner_b = qgis_canvas.getCoordinateTransform().toMapCoordinates(300, 260)
    (text,) = dock.search.aoi.parameters().values()
    xmin, xmax, ymin, ymax = (float(v) for v in text.split(" [")[0].split(","))
    assert text.endswith("[EPSG:32633]")
    assert (xmin, xmax) == pytest.approx((corner_a.x(), corner_b.x()), abs=1e-3)
    assert (ymin, ymax) == pytest.approx((corner_b.y(), corner_a.y()), abs=1e-3)
    assert qgis_canvas.mapTool() is previous


def test_bad_input_is_a_message_not_a_run(dock, qgis_iface):
    outcomes = []
    dock.runner.finished.connect(outcomes.append)
    dock.search.run_button.click()  # no area yet
    assert outcomes == [] and not dock.runner.is_running()
    assert any("Set the area of interest first" in m for m in messages(qgis_iface, Qgis.Warning))


def test_a_failing_step_shows_its_error_and_logs_the_details(dock, stac_world, qgis_canvas, qgis_iface, satplugin_log):
    stac, _ = stac_world
    show_aoi_on_canvas(qgis_canvas)
    fill_search(dock, stac)
    dock.search.service_url.setText(stac.url + "/nowhere")  # the emulator answers 404 there
    outcome = run_step(dock, dock.search)
    assert outcome.status == "failed" and "404" in outcome.error
    assert any(outcome.error in m for m in messages(qgis_iface, Qgis.Critical))
    assert any(level == Qgis.Critical and outcome.error in text for level, text in satplugin_log)
    assert dock.status.text().startswith("Search products failed:")


def test_choices_persist_in_the_project_and_only_the_authcfg_id_is_stored(dock, qgis_bot, qgis_iface, tmp_path):
    config_id = stored_basic_auth("cdse (dock test)", "dock-client", "dock-secret-value")
    fields_file = tmp_path / "fields.gpkg"
    memory = fields_layer()
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    assert QgsVectorFileWriter.writeAsVectorFormatV2(memory, str(fields_file), QgsProject.instance().transformContext(),
                                                     options)[0] == QgsVectorFileWriter.NoError
    fields = QgsVectorLayer(f"{fields_file}|layername=fields", "fields on disk", "ogr")
    QgsProject.instance().addMapLayer(fields)
    fields_source = fields.source()  # the layer object goes when the project is reopened

    dock.auth.setConfigId(config_id)
    dock.search.backend.setCurrentIndex(3)
    dock.search.service_url.setText("/data/sentinel2")
    dock.search.aoi.set_extent(QgsRectangle(500430, 5095230, 501910, 5096480), UTM)
    dock.search.start.setDate(QDate(2023, 11, 1))
    dock.search.end.setDate(QDate(2024, 2, 28))
    dock.search.max_cloud.setValue(35.5)
    dock.search.aoi_cloud.setChecked(True)
    dock.ground_truth.polygons.setLayer(fields)
    dock.ground_truth.class_field.setField("crop")
    dock.ground_truth.pixel_size.setValue(2.5)
    dock.download.bands.setCurrentIndex(1)
    dock.export.patch_size.setValue(48)
    dock.export.ratios.setText("0.8,0.1,0.1")
    dock.export.band_resolution.setCurrentIndex(2)  # every band at 10 m, the 20 m ones sharpened
    project_file = tmp_path / "fields.qgs"
    assert QgsProject.instance().write(str(project_file))

    # Change everything, then reopen the project: the saved choices come back.
    dock.auth.setConfigId("")
    dock.search.backend.setCurrentIndex(2)
    dock.search.service_url.setText("")
    dock.search.aoi.set_text("")
    dock.search.max_cloud.setValue(90)
    dock.search.aoi_cloud.setChecked(False)
    dock.export.patch_size.setValue(16)
    dock.export.band_resolution.setCurrentIndex(0)
    qgis_bot.open_project(project_file)
    assert dock.auth.configId() == config_id
    assert dock.search.backend.currentIndex() == 3 and dock.search.service_url.text() == "/data/sentinel2"
    assert dock.search.aoi.parameters() == {"AOI": "500430,501910,5095230,5096480 [EPSG:32633]"}
    assert (dock.search.start.date(), dock.search.end.date()) == (QDate(2023, 11, 1), QDate(2024, 2, 28))
    assert dock.search.max_cloud.value() == 35.5 and dock.search.aoi_cloud.isChecked()
    assert dock.ground_truth.polygons.currentLayer().source() == fields_source
    assert dock.ground_truth.class_field.currentField() == "crop" and dock.ground_truth.pixel_size.value() == 2.5
    assert dock.download.bands.currentIndex() == 1
    assert dock.export.patch_size.value() == 48 and dock.export.ratios.text() == "0.8,0.1,0.1"
    assert dock.export.band_resolution.currentText() == "All bands at 10 m, the 20 m bands sharpened (shipped model)"
    # The project holds the authentication config id, never the secret.
    text = project_file.read_text(encoding="utf-8")
    assert config_id in text and "dock-secret-value" not in text and "dock-client" not in text


def test_screenshot_of_the_dock_with_search_results(dock, stac_world, qgis_canvas):
    stac, _ = stac_world
    show_aoi_on_canvas(qgis_canvas)
    fill_search(dock, stac)
    assert run_step(dock, dock.search).status == "success"
    dock.search.table.select_rows([0])
    # The temporary folder and the loopback port are test noise: show what a user would see.
    dock.folder.setFilePath("/home/me/fields/outputs")
    dock.search.service_url.setText("")
    dock.steps.setCurrentIndex(0)
    dock.resize(480, 1120)  # tall enough for the whole search page, table included
    wait(200)  # let the layout settle
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert dock.grab().save(str(SCREENSHOT))
    image = QImage(str(SCREENSHOT))
    assert (image.width(), image.height()) == (dock.width(), dock.height()) == (480, 1120)
    # Not blank: a real form has text, frames, highlighted rows: many distinct colours.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 3) for y in range(0, image.height(), 3)}
    assert len(colours) > 50
    # The results table is on screen, with its three rows.
    table = dock.search.table
    assert table.isVisible() and table.rowCount() == 3 and table.visibleRegion().boundingRect().height() > 100
