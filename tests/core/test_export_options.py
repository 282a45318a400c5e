"""ExportOptions: the export's job spec round-trips through JSON, and bad values are one sentence each."""
import json

import pytest
import shapely

from satplugin.qgis_satplugin.core.area import Area
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export import ExportOptions, SplitArea, run

from .test_export_helpers import CRS, X0, Y0, make_folder


def full_options(images, output_folder, labels=None) -> ExportOptions:
    """Every option set, split areas in lon/lat (another CRS than the images')."""
    lonlat = Area.from_geometry(shapely.box(14.999, 45.1, 15.0, 45.2), "EPSG:4326")
    in_utm = Area.from_geometry(shapely.box(X0 + 320, Y0 - 640, X0 + 1280, Y0), CRS)
    return ExportOptions(
        images=images, output_folder=output_folder, labels=labels, patch_size=32, stride=16, label_scale=1,
        bands=("B04", 2), band_resolution="resample", min_labelled=0.0, max_cloud=40.0, min_dates=1, max_dates=3,
        season_start="04-01", season_end="10-31", format="npz", split_block_size=32, split_ratios=(0.6, 0.2, 0.2),
        seed=7, split_areas=(SplitArea(lonlat, "train"), SplitArea(in_utm, "Validation")),
    )


def test_a_full_spec_round_trips_through_json_exactly(tmp_path):
    images = (str(tmp_path / "20230401.tif"), str(tmp_path / "20230411.tif"))
    options = full_options(images, str(tmp_path / "out"), labels={"class": str(tmp_path / "class.tif")})
    text = options.to_json()
    assert json.loads(text)["options"] == "ExportOptions"
    back = ExportOptions.from_json(text)
    assert back == options
    assert isinstance(back.images, tuple) and isinstance(back.split_areas[0], SplitArea)
    assert isinstance(back.split_areas[0].area, Area) and back.split_areas[1].split == "Validation"
    assert back.split_areas[0].area.geometry().equals_exact(options.split_areas[0].area.geometry(), 0.0)
    # A download folder is one path, kept as a string; paths and lists are normalised on the way in.
    folder = ExportOptions(images=tmp_path / "series", output_folder=tmp_path / "out", bands=["B02"])
    assert folder.images == str(tmp_path / "series") and folder.output_folder == str(tmp_path / "out")
    assert folder.bands == ("B02",) and ExportOptions.from_json(folder.to_json()) == folder


def test_the_round_tripped_spec_gives_the_same_dataset(tmp_path):
    src, _, _ = make_folder(tmp_path, width=128, height=64, n_dates=3)
    options = ExportOptions(images=src, output_folder=tmp_path / "a", patch_size=32, stride=16, max_cloud=50,
                            split_block_size=32, seed=3,
                            split_areas=(SplitArea(Area.from_geometry(shapely.box(X0, Y0 - 640, X0 + 640, Y0), CRS),
                                                   "train"),
                                         SplitArea(Area.from_geometry(shapely.box(X0 + 640, Y0 - 640, X0 + 1280, Y0), CRS),
                                                   "test")))
    first = run(options)
    again = ExportOptions.from_json(options.to_json().replace(str(tmp_path / "a"), str(tmp_path / "b")))
    second = run(again)
    assert first.n_samples > 0 and first.samples_per_split["train"] and first.samples_per_split["test"]
    expected = {k: v for k, v in first.to_dict().items() if k not in ("output_folder", "files")}
    assert {k: v for k, v in second.to_dict().items() if k not in ("output_folder", "files")} == expected
    assert json.loads(json.dumps(first.to_dict())) == first.to_dict()
    card_a = json.loads((tmp_path / "a" / "dataset.json").read_text())
    card_b = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert card_a["parameters"] == card_b["parameters"]
    # The card's parameters are the options with defaults resolved; no path, no polygon in it.
    assert card_a["parameters"] == {
        "patch_size": 32, "stride": 16, "label_scale": 1, "bands": ["B02", "B03", "B04", "B08"],
        "band_resolution": "resample", "min_labelled": 0.0, "max_cloud": 50, "min_dates": 1, "max_dates": None,
        "season_start": None, "season_end": None, "format": "npz", "split_block_size": 32,
        "split_ratios": [0.7, 0.15, 0.15], "seed": 3, "stac_collection_id": "satplugin-patches", "split_polygons": True,
    }


