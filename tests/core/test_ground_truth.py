"""Ground truth end to end on small scenes whose answer is known pixel by pixel."""
import json
import os

import numpy as np
import pytest
import rasterio
import shapely
import shapely.affinity
from shapely.geometry import box

from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.grid import PixelGrid, snapped_grid, utm_epsg_for, utm_grid_for_bounds
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths, run

CRS = "EPSG:32633"
# A 10 x 8 grid of 10 m pixels whose top-left corner is (500000, 5000080).
GRID = PixelGrid.square(CRS, 500000.0, 5000080.0, 10.0, 10, 8)


def px(col0, row0, col1, row1):
    """A box in map coordinates from pixel-space corners (columns, rows down from the top)."""
    return box(500000 + 10 * col0, 5000080 - 10 * row1, 500000 + 10 * col1, 5000080 - 10 * row0)


def rasterize(geometries, class_values, source_crs, grid, outputs, parcel_ids=None, class_names=None,
              log=None, is_canceled=None, progress=None, **options):
    """The step's run on shapely polygons, as a job spec of WKB hex strings."""
    polygons = tuple(None if g is None else shapely.to_wkb(g, hex=True) for g in geometries)
    return run(
        GroundTruthOptions(
            polygons=polygons, class_values=tuple(class_values), source_crs=source_crs, grid=grid, outputs=outputs,
            parcel_ids=None if parcel_ids is None else tuple(parcel_ids),
            class_names=None if class_names is None else tuple(class_names), **options,
        ),
        Feedback(progress=progress, log=log, is_canceled=is_canceled),
    )


def all_outputs(folder):
    return OutputPaths(
        class_raster=folder / "class.tif",
        id_raster=folder / "id.tif",
        coverage_raster=folder / "coverage.tif",
        conflict_raster=folder / "conflict.tif",
        distance_raster=folder / "distance.tif",
        class_table=folder / "classes.csv",
    )


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def burn(tmp_path, geoms, classes, ids=None, **kwargs):
    outputs = all_outputs(tmp_path)
    result = rasterize(geoms, classes, CRS, kwargs.pop("grid", GRID), outputs, parcel_ids=ids, **kwargs)
    return result, {name: read(getattr(outputs, f"{name}_raster")) for name in ("class", "id", "coverage", "conflict", "distance")}


def test_labels_ids_coverage_and_conflicts(tmp_path):
    geoms = [
        px(0, 0, 4, 4),  # class 1, whole pixels
        px(3.5, 0, 7, 4),  # class 2, shares column 3 half-and-half with the first
        px(0, 5, 2.25, 7.5),  # class 3, fractional edges
        px(8, 5, 10, 8),  # class 1, overlaps the next one entirely in column 9
        px(9, 5, 10, 8),  # class 4
    ]
    result, out = burn(tmp_path, geoms, [1, 2, 3, 1, 4], ids=[10, 20, 30, 40, 50])
    cls, ids, cov, conflict = out["class"], out["id"], out["coverage"], out["conflict"]
    assert cls[0, 0] == 1 and ids[0, 0] == 10 and cov[0, 0] == 1.0
    # Column 3: 1.0 from the first polygon, 0.5 from the second: the first wins, mixed classes.
    assert cls[1, 3] == 1 and ids[1, 3] == 10 and cov[1, 3] == 1.0 and conflict[1, 3] == 2
    assert cls[1, 4] == 2 and ids[1, 4] == 20 and conflict[1, 4] == 0
    # Fractional third polygon: column 2 holds 0.25, row 7 holds 0.5 (the threshold, labelled).
    assert cov[5, 1] == 1.0 and cov[5, 2] == 0.0 and cls[5, 2] == 0 and ids[5, 2] == -1
    assert cov[7, 0] == pytest.approx(0.5) and cls[7, 0] == 3
    # Two polygons both cover column 9 wholly: the lower parcel id (40) wins, conflict 2.
    assert ids[6, 9] == 40 and cls[6, 9] == 1 and conflict[6, 9] == 2
    assert ids[6, 8] == 40 and conflict[6, 8] == 0
    assert result.labelled_pixels == int((cls > 0).sum())
    assert result.conflict_pixels[2] == int((conflict == 2).sum()) == 4 + 3
    # Distance: the 4 x 4 block's corner pixel is half a pixel from the edge, the next one in 1.5.
    assert out["distance"][0, 0] == pytest.approx(5.0)
    assert out["distance"][1, 1] == pytest.approx(15.0)
    assert out["distance"][4, 0] == 0.0  # background


