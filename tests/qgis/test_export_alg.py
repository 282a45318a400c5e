"""satplugin:exportpatches through processing.run, qgis_process and the full dataset model."""
import json

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsVectorLayer

from satplugin.qgis_satplugin.core.export import ExportedDataset
from tests.conftest import ROOT, run_qgis_process
from tests.qgis.conftest import AOI, GRID


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
        "--json", "run", str(ROOT / "models" / "workflows" / "dataset_from_fields.model3"), "--", "backend=3",
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
