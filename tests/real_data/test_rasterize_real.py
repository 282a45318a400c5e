"""Real parcels on real grids, checked pixel by pixel against shapely's exact areas."""
import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from satplugin.qgis_satplugin.core.grid import PixelGrid, utm_grid_for_bounds
from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths, run


def reference_labels(polys, classes, ids, grid: PixelGrid, rows, cols, min_coverage):
    """Class, id and share per pixel of a window, from shapely intersection areas.

    Also returns a mask of pixels whose two largest shares tie within 1e-6, where the
    winner depends on the tie-break and not on geometry.
    """
    rr, cc = np.meshgrid(np.arange(*rows), np.arange(*cols), indexing="ij")
    x0 = grid.x_min + cc.ravel() * grid.pixel_width
    y1 = grid.y_max - rr.ravel() * grid.pixel_height
    boxes = shapely.box(x0, y1 - grid.pixel_height, x0 + grid.pixel_width, y1)
    tree = shapely.STRtree(polys)
    pix, feat = tree.query(boxes, predicate="intersects")
    share = shapely.area(shapely.intersection(boxes[pix], polys[feat])) / grid.pixel_area
    keep = share > 1e-9
    pix, feat, share = pix[keep], feat[keep], share[keep]
    # Sort by pixel, then share descending, then the tie-break (id, class).
    order = np.lexsort((classes[feat], ids[feat], -share, pix))
    pix, feat, share = pix[order], feat[order], share[order]
    first = np.r_[True, pix[1:] != pix[:-1]]
    n = boxes.size
    best_share = np.zeros(n)
    best_share[pix[first]] = share[first]
    winner = np.full(n, -1)
    winner[pix[first]] = feat[first]
    second = np.zeros(n)
    runner_up = np.r_[False, first[:-1]] & ~first
    second[pix[runner_up]] = share[runner_up]
    tie = (second > 0) & (np.abs(best_share - second) < 1e-6)
    labelled = (winner >= 0) & (best_share >= min_coverage - 1e-6)
    cls = np.where(labelled, classes[np.maximum(winner, 0)], 0)
    pid = np.where(labelled, ids[np.maximum(winner, 0)], -1)
    cov = np.where(labelled, best_share, 0.0)
    near_threshold = np.abs(best_share - min_coverage) < 1e-6
    shape = rr.shape
    return cls.reshape(shape), pid.reshape(shape), cov.reshape(shape), (tie | near_threshold).reshape(shape)


def check_against_reference(folder, polys, classes, ids, grid, window=None, min_coverage=0.5):
    rows, cols = window or ((0, grid.height), (0, grid.width))
    ref_cls, ref_id, ref_cov, ambiguous = reference_labels(polys, classes, ids, grid, rows, cols, min_coverage)
    win = ((rows[0], rows[1]), (cols[0], cols[1]))
    with rasterio.open(folder / "class.tif") as ds:
        got_cls = ds.read(1, window=win)
    with rasterio.open(folder / "id.tif") as ds:
        got_id = ds.read(1, window=win)
    with rasterio.open(folder / "coverage.tif") as ds:
        got_cov = ds.read(1, window=win)
    clear = ~ambiguous
    assert ambiguous.mean() < 0.01, "ties should be rare on real parcels"
    np.testing.assert_array_equal(got_cls[clear], ref_cls[clear])
    np.testing.assert_array_equal(got_id[clear], ref_id[clear])
    np.testing.assert_allclose(got_cov[clear], ref_cov[clear], atol=1e-3)
    # Tied pixels still carry the tied share.
    np.testing.assert_allclose(got_cov[ambiguous & (ref_cov > 0)], ref_cov[ambiguous & (ref_cov > 0)], atol=1e-3)
    return ref_cls


def rasterize(geometries, class_values, source_crs, grid, outputs, parcel_ids):
    """The step's run on shapely polygons, as a job spec of WKB hex strings."""
    return run(GroundTruthOptions(
        polygons=tuple(shapely.to_wkb(np.asarray(geometries), hex=True).tolist()), class_values=tuple(class_values),
        source_crs=source_crs, grid=grid, outputs=outputs, parcel_ids=tuple(parcel_ids)))


def outputs_in(folder):
    return OutputPaths(
        class_raster=folder / "class.tif", id_raster=folder / "id.tif", coverage_raster=folder / "coverage.tif"
    )


def test_slovenia_lulc_onto_scene_0_grid(real_data, tmp_path):
    layer = gpd.read_file(real_data / "slovenia_s2_l1c" / "lulc_polygons.gpkg")
    with rasterio.open(real_data / "slovenia_s2_l1c" / "scene_0.tif") as ds:
        grid = PixelGrid.from_transform(ds.crs.to_wkt(), ds.transform, ds.width, ds.height)
    polys = layer.geometry.values.data if hasattr(layer.geometry.values, "data") else np.asarray(layer.geometry)
    classes = layer["LULC_ID"].to_numpy()
    ids = np.arange(len(layer))  # RABA_ID repeats, so use the row as the parcel id
    result = rasterize(polys, classes.tolist(), "EPSG:32633", grid, outputs_in(tmp_path), parcel_ids=ids.tolist())
    assert result.n_rasterized == 88  # 62 inside plus 26 crossing the edge: none dropped
    ref = check_against_reference(tmp_path, np.asarray(polys), classes, ids, grid)
    assert result.labelled_pixels == int((ref > 0).sum()) > 9000


@pytest.mark.parametrize("pixel_size, window", [(10.0, None), (2.5, ((600, 1000), (500, 900)))])
def test_french_parcels_onto_utm_grids(real_data, tmp_path, pixel_size, window):
    layer = gpd.read_file(real_data / "parcels" / "fr_rpg_lambert93.gpkg")
    grid = utm_grid_for_bounds(tuple(layer.total_bounds), "EPSG:2154", pixel_size)
    assert grid.crs == "EPSG:32631" and grid.x_min % 60 == 0 and grid.y_max % 60 == 0
    crops = layer["code_cultu"].tolist()
    result = rasterize(
        np.asarray(layer.geometry), crops, "EPSG:2154", grid, outputs_in(tmp_path), parcel_ids=layer["id"].tolist()
    )
    assert result.n_rasterized == 193
    assert len(result.class_table.ids) == 24
    # The reference reprojects with geopandas, independently of the plugin's code path.
    utm = layer.to_crs(32631)
    class_ids = np.array([result.class_table.ids[c] for c in crops])
    ref = check_against_reference(tmp_path, np.asarray(utm.geometry), class_ids, layer["id"].to_numpy(), grid, window)
    assert (ref > 0).sum() > 1000
