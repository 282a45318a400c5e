"""satplugin:exportpatches through processing.run, qgis_process and the full dataset model."""
import json

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsVectorLayer

from satplugin.qgis_satplugin.core.export import ExportedDataset
from tests.conftest import run_qgis_process
from tests.qgis.conftest import AOI, GRID
from satplugin.qgis_satplugin.core.resources import resource_path


def run(algorithm, params):
    import processing

    return processing.run(f"satplugin:{algorithm}", params)


@pytest.fixture
def series_and_labels(products_layer, tmp_path):
    """Download all three dates, then burn four square fields on the imagery's grid."""
    series = run("downloadproducts", {"PRODUCTS": products_layer, "AOI": AOI, "BANDS": [0],
                                       "OUTPUT_FOLDER": str(tmp_path / "series")})["OUTPUT_FOLDER"]
    manifest = json.loads((tmp_path / "series" / "manifest.json").read_text())
    first = tmp_path / "series" / sorted(f["path"] for f in manifest["files"] if f["kind"] == "image")[0]
    fields = QgsVectorLayer("Polygon?crs=EPSG:32633&field=crop:string&field=pid:integer", "fields", "memory")
    from qgis.core import QgsFeature, QgsGeometry

    with rasterio.open(first) as ds:
        x0, y1 = ds.transform.c, ds.transform.f
    features = []
    for i, (col, row, crop) in enumerate(((2, 2, "wheat"), (30, 4, "maize"), (6, 30, "maize"), (34, 34, "beet"))):
        feature = QgsFeature(fields.fields())
        x, y = x0 + col * 10, y1 - row * 10
        feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({x} {y},{x + 200} {y},{x + 200} {y - 200},{x} {y - 200},{x} {y}))"))
        feature.setAttributes([crop, 100 + i])
        features.append(feature)
    fields.dataProvider().addFeatures(features)
    labels = run("rasterizegroundtruth", {"INPUT": fields, "CLASS_FIELD": "crop", "ID_FIELD": "pid", "REFERENCE": str(first),
                                          "OUTPUT_CLASS": str(tmp_path / "class.tif"), "OUTPUT_ID": str(tmp_path / "id.tif")})
    return series, [labels["OUTPUT_CLASS"], labels["OUTPUT_ID"]], first


def test_patches_match_the_imagery_and_labels(series_and_labels, tmp_path):
    series, labels, first = series_and_labels
    result = run("exportpatches", {"IMAGES": [series], "LABELS": labels, "PATCH_SIZE": 16, "MIN_LABELLED": 0.2,
                                   "SPLIT_BLOCK_SIZE": 16, "FORMAT": 0, "OUTPUT_FOLDER": str(tmp_path / "dataset")})
    assert result["SAMPLE_COUNT"] > 0
    dataset = ExportedDataset(tmp_path / "dataset")
    sample = dataset[0]
    with rasterio.open(first) as ds:
        col = int(round((sample["transform"][2] - ds.transform.c) / 10))
        row = int(round((ds.transform.f - sample["transform"][5]) / 10))
        window = ds.read(window=((row, row + 16), (col, col + 16)))
    np.testing.assert_array_equal(sample["images"][0], window)  # first date, every band
    with rasterio.open(labels[0]) as ds:
        np.testing.assert_array_equal(sample["labels"]["class"], ds.read(1, window=((row, row + 16), (col, col + 16))))
    assert list(sample["dates"]) == sorted(sample["dates"])
    # No pixel in two splits: sample footprints of different splits never intersect.
    index = QgsVectorLayer(result["INDEX"] + "|layername=samples", "index", "ogr")
    by_split = {}
    for feature in index.getFeatures():
        by_split.setdefault(feature["split"], []).append(feature.geometry())
    for a in by_split:
        for b in by_split:
            if a < b:
                assert not any(g.intersection(h).area() > 0 for g in by_split[a] for h in by_split[b])
    card = json.loads((tmp_path / "dataset" / "dataset.json").read_text())
    assert card["n_samples"] == result["SAMPLE_COUNT"] == sum(split["samples"] for split in card["splits"].values())
    assert card["bands"] == ["B02", "B03", "B04", "B08"] and len(card["dates"]) == 3


