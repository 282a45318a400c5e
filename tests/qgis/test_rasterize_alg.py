"""satplugin:rasterizegroundtruth through QGIS Processing (pytest-qgis, processing.run)."""
import json

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

X0, Y0 = 500040.0, 5000040.0  # a corner on the 60 m lattice


def polygon_layer(rows, crs="EPSG:32633", fields="crop:string&field=pid:integer&field=year:integer"):
    """A memory layer of (wkt, crop, pid, year) rows, added to the project."""
    layer = QgsVectorLayer(f"Polygon?crs={crs}&field={fields}", "fields", "memory")
    features = []
    for wkt, *attrs in rows:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        feature.setAttributes(list(attrs))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


def square(col, row, size, x0=X0, y0=Y0, pixel=10.0):
    x, y = x0 + col * pixel, y0 - row * pixel
    s = size * pixel
    return f"POLYGON(({x} {y}, {x + s} {y}, {x + s} {y - s}, {x} {y - s}, {x} {y}))"


@pytest.fixture
def fields_layer():
    return polygon_layer(
        [
            (square(0, 0, 3), "wheat", 7, 2022),
            (square(4, 0, 2), "barley", 8, 2023),
            (square(0, 4, 2), "maize", 9, 2023),
        ]
    )


def run(params):
    import processing

    return processing.run("satplugin:rasterizegroundtruth", params)


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds


def test_provider_loads_with_icon_groups_and_help(satplugin_provider):
    alg = satplugin_provider.algorithm("rasterizegroundtruth")
    assert satplugin_provider.id() == "satplugin"
    assert not satplugin_provider.icon().isNull()
    assert alg.group() == "3 · Ground truth" and alg.groupId() == "groundtruth"
    assert "qgis_process run satplugin:rasterizegroundtruth" in alg.shortHelpString()
    # The outputs and classes are described once, in the options, and the help shows those words.
    from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths

    for _, text in OutputPaths.help_lines() + GroundTruthOptions.help_lines()[1:2]:
        assert text in alg.shortHelpString()
    assert "OUTPUT_DISTANCE (metres from the pixel centre to the parcel edge" in alg.shortHelpString()
    names = [p.name() for p in alg.parameterDefinitions()]
    for name in ("INPUT", "CLASS_FIELD", "ID_FIELD", "FILTER", "REFERENCE", "EXTENT", "TARGET_CRS", "PIXEL_SIZE",
                 "MIN_COVERAGE", "OUTPUT_CLASS", "OUTPUT_ID", "OUTPUT_COVERAGE", "OUTPUT_CONFLICT",
                 "OUTPUT_DISTANCE", "OUTPUT_CLASS_TABLE"):
        assert name in names


def test_text_classes_filter_and_id_field(satplugin_provider, fields_layer, tmp_path):
    result = run(
        {
            "INPUT": fields_layer,
            "CLASS_FIELD": "crop",
            "ID_FIELD": "pid",
            "FILTER": '"year" = 2023',
            "PIXEL_SIZE": 10,
            "OUTPUT_CLASS": str(tmp_path / "class.tif"),
            "OUTPUT_ID": str(tmp_path / "id.tif"),
            "OUTPUT_CLASS_TABLE": str(tmp_path / "classes.json"),
        }
    )
    assert result["RASTERIZED_FEATURES"] == 2 and result["LABELLED_PIXELS"] == 8
    classes, ds = read(result["OUTPUT_CLASS"])
    ids, _ = read(result["OUTPUT_ID"])
    # Grid: the filtered polygons' extent in UTM 33N, snapped to 60 m.
    assert ds.crs.to_epsg() == 32633 and ds.transform.c % 60 == 0 and ds.transform.f % 60 == 0
    table = {row["value"]: row for row in json.loads((tmp_path / "classes.json").read_text())}
    assert set(table) == {0, "barley", "maize"}  # wheat (2022) was filtered out
    assert table["barley"]["class_id"] == 1 and table["maize"]["class_id"] == 2
    assert table["barley"]["pixel_count"] == 4 and table["maize"]["pixel_count"] == 4
    assert sorted(np.unique(ids).tolist()) == [-1, 8, 9]
    assert (classes == 1).sum() == 4 and set(ids[classes == 1].tolist()) == {8}


