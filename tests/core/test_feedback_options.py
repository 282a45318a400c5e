"""The feedback protocol and the options mixin every step's job spec is built on."""
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pytest
import shapely

from satplugin.qgis_satplugin.core.area import Area
from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback, replay_event
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.options import StepOptions, option
from tests.conftest import ROOT


def recording():
    seen = {"progress": [], "log": []}
    return seen, Feedback(progress=seen["progress"].append, log=seen["log"].append)


def test_sub_ranges_map_each_part_onto_its_share_and_never_move_back():
    seen, feedback = recording()
    first, second = feedback.sub_range(0.0, 0.25), feedback.sub_range(0.25, 1.0)
    first.set_progress(0.5)
    first.set_progress(1.0)
    second.set_progress(0.0)
    second.set_progress(0.5)
    first.set_progress(0.9)  # a late report of a finished part: ignored, progress does not go back
    second.sub_range(0.5, 1.0).set_progress(1.0)
    assert seen["progress"] == [0.125, 0.25, 0.25, 0.625, 1.0]
    second.log("half way")
    assert seen["log"] == ["half way"]
    with pytest.raises(ValueError):
        feedback.sub_range(0.5, 0.25)


def test_progress_is_clamped_to_one_scale():
    seen, feedback = recording()
    feedback.set_progress(-3)
    feedback.set_progress(250)
    assert seen["progress"] == [0.0, 1.0]


def test_cancel_passes_through_sub_ranges():
    flag = {"stop": False}
    feedback = Feedback(is_canceled=lambda: flag["stop"]).sub_range(0.2, 0.4).sub_range(0.5, 1.0)
    feedback.check_canceled()
    flag["stop"] = True
    assert feedback.is_canceled()
    with pytest.raises(Canceled, match="Stopped at tile 3"):
        feedback.check_canceled("Stopped at tile 3.")
    with pytest.raises(Canceled, match="^Canceled by the user; no output was written.$"):
        feedback.check_canceled()
    assert Feedback.of(None).is_canceled() is False


CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from tests.plugin_link import link_plugin_package
link_plugin_package()
from satplugin.qgis_satplugin.core.feedback import JsonLinesFeedback
feedback = JsonLinesFeedback(sys.stdout)
part = feedback.sub_range(0.5, 1.0)
feedback.log("starting: ünïcode and \"quotes\"")
part.set_progress(0.5)
print("not an event")
part.set_progress(1.0)
"""


def test_feedback_crosses_a_process_boundary_as_json_lines():
    child = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    seen, parent = recording()
    others = [line for line in child.stdout.splitlines() if not replay_event(line, parent)]
    assert seen["log"] == ['starting: ünïcode and "quotes"']
    assert seen["progress"] == [0.75, 1.0]
    assert others == ["not an event"]
    assert replay_event('{"progress": true}', parent) is False
    assert replay_event('{"log": "a", "progress": 1}', parent) is False


@dataclass(frozen=True)
class Example(StepOptions):
    output: str = option(help="where it goes")
    ratios: tuple[float, ...] = option((0.7, 0.3), help="split ratios")
    size: int = option(64, help="patch size")
    scale: float = option(1.0, help="a float given as an int in JSON")
    grid: Optional[PixelGrid] = option(None, help="a nested grid")
    area: Optional[Area] = option(None, help="a nested area")
    labels: dict[str, str] = option(default_factory=dict, help="named paths")

    def check(self):
        if self.size < 1:
            raise SatPluginError(f"The patch size must be at least 1 pixel, not {self.size}.")


def test_options_round_trip_through_json_exactly():
    square = shapely.Polygon([(14.123456789012345, 46.1), (14.2, 46.1), (14.2, 46.2), (14.123456789012345, 46.1)])
    options = Example(output="/tmp/x", ratios=(0.6, 0.2, 0.2), scale=2.0,
                      grid=PixelGrid("EPSG:32633", 399960.0, 5100000.0, 10.0, 10.0, 30, 20),
                      area=Area.from_geometry(square, "EPSG:4326"), labels={"class": "/tmp/c.tif"})
    text = options.to_json()
    assert json.loads(text)["options"] == "Example"
    back = Example.from_json(text)
    assert back == options
    assert isinstance(back.ratios, tuple) and isinstance(back.grid, PixelGrid) and isinstance(back.area, Area)
    assert back.area.geometry().equals_exact(square, 0.0)
    assert Example.from_json('{"output": "o", "scale": 2}').scale == 2.0
    assert [name for name, _ in Example.help_lines()][:3] == ["output", "ratios", "size"]


def test_bad_options_are_one_sentence_each():
    with pytest.raises(SatPluginError, match="^The patch size must be at least 1 pixel, not 0.$"):
        Example(output="o", size=0)
    with pytest.raises(SatPluginError, match="Example has no option colour"):
        Example.from_json('{"output": "o", "colour": "red"}')
    with pytest.raises(SatPluginError, match="not valid JSON"):
        Example.from_json("{")
    with pytest.raises(SatPluginError, match="holds Other, not Example"):
        Example.from_json('{"options": "Other", "output": "o"}')
    with pytest.raises(SatPluginError, match="not a CRS pyproj knows"):
        Area("POLYGON ((0 0, 1 0, 1 1, 0 0))", "EPSG:999999")
    with pytest.raises(SatPluginError, match="not valid WKT"):
        Area("POLYGON ((0 0, 1", "EPSG:4326")


def test_an_area_is_reprojected_in_the_core():
    area = Area.from_geometry(shapely.box(460020.0, 5097000.0, 463020.0, 5100000.0), "EPSG:32633")
    lonlat = area.lonlat()
    minx, miny, maxx, maxy = lonlat.bounds
    assert 14.48 < minx < maxx < 14.53 and 46.0 < miny < maxy < 46.06
    back = Area.from_geometry(lonlat, "EPSG:4326").in_crs("EPSG:32633")
    assert abs(back.area - 3000.0 * 3000.0) / 9e6 < 1e-3
    assert area.in_crs("EPSG:32633").equals(area.geometry())


def test_paths_become_strings_and_lists_tuples_so_options_equal_their_json():
    from pathlib import Path

    given = Example(output=Path("/tmp/x"), ratios=[0.6, 0.4], labels={"class": Path("/tmp/c.tif")})
    assert given == Example(output="/tmp/x", ratios=(0.6, 0.4), labels={"class": "/tmp/c.tif"})
    assert isinstance(given.output, str) and isinstance(given.ratios, tuple)
    assert Example.from_json(given.to_json()) == given


def test_numpy_values_and_ints_for_floats_become_the_declared_plain_values():
    import numpy as np

    given = Example(output="o", ratios=np.array([0.6, 0.4]), size=np.int64(32), scale=3)
    assert given.ratios == (0.6, 0.4) and type(given.ratios[0]) is float
    assert type(given.size) is int and type(given.scale) is float
    assert given.to_json() == Example.from_json(given.to_json()).to_json()


def test_a_job_missing_or_mistyping_a_field_is_one_sentence():
    with pytest.raises(SatPluginError, match="^Example needs output.$"):
        Example.from_json("{}")
    with pytest.raises(SatPluginError, match="^Example.grid needs pixel_height, width, height.$"):
        Example.from_json('{"output": "o", "grid": {"crs": "EPSG:32633", "x_min": 0, "y_max": 0, "pixel_width": 10}}')
    with pytest.raises(SatPluginError, match="^Example.area has no option colour.$"):
        Example.from_json('{"output": "o", "area": {"wkt": "POINT (0 0)", "colour": 1}}')


def test_a_step_without_its_inputs_or_output_says_so():
    from satplugin.qgis_satplugin.core.export import ExportOptions
    from satplugin.qgis_satplugin.core.superres import SuperResolveOptions

    with pytest.raises(SatPluginError, match="^Give the images: a download folder, or one raster per date.$"):
        ExportOptions(images=(), output_folder="dataset")
    with pytest.raises(SatPluginError, match="^Choose an output folder for the dataset.$"):
        ExportOptions(images="series", output_folder="")
    with pytest.raises(SatPluginError, match="^Give the inputs: a download folder, or one raster per revisit.$"):
        SuperResolveOptions(inputs="", output="sr.tif")
    with pytest.raises(SatPluginError, match=r"^Choose the output GeoTIFF \(.tif\).$"):
        SuperResolveOptions(inputs="series", output=None)


def test_a_json_value_of_the_wrong_kind_names_the_field():
    with pytest.raises(SatPluginError, match="^Example.size is a whole number, not true.$"):
        Example.from_json('{"output": "o", "size": true}')
    with pytest.raises(SatPluginError, match="^Example.labels is text, not the number 5.$"):
        Example.from_json('{"output": "o", "labels": {"class": 5}}')
    with pytest.raises(SatPluginError, match="^Example.output is text, not a list.$"):
        Example.from_json('{"output": ["o"]}')
    with pytest.raises(SatPluginError, match=r"^Example.grid is an object, not the text 'EPSG:32633'.$"):
        Example.from_json('{"output": "o", "grid": "EPSG:32633"}')
    assert Example(output=np.array("/tmp/x"), size=np.array(8)).output == "/tmp/x"