def test_conflict_one_for_mixed_classes_without_full_cover(tmp_path):
    # Two polygons meet inside column 2: 0.6 of it class 1, 0.4 class 2.
    geoms = [px(0, 0, 2.6, 2), px(2.6, 0, 5, 2)]
    _, out = burn(tmp_path, geoms, [1, 2])
    assert out["conflict"][0, 2] == 1 and out["class"][0, 2] == 1
    assert out["coverage"][0, 2] == pytest.approx(0.6)
    same_class = burn(tmp_path / "x" if (tmp_path / "x").mkdir() is None else None, geoms, [1, 1])[1]
    assert same_class["conflict"][0, 2] == 0


def test_feature_order_does_not_change_any_output(tmp_path):
    rng = np.random.default_rng(3)
    geoms = [
        shapely.convex_hull(shapely.MultiPoint(rng.uniform([500000, 5000000], [500100, 5000080], (6, 2))))
        for _ in range(12)
    ]
    classes = rng.integers(1, 4, 12).tolist()
    ids = list(range(100, 112))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, first = burn(tmp_path / "a", geoms, classes, ids)
    order = rng.permutation(12)
    _, second = burn(tmp_path / "b", [geoms[i] for i in order], [classes[i] for i in order], [ids[i] for i in order])
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert (first["conflict"] > 0).any(), "the scene should have overlaps to make the test meaningful"


def test_strip_size_does_not_change_outputs(tmp_path):
    grid = PixelGrid.square(CRS, 500000.0, 5003000.0, 10.0, 40, 300)
    rng = np.random.default_rng(5)
    centres = rng.uniform([500000, 5000000], [500400, 5003000], (40, 2))
    geoms = list(shapely.buffer(shapely.points(centres), rng.uniform(10, 200, 40), quad_segs=3))
    classes = rng.integers(1, 5, 40).tolist()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, one_strip = burn(tmp_path / "a", geoms, classes, grid=grid, strip_rows=512)
    _, many = burn(tmp_path / "b", geoms, classes, grid=grid, strip_rows=128)
    for name in one_strip:
        np.testing.assert_array_equal(one_strip[name], many[name], err_msg=name)


def test_one_thread_writes_every_raster_so_two_runs_under_a_full_cache_give_the_same_bytes(tmp_path, monkeypatch):
    """GDAL's block cache flushes dirty tiles when it is full, from whichever thread needs room:
    with writes from two threads, the order of tiles in a file, so its bytes, depended on timing."""
    import hashlib
    import threading

    from satplugin.qgis_satplugin.core import gdal_cache
    from satplugin.qgis_satplugin.core.ground_truth import writer
    from satplugin.qgis_satplugin.core.ground_truth.distance import DISTANCE_CHUNK_ROWS

    monkeypatch.setattr(gdal_cache, "GDAL_CACHE_MB", 1)  # a cache of a few tiles: flushed all the time
    writers = []
    real_write_rows = writer.write_rows

    def recorded(dataset, row0, values):
        writers.append((threading.get_ident(), dataset.descriptions[0], row0))
        real_write_rows(dataset, row0, values)

    monkeypatch.setattr(writer, "write_rows", recorded)
    grid = PixelGrid.square(CRS, 500000.0, 5015000.0, 10.0, 300, 1500)  # several distance chunks
    rng = np.random.default_rng(8)
    centres = rng.uniform([500000, 5000000], [503000, 5015000], (400, 2))
    geoms = list(shapely.buffer(shapely.points(centres), rng.uniform(10, 300, 400), quad_segs=3))
    classes = rng.integers(1, 5, 400).tolist()
    digests = []
    for run_name in ("a", "b"):
        (tmp_path / run_name).mkdir()
        writers.clear()
        burn(tmp_path / run_name, geoms, classes, grid=grid, strip_rows=64)
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in (tmp_path / run_name).iterdir()})
        assert len({thread for thread, _, _ in writers}) == 1 and writers[0][0] != threading.get_ident()
        # The distance rows come in chunks of DISTANCE_CHUNK_ROWS; every other raster in strips of 64.
        assert [row0 for _, name, row0 in writers if name == "distance_m"] == list(range(0, 1500, DISTANCE_CHUNK_ROWS))
        assert [row0 for _, name, row0 in writers if name == "parcel_id"] == list(range(0, 1500, 64))
    assert digests[0] == digests[1]