def test_selected_features_only(satplugin_provider, fields_layer, tmp_path):
    fields_layer.selectByExpression('"crop" = \'wheat\'')
    result = run(
        {
            "INPUT": QgsProcessingFeatureSourceDefinition(fields_layer.id(), selectedFeaturesOnly=True),
            "CLASS_FIELD": "crop",
            "OUTPUT_CLASS": str(tmp_path / "class.tif"),
        }
    )
    classes, ds = read(result["OUTPUT_CLASS"])
    assert result["RASTERIZED_FEATURES"] == 1
    assert (classes == 1).sum() == 9 and (ds.width, ds.height) == (3, 3)


def test_reference_grid_is_taken_exactly(satplugin_provider, fields_layer, tmp_path):
    reference = tmp_path / "reference.tif"
    transform = rasterio.transform.Affine(5.0, 0, X0 - 7.5, 0, -5.0, Y0 + 2.5)
    with rasterio.open(reference, "w", driver="GTiff", width=13, height=11, count=1, dtype="uint16",
                       crs="EPSG:32633", transform=transform) as ds:
        ds.write(np.zeros((1, 11, 13), dtype="uint16"))
    result = run(
        {
            "INPUT": fields_layer,
            "CLASS_FIELD": "crop",
            "REFERENCE": str(reference),
            "MIN_COVERAGE": 0,
            "OUTPUT_COVERAGE": str(tmp_path / "coverage.tif"),
        }
    )
    coverage, ds = read(result["OUTPUT_COVERAGE"])
    assert ds.transform.almost_equals(transform) and (ds.width, ds.height) == (13, 11)
    # The wheat square starts 1.5 pixels right and half a pixel down of the grid corner.
    assert coverage[0, 1] == pytest.approx(0.25) and coverage[1, 1] == pytest.approx(0.5) and coverage[2, 2] == 1.0
    # Inside the grid: wheat 30 x 30 m, barley cut to 17.5 x 20 m, maize cut to 20 x 12.5 m.
    assert coverage.sum() * 25.0 == pytest.approx(900 + 350 + 250, rel=1e-6)


def test_extent_target_crs_and_fine_pixels(satplugin_provider, fields_layer, tmp_path):
    result = run(
        {
            "INPUT": fields_layer,
            "CLASS_FIELD": "crop",
            "EXTENT": f"{X0},{X0 + 60},{Y0 - 60},{Y0} [EPSG:32633]",
            "TARGET_CRS": "EPSG:32633",
            "PIXEL_SIZE": 2.5,
            "OUTPUT_CLASS": str(tmp_path / "class.tif"),
        }
    )
    classes, ds = read(result["OUTPUT_CLASS"])
    assert (ds.width, ds.height) == (24, 24) and ds.res == (2.5, 2.5)
    assert (ds.transform.c, ds.transform.f) == (X0, Y0)
    assert (classes == 3).sum() == 144  # wheat: 30 m x 30 m = 144 pixels of 2.5 m
    layer = QgsRasterLayer(result["OUTPUT_CLASS"], "class")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32633"


def test_polygons_in_another_crs_are_reprojected(satplugin_provider, tmp_path):
    layer = polygon_layer([("POLYGON((15.0 45.0, 15.002 45.0, 15.002 45.002, 15.0 45.002, 15.0 45.0))", "a", 1, 1)],
                          crs="EPSG:4326")
    result = run({"INPUT": layer, "CLASS_FIELD": "crop", "PIXEL_SIZE": 10, "OUTPUT_CLASS": str(tmp_path / "c.tif")})
    classes, ds = read(result["OUTPUT_CLASS"])
    assert ds.crs.to_epsg() == 32633  # 15° E lies in UTM zone 33
    # About 158 m x 222 m: between 300 and 400 pixels of 100 m2.
    assert 300 < (classes == 1).sum() < 400