def test_labels_must_come_from_rasterize(series_and_labels, tmp_path):
    series, _, first = series_and_labels
    with pytest.raises(QgsProcessingException, match="not an output of 'Rasterize ground truth'"):
        run("exportpatches", {"IMAGES": [series], "LABELS": [str(first)], "OUTPUT_FOLDER": str(tmp_path / "d")})
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def _starts(length, size, stride):
    """Window starts along one axis, the last one shifted inward to end at the edge (as documented)."""
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] < length - size:
        starts.append(length - size)
    return starts


def test_splits_from_polygons_through_processing_run(series_and_labels, tmp_path):
    """SPLIT_LAYER + SPLIT_FIELD: each sample takes the split of the polygon it lies in; straddlers are dropped."""
    from qgis.core import QgsFeature, QgsGeometry, QgsRectangle

    series, labels, first = series_and_labels
    with rasterio.open(first) as ds:
        width, height, (x0, y1), crs = ds.width, ds.height, (ds.transform.c, ds.transform.f), ds.crs.to_epsg()
    assert width > 48 and height > 48 and crs == 32633

    def box(c0, r0, c1, r1):  # image pixel edges -> a rectangle in the images' CRS
        return QgsGeometry.fromRect(QgsRectangle(x0 + 10 * c0, y1 - 10 * r1, x0 + 10 * c1, y1 - 10 * r0))

    # Boundaries at 32 px (two blocks of the default 16 px) cut through the 16 px windows that
    # start at 24 px; the outer edges reach past the raster, so every pixel has one split.
    polygons = {"train": box(-5, -5, 32, height + 5), "val": box(32, -5, width + 5, 32),
                "test": box(32, 32, width + 5, height + 5)}
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=split:string", "splits", "memory")
    features = []
    for name, geometry in polygons.items():
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geometry)
        feature.setAttributes([name.upper() if name == "val" else name])  # values are matched case-insensitively
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    result = run("exportpatches", {"IMAGES": [series], "LABELS": labels, "PATCH_SIZE": 16, "STRIDE": 8,
                                   "SPLIT_LAYER": layer, "SPLIT_FIELD": "split", "FORMAT": 0,
                                   "OUTPUT_FOLDER": str(tmp_path / "dataset")})

    def touched(col, row):  # the split polygons a window overlaps with positive area
        window = box(col, row, col + 16, row + 16)
        return {name for name, g in polygons.items() if g.intersection(window).area() > 0}

    candidates = [(r, c) for r in _starts(height, 16, 8) for c in _starts(width, 16, 8)]
    expected = {(r, c): touched(c, r).pop() for r, c in candidates if len(touched(c, r)) == 1}
    straddling = [(r, c) for r, c in candidates if len(touched(c, r)) > 1]
    assert straddling and {"train", "val", "test"} == set(expected.values())

    dataset = ExportedDataset(tmp_path / "dataset")
    got = {(row["row"], row["col"]): row["split"] for row in dataset.rows}
    assert got == expected  # every one-polygon window kept with that polygon's split, no straddler kept
    assert result["SAMPLE_COUNT"] == len(expected)
    # The index footprints agree: each lies inside the polygon of its own split and overlaps no other.
    index = QgsVectorLayer(result["INDEX"] + "|layername=samples", "index", "ogr")
    assert index.featureCount() == len(expected)
    for feature in index.getFeatures():
        footprint = feature.geometry()
        assert polygons[feature["split"]].contains(footprint)
        assert all(g.intersection(footprint).area() == 0 for name, g in polygons.items() if name != feature["split"])
    # The split a sample carries inside its own file is the same.
    for i in range(len(dataset)):
        assert dataset[i]["split"] == dataset.rows[i]["split"]
    card = json.loads((tmp_path / "dataset" / "dataset.json").read_text())
    assert card["split_method"]["method"] == "polygons" and card["parameters"]["split_polygons"] is True
    assert card["candidates"] == len(candidates)
    assert card["dropped"]["outside the split polygons or across two splits"] == len(straddling)
    for name in ("train", "val", "test"):
        assert card["splits"][name]["samples"] == sum(1 for s in expected.values() if s == name)