def test_progress_moves_by_strip_on_one_scale(tmp_path):
    grid = PixelGrid.square(CRS, 500000.0, 5003000.0, 10.0, 40, 300)
    seen = []
    rasterize([box(500000, 5000000, 500400, 5003000)], [1], CRS, grid, OutputPaths(class_raster=tmp_path / "c.tif"),
              strip_rows=128, progress=seen.append)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_text_classes_map_to_sorted_ids_and_table(tmp_path):
    geoms = [px(0, 0, 2, 2), px(3, 0, 5, 2), px(6, 0, 9, 2)]
    outputs = OutputPaths(class_raster=tmp_path / "c.tif", class_table=tmp_path / "t.json")
    result = rasterize(geoms, ["wheat", "barley", "wheat"], CRS, GRID, outputs)
    table = json.loads((tmp_path / "t.json").read_text())
    assert [(r["class_id"], r["value"], r["pixel_count"], r["parcel_count"]) for r in table] == [
        (0, 0, 80 - 14, 0),
        (1, "barley", 4, 1),
        (2, "wheat", 10, 2),
    ]
    assert result.class_table.ids == {"barley": 1, "wheat": 2}
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert ds.descriptions == ("class",)
        assert ds.nodata == 255
        assert json.loads(ds.tags(1)["CLASS_TABLE"])[2]["pixel_count"] == 10


def test_shared_parcel_ids_and_class_zero_are_said_in_the_log(tmp_path):
    """Allowed, but they change what the rasters mean: an id given to two crops, pieces of one parcel,
    polygons of class 0 (the background), which still win the pixels they cover."""
    geoms = [px(0, 0, 2, 2), px(3, 0, 5, 2), px(6, 0, 8, 2), px(8, 0, 10, 2), px(0, 3, 6, 8), px(1, 4, 3, 6)]
    lines = []
    result, out = burn(tmp_path, geoms, ["wheat", "maize", "rye", "rye", "wheat", "maize"], ids=[6, 6, 7, 7, 8, 9],
                       log=lines.append)
    assert ("Warning: 1 parcel ids are each given to polygons of different classes (6: maize, wheat). Their pixels "
            "share one id in the id raster, so per-parcel series and exports keyed on it mix those classes; give each "
            "parcel its own id (or leave ID_FIELD empty to number the polygons).") in lines
    assert "1 parcel ids are each given to several polygons of one class (such as 7): each is taken as one parcel in pieces." in lines
    assert (out["id"][0, :5] == [6, 6, -1, 6, 6]).all() and result.n_rasterized == 6
    # Integer classes with a 0: background where it wins, the id kept; the polygon inside it loses its pixels.
    lines.clear()
    _, out = burn(tmp_path, [px(0, 0, 6, 6), px(1, 1, 3, 3)], [0, 9], ids=[1, 2], log=lines.append)
    assert [line for line in lines if "class 0" in line] == [
        "Warning: 1 polygons have class 0, which is the class raster's background: their pixels are labelled "
        "background (the id raster keeps their parcel ids) and, as any polygon does, they win the pixels they cover "
        "most from polygons that overlap them. Filter them out if they are not meant as background."]
    assert not any("parcel ids are each given" in line for line in lines)
    assert (out["class"][:6, :6] == 0).all() and (out["id"][:6, :6] == 1).all()
    # Nothing to say: no line.
    lines.clear()
    burn(tmp_path, [px(0, 0, 2, 2), px(3, 0, 5, 2)], [1, 2], ids=[1, 1 + 1], log=lines.append)
    assert not any("parcel ids are each given" in line or "class 0" in line for line in lines)