@pytest.mark.parametrize(
    "params, message",
    [
        ({"FILTER": '"year" = 1999'}, "no polygons to rasterize"),
        ({"CLASS_FIELD": "nope"}, "no field named 'nope'"),
        ({"ID_FIELD": "crop"}, "not an integer field"),
        ({"FILTER": '"year" = = 2'}, "FILTER is not a valid expression"),
        ({"EXTENT": "0,10,0,10 [EPSG:32633]", "TARGET_CRS": "EPSG:32633"}, "None of the 3 polygons overlaps the grid"),
    ],
)
def test_bad_input_is_one_clear_error(satplugin_provider, fields_layer, tmp_path, params, message):
    base = {"INPUT": fields_layer, "CLASS_FIELD": "crop", "OUTPUT_CLASS": str(tmp_path / "c.tif")}
    with pytest.raises(QgsProcessingException, match=message):
        run({**base, **params})
    assert list(tmp_path.iterdir()) == []


def test_line_layer_is_refused(satplugin_provider, tmp_path):
    lines = QgsVectorLayer("LineString?crs=EPSG:32633&field=crop:string", "lines", "memory")
    feature = QgsFeature(lines.fields())
    feature.setGeometry(QgsGeometry.fromWkt(f"LINESTRING({X0} {Y0}, {X0 + 50} {Y0 - 50})"))
    feature.setAttributes(["a"])
    lines.dataProvider().addFeatures([feature])
    with pytest.raises(QgsProcessingException):
        run({"INPUT": lines, "CLASS_FIELD": "crop", "OUTPUT_CLASS": str(tmp_path / "c.tif")})
    assert list(tmp_path.iterdir()) == []


def test_real_lulc_through_processing_matches_core(satplugin_provider, real_data, tmp_path):
    """The same burn through QGIS (any provider: here OGR) as through the core."""
    from satplugin.qgis_satplugin.core.grid import PixelGrid
    from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths, run as run_ground_truth
    import geopandas as gpd

    gpkg = real_data / "slovenia_s2_l1c" / "lulc_polygons.gpkg"
    scene = real_data / "slovenia_s2_l1c" / "scene_0.tif"
    result = run(
        {
            "INPUT": str(gpkg),
            "CLASS_FIELD": "LULC_ID",
            "CLASS_NAME_FIELD": "LULC_NAME",
            "REFERENCE": str(scene),
            "OUTPUT_CLASS": str(tmp_path / "class.tif"),
            "OUTPUT_CLASS_TABLE": str(tmp_path / "classes.csv"),
        }
    )
    via_qgis, ds = read(result["OUTPUT_CLASS"])
    with rasterio.open(scene) as ref:
        assert ds.transform.almost_equals(ref.transform) and ds.shape == ref.shape
        grid = PixelGrid.from_transform(ref.crs.to_wkt(), ref.transform, ref.width, ref.height)
    layer = gpd.read_file(gpkg)
    import shapely

    run_ground_truth(GroundTruthOptions(
        polygons=tuple(shapely.to_wkb(np.asarray(layer.geometry), hex=True).tolist()),
        class_values=tuple(layer["LULC_ID"].tolist()), source_crs="EPSG:32633", grid=grid,
        outputs=OutputPaths(class_raster=tmp_path / "core.tif"), parcel_ids=tuple(range(1, len(layer) + 1))))
    via_core, _ = read(tmp_path / "core.tif")
    # Feature ids from OGR are 1-based rows, the same ids the core run used: identical rasters.
    np.testing.assert_array_equal(via_qgis, via_core)
    assert "forest" in (tmp_path / "classes.csv").read_text()


