"""The ground-truth job spec: plain values, an exact JSON round trip, one-sentence errors."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
import shapely
from shapely.geometry import box

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, GroundTruthResult, OutputPaths, run
from satplugin.qgis_satplugin.core.ground_truth.runner import PHASES

CRS = "EPSG:32633"
GRID = PixelGrid.square(CRS, 500000.0, 5000080.0, 10.0, 10, 8)


def px(col0, row0, col1, row1):
    return box(500000 + 10 * col0, 5000080 - 10 * row1, 500000 + 10 * col1, 5000080 - 10 * row0)


def all_outputs(folder):
    return OutputPaths(
        class_raster=str(folder / "class.tif"),
        id_raster=str(folder / "id.tif"),
        coverage_raster=str(folder / "coverage.tif"),
        conflict_raster=str(folder / "conflict.tif"),
        distance_raster=str(folder / "distance.tif"),
        class_table=str(folder / "classes.json"),
    )


def full_options(folder, **changes):
    """Every option set, a missing geometry among the polygons."""
    polygons = (shapely.to_wkb(px(0, 0, 4, 4), hex=True), None, shapely.to_wkb(px(3.5, 0, 7, 4.5), hex=True))
    values = dict(
        polygons=polygons,
        class_values=("wheat", "barley", "maize"),
        source_crs=CRS,
        grid=GRID,
        outputs=all_outputs(folder),
        parcel_ids=(7, 8, 9),
        class_names=("Wheat", None, "Maize"),
        min_coverage=0.25,
        strip_rows=256,
    )
    values.update(changes)
    return GroundTruthOptions(**values)


def test_full_options_round_trip_through_json_and_run_the_same(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    options = full_options(tmp_path / "a")
    text = options.to_json()
    assert json.loads(text)["options"] == "GroundTruthOptions"
    back = GroundTruthOptions.from_json(text)
    assert back == options
    assert isinstance(back.grid, PixelGrid) and isinstance(back.outputs, OutputPaths)
    assert isinstance(back.polygons, tuple) and back.polygons[1] is None

    first = run(options)
    second = run(replace(back, outputs=all_outputs(tmp_path / "b")))
    assert isinstance(first, GroundTruthResult)
    one, two = first.to_dict(), second.to_dict()
    assert json.loads(json.dumps(one)) == one  # plain JSON values
    assert one.pop("outputs") != two.pop("outputs")
    times = one.pop("seconds"), two.pop("seconds")  # wall times: they differ from run to run
    assert [sorted(t) for t in times] == [sorted(PHASES)] * 2 and all(v >= 0 for t in times for v in t.values())
    assert one == two
    assert one["n_skipped_empty"] == 1 and one["conflict_pixels"] == {"1": 0, "2": 4}
    for name in ("class.tif", "id.tif", "coverage.tif", "conflict.tif", "distance.tif", "classes.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_output_paths_are_strings_even_when_given_as_paths(tmp_path):
    outputs = OutputPaths(class_raster=tmp_path / "c.tif")
    assert outputs.class_raster == str(tmp_path / "c.tif") and outputs.id_raster is None
    assert outputs.rasters() == {"class": str(tmp_path / "c.tif")}
    assert json.loads(outputs.to_json())["class_raster"] == str(tmp_path / "c.tif")


def test_every_option_is_described():
    described = dict(GroundTruthOptions.help_lines())
    assert set(described) == {"polygons", "class_values", "source_crs", "grid", "outputs", "parcel_ids",
                              "class_names", "min_coverage", "polygons_file", "strip_rows"}
    assert all(text.strip() for text in described.values())
    assert len(OutputPaths.help_lines()) == 6


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(min_coverage=1.5), r"^MIN_COVERAGE must lie between 0 and 1, got 1\.5\.$"),
        (dict(outputs=OutputPaths()), r"^No output was requested; choose at least one output file\.$"),
        (dict(polygons=(), class_values=(), parcel_ids=None, class_names=None), r"^There are no polygons to rasterize"),
        (dict(class_values=("wheat", "barley")), r"^There must be one class value per polygon\.$"),
        (dict(class_values=(1, None, 2)), r"^Some features have no class value \(NULL\)"),
        (dict(class_values=(1.5, 1, 2)), r"^The class field must hold integers or text, found float, int\."),
        (dict(class_values=(70000, 1, 2)), r"^Integer class values must lie in 0\.\.65534; found 1\.\.70000\.$"),
        (dict(parcel_ids=(1.5, 2, 3)), r"^Parcel ids must be integers; choose an integer ID field\.$"),
        (dict(parcel_ids=(-1, 2, 3)), r"^Parcel ids must lie in 0\.\.2147483647; found -1\.\.3\.$"),
        (dict(parcel_ids=(1, 2)), r"^There must be one parcel id per polygon\.$"),
        (dict(polygons=(px(0, 0, 1, 1), None, None)), r"^The polygons must be given as WKB hex strings"),
        (dict(strip_rows=0), r"^Rows per strip must be a positive whole number, got 0\.$"),
        (dict(grid=PixelGrid.square(CRS, 0.0, 0.0, 0.001, 1 << 20, 1 << 20)), r"^The grid would be .* pixels"),
    ],
)
def test_bad_values_give_one_sentence_errors(tmp_path, changes, message):
    with pytest.raises(SatPluginError, match=message):
        full_options(tmp_path, **changes)


def test_bad_json_is_refused_clearly(tmp_path):
    text = full_options(tmp_path).to_json()
    with pytest.raises(SatPluginError, match="has no option colour"):
        GroundTruthOptions.from_dict({**json.loads(text), "colour": "red"})
    with pytest.raises(SatPluginError, match="not valid JSON"):
        GroundTruthOptions.from_json(text[:-5])


def test_a_polygon_that_is_not_wkb_is_one_clear_error(tmp_path):
    options = full_options(tmp_path, polygons=("not wkb", None, None))
    with pytest.raises(SatPluginError, match=r"^A polygon is not valid WKB"):
        run(options)
    assert list(Path(tmp_path).iterdir()) == []