def test_min_coverage_threshold(tmp_path):
    geoms = [px(0, 0, 1.3, 1)]
    outputs = OutputPaths(class_raster=tmp_path / "c.tif", coverage_raster=tmp_path / "v.tif")
    rasterize(geoms, [7], CRS, GRID, outputs, min_coverage=0.25)
    assert read(tmp_path / "c.tif")[0, :3].tolist() == [7, 7, 0]
    assert read(tmp_path / "v.tif")[0, 1] == pytest.approx(0.3)
    rasterize(geoms, [7], CRS, GRID, outputs, min_coverage=0.35)
    assert read(tmp_path / "c.tif")[0, :3].tolist() == [7, 0, 0]
    assert read(tmp_path / "v.tif")[0, 1] == 0.0


def test_invalid_geometry_is_repaired_and_counted(tmp_path):
    bowtie = shapely.Polygon([(500000, 5000080), (500040, 5000040), (500040, 5000080), (500000, 5000040)])
    assert not bowtie.is_valid
    messages = []
    outputs = OutputPaths(class_raster=tmp_path / "c.tif", coverage_raster=tmp_path / "v.tif")
    result = rasterize([bowtie], [1], CRS, GRID, outputs, log=messages.append, min_coverage=0.0)
    assert result.n_repaired == 1
    assert any("Repaired 1 invalid" in m for m in messages)
    # The repaired bow-tie is two triangles of 400 m2 each: 800 m2 = 8 pixels of cover.
    assert read(tmp_path / "v.tif").sum() == pytest.approx(8.0)


def test_a_large_layer_checked_in_two_threads_finds_the_invalid_polygons_of_both_halves(tmp_path, monkeypatch):
    from satplugin.qgis_satplugin.core.ground_truth import polygons

    monkeypatch.setattr(polygons, "THREADED_MIN", 4)  # the threaded check, on a small scene
    bowtie = shapely.Polygon([(500000, 5000080), (500040, 5000040), (500040, 5000080), (500000, 5000040)])
    layer = [bowtie, px(5, 0, 6, 1), px(6, 0, 7, 1), px(7, 0, 8, 1), px(5, 5, 6, 6), px(6, 5, 7, 6), shapely.affinity.translate(bowtie, 0, -40)]
    result = rasterize(layer, [1, 2, 2, 2, 2, 2, 3], CRS, GRID, OutputPaths(coverage_raster=tmp_path / "v.tif"), min_coverage=0.0)
    assert result.n_repaired == 2  # the first polygon and the last, one in each half
    # Two repaired bow-ties of 8 pixels of cover each, and five whole pixels.
    assert read(tmp_path / "v.tif").sum() == pytest.approx(21.0)


def test_reprojected_polygons_match_polygons_given_in_the_grid_crs(tmp_path):
    from pyproj import Transformer

    utm = px(1.3, 1.1, 6.7, 5.9)
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lonlat = shapely.transform(utm.segmentize(1.0), lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))
    outputs = OutputPaths(coverage_raster=tmp_path / "a.tif")
    rasterize([utm], [1], CRS, GRID, outputs)
    expected = read(tmp_path / "a.tif")
    rasterize([lonlat], [1], "EPSG:4326", GRID, outputs)
    np.testing.assert_allclose(read(tmp_path / "a.tif"), expected, atol=1e-4)