class _Feedback:
    """A QgsProcessingFeedback that keeps the warnings the algorithm reports."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class Keeping(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.errors = []

            def reportError(self, error, fatalError=False):  # noqa: N802 (QGIS API)
                self.errors.append(error)
                super().reportError(error, fatalError)

        return Keeping()


def test_an_id_like_class_field_is_warned_about(satplugin_provider, fields_layer, tmp_path):
    import processing

    feedback = _Feedback()
    result = processing.run(
        "satplugin:rasterizegroundtruth",
        {"INPUT": fields_layer, "CLASS_FIELD": "pid", "OUTPUT_CLASS": str(tmp_path / "c.tif")},
        feedback=feedback,
    )
    assert result["CLASSES"] == 3 and result["RASTERIZED_FEATURES"] == 3
    assert feedback.errors == []  # 3 fields of 3 crops are not a sign of an id field
    from satplugin.processing_algs.rasterize_ground_truth import class_count_warning

    assert class_count_warning(9, 9, "pid") is None
    assert class_count_warning(10, 10, "pid") == (
        "CLASS_FIELD 'pid' gives every one of the 10 polygons its own class; it looks like an id field. "
        "Choose the field that holds the crop or land-cover class."
    )
    feedback = _Feedback()
    result = processing.run(
        "satplugin:rasterizegroundtruth",
        {"INPUT": fields_layer, "CLASS_FIELD": "year", "OUTPUT_CLASS": str(tmp_path / "c2.tif")},
        feedback=feedback,
    )
    assert result["CLASSES"] == 2 and feedback.errors == []
    assert "has 300 classes, more than 255" in class_count_warning(300, 1000, "crop")


def test_a_plain_file_read_by_the_engine_gives_what_qgis_reads(satplugin_provider, tmp_path):
    """INPUT a whole GeoPackage: the engine reads it (PolygonFile); with a FILTER, QGIS reads it. Same bytes."""
    import hashlib

    import geopandas as gpd
    import pandas as pd
    import shapely

    bow_tie = shapely.Polygon([(X0, Y0), (X0 + 40, Y0 - 40), (X0 + 40, Y0), (X0, Y0 - 40)])  # invalid: repaired
    geoms = [shapely.box(X0 + 50, Y0 - 30, X0 + 95, Y0 - 5), bow_tie, None,
             shapely.box(X0 + 5, Y0 - 95, X0 + 33, Y0 - 52), shapely.box(X0 + 60, Y0 - 90, X0 + 99, Y0 - 61)]
    frame = gpd.GeoDataFrame(
        {"crop": ["wheat", "barley", "maize", "oats", "wheat"], "code": pd.array([3, 4, 5, 7, 3], dtype="Int64"),
         "gap": pd.array([3, None, 5, 7, 3], dtype="Int64"),
         "pid": [10, 11, 12, 13, 14], "name": ["Wheat", "Barley", "Maize", None, "Wheat"]},
        geometry=geoms, crs="EPSG:32633")
    gpkg = tmp_path / "fields.gpkg"
    frame.to_file(gpkg, driver="GPKG", layer="fields")
    outputs = {"OUTPUT_CLASS": "class.tif", "OUTPUT_ID": "id.tif", "OUTPUT_COVERAGE": "coverage.tif",
               "OUTPUT_CONFLICT": "conflict.tif", "OUTPUT_CLASS_TABLE": "classes.csv"}
    for class_field, id_field in (("crop", "pid"), ("code", None)):
        answers = {}
        for way, extra in (("file", {}), ("qgis", {"FILTER": "1 = 1"})):
            folder = tmp_path / f"{class_field}-{way}"
            folder.mkdir()
            params = {"INPUT": f"{gpkg}|layername=fields", "CLASS_FIELD": class_field, "CLASS_NAME_FIELD": "name",
                      "PIXEL_SIZE": 5.0, "MIN_COVERAGE": 0.3, **extra,
                      **{k: str(folder / v) for k, v in outputs.items()}}
            if id_field:
                params["ID_FIELD"] = id_field
            logged = []
            feedback = QgsProcessingFeedback()
            feedback.pushInfo = logged.append
            import processing

            result = processing.run("satplugin:rasterizegroundtruth", params, feedback=feedback)
            assert any("reads the polygons from" in line for line in logged) == (way == "file"), logged
            answers[way] = ({k: result[k] for k in ("LABELLED_PIXELS", "CLASSES", "RASTERIZED_FEATURES", "REPAIRED_GEOMETRIES")},
                            {v: hashlib.sha256((folder / v).read_bytes()).hexdigest() for v in outputs.values()})
        assert answers["file"] == answers["qgis"], class_field
        assert answers["file"][0]["RASTERIZED_FEATURES"] == 4 and answers["file"][0]["REPAIRED_GEOMETRIES"] == 1
    # A NULL class (GDAL hands an integer column with NULLs over as floats) is the same refusal both ways.
    for extra in ({}, {"FILTER": "1 = 1"}):
        with pytest.raises(QgsProcessingException, match="Some features have no class value"):
            run({"INPUT": str(gpkg), "CLASS_FIELD": "gap", "OUTPUT_CLASS": str(tmp_path / "gap.tif"), **extra})


def _temporary_polygon_files():
    from qgis.core import QgsProcessingUtils
    from pathlib import Path

    return sorted(p.name for p in Path(QgsProcessingUtils.tempFolder()).rglob("satplugin-polygons*"))


def test_a_layer_qgis_reads_reaches_the_engine_in_a_temporary_file_it_removes(satplugin_provider, tmp_path):
    """A memory layer: QGIS's writer passes its features on, with their QGIS ids as default parcel ids."""
    before = _temporary_polygon_files()
    layer = polygon_layer([(square(0, 0, 2), 5, 0, 0), (square(6, 6, 1), 9, 0, 0), (square(3, 0, 2), 6, 0, 0),
                           (square(0, 3, 1), 5, 0, 0)],
                          fields="fid:integer&field=pid:integer&field=year:integer")  # a field named like GPKG's FID
    layer.dataProvider().deleteFeatures([2])  # ids 1, 3, 4: a writer that numbers rows afresh would give 1, 2, 3
    result = run({"INPUT": layer, "CLASS_FIELD": "fid", "OUTPUT_CLASS": str(tmp_path / "class.tif"),
                  "OUTPUT_ID": str(tmp_path / "id.tif")})
    classes, _ = read(result["OUTPUT_CLASS"])
    ids, _ = read(result["OUTPUT_ID"])
    assert sorted(f.id() for f in layer.getFeatures()) == [1, 3, 4]
    assert sorted(np.unique(ids).tolist()) == [-1, 1, 3, 4]
    assert (ids == 1).sum() == 4 and (ids == 3).sum() == 4 and (ids == 4).sum() == 1
    assert set(classes[ids == 3].tolist()) == {6} and set(classes[ids == 4].tolist()) == {5}
    assert _temporary_polygon_files() == before