def test_split_areas_in_another_crs_are_reprojected_to_the_images(tmp_path):
    """The same polygons given in lon/lat and in the images' UTM give the same splits."""
    from pyproj import Transformer

    src, _, _ = make_folder(tmp_path, width=128, height=64, n_dates=1)
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    # The boundary at 60 px lies inside the second 32 px block: its patches are dropped, the others kept.
    boxes = [(shapely.box(X0 - 100, Y0 - 740, X0 + 600, Y0 + 100), "train"),
             (shapely.box(X0 + 600, Y0 - 740, X0 + 1380, Y0 + 100), "test")]
    results = {}
    for name, crs in (("utm", CRS), ("lonlat", "EPSG:4326")):
        areas = tuple(SplitArea(Area.from_geometry(g if crs == CRS else _transformed(g, to_lonlat), crs), split)
                      for g, split in boxes)
        results[name] = run(ExportOptions(images=src, output_folder=tmp_path / name, patch_size=32, split_areas=areas))
    assert results["utm"].samples_per_split == results["lonlat"].samples_per_split == {"train": 2, "val": 0, "test": 4}


def _transformed(geometry, transformer):
    import numpy as np

    def coords(xy):
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(shapely.segmentize(geometry, 10.0), coords)


@pytest.mark.parametrize("changes, message", [
    ({"patch_size": 0}, r"^patch_size must be a whole number >= 1, got 0\.$"),
    ({"patch_size": 16.5}, r"^patch_size must be a whole number >= 1, got 16\.5\.$"),
    ({"stride": True}, r"^stride must be a whole number >= 1, got True\.$"),
    ({"label_scale": 0}, r"^label_scale must be a whole number >= 1, got 0\.$"),
    ({"min_dates": 3, "max_dates": 2}, r"^max_dates \(2\) is below min_dates \(3\)\.$"),
    ({"min_labelled": 1.5}, r"^min_labelled is a share of the patch between 0 and 1, got 1\.5\.$"),
    ({"max_cloud": -1}, r"^max_cloud is a percentage between 0 and 100, got -1\.0\.$"),  # a float field
    ({"format": "hdf5"}, r"^Unknown format 'hdf5'; choose one of npz, zarr, geotiff, deepsatdata\.$"),
    ({"split_ratios": (1, 0)}, r"^split_ratios must be three non-negative numbers"),
    ({"band_resolution": "10m"}, r"^band_resolution must be 'resample', 'native' or 'sharpened', got '10m'\.$"),
    ({"labels": {"crop": "c.tif"}}, r"^Unknown label kinds \['crop'\]; use class, id, coverage, conflict, distance\.$"),
    ({"min_labelled": 0.2, "labels": {"id": "i.tif"}}, r"^min_labelled needs the class label raster"),
    ({"season_start": "2023-11-01"}, r"^The season start must look like MM-DD \(e\.g\. 11-01\), got '2023-11-01'\.$"),
    ({"season_end": "02-30"}, r"^The season end '02-30' is not a day of the year\.$"),
    ({"split_areas": ()}, r"^split_polygons is empty; give polygons with a split field, or leave it out\.$"),
    ({"split_areas": ("POLYGON ((0 0, 1 0, 1 1, 0 0))",)}, r"^split_areas holds SplitArea\(Area\(wkt, crs\), split\) values, not str\.$"),
])
def test_bad_values_are_one_sentence_each(tmp_path, changes, message):
    with pytest.raises(SatPluginError, match=message):
        ExportOptions(images=str(tmp_path / "series"), output_folder=str(tmp_path / "out"), **changes)
    assert not (tmp_path / "out").exists()


def test_a_bad_split_name_or_area_is_refused_where_it_is_made():
    with pytest.raises(SatPluginError, match=r"^Unknown split 'holdout' in the split polygons; use train, val or test\.$"):
        SplitArea(Area("POLYGON ((0 0, 1 0, 1 1, 0 0))", CRS), "holdout")
    with pytest.raises(SatPluginError, match="has no option colour"):
        ExportOptions.from_json('{"images": "s", "output_folder": "o", "colour": "red"}')
    with pytest.raises(SatPluginError, match="holds DownloadOptions, not ExportOptions"):
        ExportOptions.from_json('{"options": "DownloadOptions", "images": "s", "output_folder": "o"}')


def test_every_option_is_described():
    names = [name for name, _ in ExportOptions.help_lines()]
    assert names[:3] == ["images", "output_folder", "labels"] and names[-2:] == ["split_areas", "dask_scheduler"]
    assert len(names) == len(ExportOptions.__dataclass_fields__)
    assert all(text.strip() and "  " not in text and "\n" not in text for _, text in ExportOptions.help_lines())