def test_georeferencing_and_metadata_of_outputs(tmp_path):
    burn(tmp_path, [px(0, 0, 3, 3)], [1])
    for name, dtype, nodata in (
        ("class", "uint8", 255),
        ("id", "int32", -1),
        ("coverage", "float32", -1),
        ("conflict", "uint8", 255),
        ("distance", "float32", -1),
    ):
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            assert ds.crs.to_epsg() == 32633
            assert tuple(ds.transform)[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 5000080.0)
            assert (ds.width, ds.height) == (10, 8)
            assert ds.dtypes[0] == dtype and ds.nodata == nodata
            assert ds.descriptions[0]
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


@pytest.mark.parametrize(
    "geoms, classes, message",
    [
        ([], [], "no polygons to rasterize"),
        ([shapely.Point(500000, 5000000)], [1], "must contain polygons"),
        ([box(0, 0, 10, 10)], [1], "None of the 1 polygons overlaps the grid"),
        ([px(0, 0, 1, 1)], [1.5], "must hold integers or text"),
        ([px(0, 0, 1, 1)], [70000], "Integer class values must lie in 0..65534"),
        ([px(0, 0, 1, 1)], [None], "no class value"),
    ],
)
def test_bad_input_gives_one_clear_error_and_no_files(tmp_path, geoms, classes, message):
    with pytest.raises(SatPluginError, match=message):
        rasterize(geoms, classes, CRS, GRID, all_outputs(tmp_path))
    assert os.listdir(tmp_path) == []


def test_too_many_text_classes(tmp_path):
    n = 65535
    geoms = [px(0, 0, 1, 1)] * n
    with pytest.raises(SatPluginError, match="65535 distinct text values"):
        rasterize(geoms, [f"c{i}" for i in range(n)], CRS, GRID, all_outputs(tmp_path))


def test_unwritable_folder(tmp_path):
    with pytest.raises(SatPluginError, match="does not exist"):
        rasterize([px(0, 0, 1, 1)], [1], CRS, GRID, OutputPaths(class_raster=tmp_path / "no" / "c.tif"))


def test_cancel_keeps_previous_outputs_and_leaves_no_partial_file(tmp_path):
    outputs = OutputPaths(class_raster=tmp_path / "c.tif")
    rasterize([px(0, 0, 2, 2)], [3], CRS, GRID, outputs)
    before = (tmp_path / "c.tif").read_bytes()
    with pytest.raises(Canceled):
        rasterize([px(0, 0, 5, 5)], [4], CRS, GRID, outputs, is_canceled=lambda: True)
    assert (tmp_path / "c.tif").read_bytes() == before
    assert os.listdir(tmp_path) == ["c.tif"]


def test_snapped_grid_is_on_the_sentinel2_60m_lattice():
    grid = snapped_grid((500013.0, 4999950.5, 500377.0, 5000101.0), CRS, 2.5)
    assert grid.x_min == 499980.0 and grid.y_max == 5000160.0
    assert grid.x_min % 60 == 0 and grid.y_max % 60 == 0
    assert grid.x_max >= 500377.0 and grid.y_min <= 4999950.5
    assert (grid.width, grid.height) == (159, 84)


def test_utm_zone_of_a_lambert93_extent():
    assert utm_epsg_for(15.2, 46.0) == 32633
    assert utm_epsg_for(-8.0, -33.0) == 32729
    grid = utm_grid_for_bounds((857004.0, 6521512.0, 860958.0, 6525466.0), "EPSG:2154", 10.0)
    assert grid.crs == "EPSG:32631"  # about 5° E: zone 31 (0° to 6° E)
    assert grid.x_min % 60 == 0 and grid.y_max % 60 == 0