def test_an_id_field_with_nulls_is_refused_and_its_temporary_file_removed(satplugin_provider, tmp_path):
    before = _temporary_polygon_files()
    layer = polygon_layer([(square(0, 0, 2), "wheat", 7, 2022), (square(3, 0, 2), "barley", None, 2023)])
    with pytest.raises(QgsProcessingException, match=r"ID_FIELD: some features have no value in 'pid'\."):
        run({"INPUT": layer, "CLASS_FIELD": "crop", "ID_FIELD": "pid", "OUTPUT_CLASS": str(tmp_path / "c.tif")})
    assert list(tmp_path.iterdir()) == []
    assert _temporary_polygon_files() == before


def test_field_names_that_would_clash_in_a_geopackage_work(satplugin_provider, tmp_path):
    """SQLite ignores case, and GDAL names a GeoPackage's geometry column geom: neither matters here."""
    layer = polygon_layer([(square(0, 0, 2), 4, "wheat", 7), (square(3, 0, 2), 5, "barley", 8)],
                          fields="geom:integer&field=Crop:string&field=crop:integer")
    result = run({"INPUT": layer, "CLASS_FIELD": "geom", "CLASS_NAME_FIELD": "Crop", "ID_FIELD": "crop",
                  "FILTER": '"geom" > 0', "OUTPUT_CLASS": str(tmp_path / "class.tif"),
                  "OUTPUT_ID": str(tmp_path / "id.tif"), "OUTPUT_CLASS_TABLE": str(tmp_path / "classes.json")})
    classes, _ = read(result["OUTPUT_CLASS"])
    ids, _ = read(result["OUTPUT_ID"])
    assert (classes == 4).sum() == 4 and (classes == 5).sum() == 4
    assert set(ids[classes == 5].tolist()) == {8}
    names = {row["class_id"]: row["name"] for row in json.loads((tmp_path / "classes.json").read_text())}
    assert names[4] == "wheat" and names[5] == "barley"