def test_split_polygons_in_another_crs_give_the_same_splits(series_and_labels, tmp_path):
    """A SPLIT_LAYER in lon/lat is reprojected to the images' CRS by the core: the same samples, the same splits."""
    from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsGeometry, QgsProject,
                           QgsRectangle)

    series, labels, first = series_and_labels
    with rasterio.open(first) as ds:
        width, height, (x0, y1) = ds.width, ds.height, (ds.transform.c, ds.transform.f)
    # The boundary at 40 px lies inside a 16 px block, well away from its edges.
    boxes = {"train": (-5, -5, 40, height + 5), "test": (40, -5, width + 5, height + 5)}
    to_lonlat = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:32633"),
                                       QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    rows = {}
    for crs in ("EPSG:32633", "EPSG:4326"):
        layer = QgsVectorLayer(f"Polygon?crs={crs}&field=split:string", "splits", "memory")
        features = []
        for name, (c0, r0, c1, r1) in boxes.items():
            geometry = QgsGeometry.fromRect(QgsRectangle(x0 + 10 * c0, y1 - 10 * r1, x0 + 10 * c1, y1 - 10 * r0))
            if crs == "EPSG:4326":
                geometry = geometry.densifyByCount(20)
                geometry.transform(to_lonlat)
            feature = QgsFeature(layer.fields())
            feature.setGeometry(geometry)
            feature.setAttributes([name])
            features.append(feature)
        layer.dataProvider().addFeatures(features)
        out = tmp_path / crs.replace(":", "_")
        run("exportpatches", {"IMAGES": [series], "PATCH_SIZE": 16, "SPLIT_LAYER": layer, "SPLIT_FIELD": "split",
                              "FORMAT": 0, "OUTPUT_FOLDER": str(out)})
        rows[crs] = sorted((row["row"], row["col"], row["split"]) for row in ExportedDataset(out).rows)
    assert rows["EPSG:4326"] == rows["EPSG:32633"]
    assert {split for _, _, split in rows["EPSG:32633"]} == {"train", "test"}
    assert all((col + 16 <= 32) == (split == "train") for _, col, split in rows["EPSG:32633"])


def test_export_through_qgis_process_subprocess(series_and_labels, tmp_path):
    """The real qgis_process binary: sample count, the card's figures and pixels against the sources."""
    series, labels, first = series_and_labels
    out = tmp_path / "dataset"
    _, answer = run_qgis_process(
        "--json", "run", "satplugin:exportpatches", "--", f"IMAGES={series}", f"LABELS={labels[0]}",
        f"LABELS={labels[1]}", "PATCH_SIZE=16", "STRIDE=16", "MIN_LABELLED=0.2", "SPLIT_BLOCK_SIZE=16",
        "SPLIT_RATIOS=0.5,0.25,0.25", "SEED=3", "FORMAT=0", f"OUTPUT_FOLDER={out}",
    )
    results = answer["results"]
    card = json.loads((out / "dataset.json").read_text())
    dataset = ExportedDataset(out)
    n = len(dataset)
    assert n > 0 and int(results["SAMPLE_COUNT"]) == n == card["n_samples"] == len(list(out.rglob("*.npz")))
    assert results["OUTPUT_FOLDER"] == str(out) and results["DATASET_CARD"] == str(out / "dataset.json")
    assert sum(split["samples"] for split in card["splits"].values()) == n
    assert card["candidates"] == n + sum(card["dropped"].values())
    manifest = json.loads((tmp_path / "series" / "manifest.json").read_text())
    assert card["dates"] == sorted(manifest["dates"]) and len(card["dates"]) == 3
    assert card["bands"] == ["B02", "B03", "B04", "B08"] and card["patch_size"] == 16
    assert card["parameters"]["min_labelled"] == 0.2 and card["parameters"]["seed"] == 3

    # The card's class pixels per split and train normalisation, recomputed from the source rasters.
    with rasterio.open(labels[0]) as ds:
        classes, class_nodata = ds.read(1), ds.nodata
    with rasterio.open(first) as ds:
        assert (card["grid"]["width"], card["grid"]["height"]) == (ds.width, ds.height)
    sources = [rasterio.open(tmp_path / "series" / src["file"]) for src in card["sources"]]
    try:
        covered = {s: np.zeros(classes.shape, dtype=bool) for s in ("train", "val", "test")}
        total, squares, count = (np.zeros(4) for _ in range(3))
        for row in dataset.rows:
            r, c = row["row"], row["col"]
            covered[row["split"]][r : r + 16, c : c + 16] = True
            if row["split"] == "train":
                for t in row["date_index"]:
                    dn = sources[t].read(window=((r, r + 16), (c, c + 16))).reshape(4, -1).astype(np.float64)
                    valid = dn != card["nodata"]
                    refl = np.asarray(card["date_scales"][t])[:, None] * dn + np.asarray(card["date_offsets"][t])[:, None]
                    total += np.where(valid, refl, 0).sum(axis=1)
                    squares += np.where(valid, refl * refl, 0).sum(axis=1)
                    count += valid.sum(axis=1)
        # Each label pixel once per split, however many (edge-shifted, overlapping) patches hold it.
        for split, under in covered.items():
            values, counts = np.unique(classes[under & (classes != class_nodata)], return_counts=True)
            assert card["splits"][split]["class_pixels"] == {str(v): n for v, n in zip(values.tolist(), counts.tolist())}
        for i, band in enumerate(card["bands"]):
            stats = card["normalisation"]["bands"][band]
            mean = total[i] / count[i]
            assert stats["pixels"] == count[i]
            assert stats["mean"] == pytest.approx(mean, abs=2e-6)
            assert stats["std"] == pytest.approx(np.sqrt(squares[i] / count[i] - mean * mean), abs=2e-6)

        # One pixel of one sample (last date, last band, an inner offset) against its source raster.
        sample, row = dataset[n - 1], dataset.rows[n - 1]
        t = row["date_index"][-1]
        expected = sources[t].read(4, window=((row["row"] + 5, row["row"] + 6), (row["col"] + 11, row["col"] + 12)))[0, 0]
        assert sample["images"][-1, 3, 5, 11] == expected
        assert sample["dates"][-1] == card["dates"][t]
        assert sample["transform"][2] == pytest.approx(card["grid"]["transform"][2] + 10 * row["col"])
    finally:
        for ds in sources:
            ds.close()


def test_full_dataset_model_through_qgis_process(library, tmp_path):
    fields = tmp_path / "fields.geojson"
    x0, y1 = GRID.x_min, GRID.y_max
    squares = [(x0 + 100, y1 - 100, "wheat"), (x0 + 500, y1 - 300, "maize"), (x0 + 200, y1 - 700, "beet")]
    fields.write_text(json.dumps({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": [{"type": "Feature", "properties": {"crop": crop}, "geometry": {"type": "Polygon", "coordinates": [[
            [x, y], [x + 300, y], [x + 300, y - 300], [x, y - 300], [x, y]]]}} for x, y, crop in squares],
    }))
    out = tmp_path / "out"
    _, answer = run_qgis_process(
        "--json", "run", str(resource_path("workflows", "dataset_from_fields.model3")), "--", "backend=3",
        f"service_url={library}", f"fields={fields}", "class_field=crop", "start_date=2023-04-01",
        "end_date=2023-09-30", "max_products=2", "patch_size=16", "format=3",
        f"search:products={out}_p.gpkg", f"download:series={out}_series", f"rasterize:class_raster={out}_class.tif",
        f"rasterize:id_raster={out}_id.tif", f"export:dataset={out}_dataset",
    )
    assert answer["results"]["export:dataset"] == f"{out}_dataset"
    pickles = list((tmp_path / "out_dataset").rglob("*.pickle"))
    assert pickles
    import pickle

    sample = pickle.loads(pickles[0].read_bytes())
    assert {"B02", "doy", "year", "labels", "ids"} <= set(sample)
    assert sample["B02"].shape[0] == len(sample["doy"]) <= 2