@pytest.mark.parametrize("route", ["the engine reads the file", "QGIS reads the features"])
def test_field_names_in_another_case_are_the_layers_fields(satplugin_provider, tmp_path, route):
    """QGIS finds 'lulc_id' for a field 'LULC_ID'; so does the step, whoever reads the file."""
    import geopandas as gpd
    import shapely

    path = tmp_path / "parcels.gpkg"
    frame = gpd.GeoDataFrame({"LULC_ID": [3, 4], "Parcel": [70, 80]},
                             geometry=[shapely.from_wkt(square(0, 0, 2)), shapely.from_wkt(square(3, 0, 3))], crs="EPSG:32633")
    frame.to_file(path, driver="GPKG")
    layer = QgsVectorLayer(str(path), "parcels", "ogr")
    assert layer.isValid()
    params = {"INPUT": layer, "CLASS_FIELD": "lulc_id", "ID_FIELD": "PARCEL", "OUTPUT_CLASS": str(tmp_path / "class.tif"),
              "OUTPUT_ID": str(tmp_path / "id.tif")}
    if route == "QGIS reads the features":
        params["FILTER"] = '"LULC_ID" > 0'
    result = run(params)
    classes, _ = read(result["OUTPUT_CLASS"])
    ids, _ = read(result["OUTPUT_ID"])
    assert (classes == 3).sum() == 4 and (classes == 4).sum() == 9
    assert set(ids[classes == 3].tolist()) == {70} and set(ids[classes == 4].tolist()) == {80}


def test_a_reference_raster_opened_from_its_path_gets_no_sidecar_file(satplugin_provider, fields_layer, tmp_path):
    """QGIS's raster layer computes a histogram for its style, which GDAL would save as reference.tif.aux.xml."""
    import gc

    reference = tmp_path / "inputs" / "reference.tif"
    reference.parent.mkdir()
    transform = rasterio.transform.Affine(10.0, 0, X0, 0, -10.0, Y0)
    with rasterio.open(reference, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint16", crs="EPSG:32633",
                       transform=transform) as ds:
        ds.write(np.arange(192, dtype="uint16").reshape(3, 8, 8))
    result = run({"INPUT": fields_layer, "CLASS_FIELD": "crop", "REFERENCE": str(reference),
                  "OUTPUT_CLASS": str(tmp_path / "class.tif")})
    gc.collect()  # the run's context, and with it the layer, is gone
    assert read(result["OUTPUT_CLASS"])[1].transform.almost_equals(transform)
    assert sorted(p.name for p in reference.parent.iterdir()) == ["reference.tif"]
